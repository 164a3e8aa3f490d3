"""Configuration from the environment (prefix ``FEWSHOT_``).

Settings are built by ``create_app()`` or the CLI and passed down; nothing reads them at import time.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from .errors import ConfigurationError
from .models import StrategyName

PACKAGED_MODEL = "packaged:all-MiniLM-L6-v2"
ENV_PREFIX = "FEWSHOT_"
LogLevel = Literal["CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG"]
# FEWSHOT_* variables that are read by something other than Settings: the client's, and the test suite's.
READ_ELSEWHERE = ("FEWSHOT_URL", "FEWSHOT_API_KEY")
READ_ELSEWHERE_PREFIX = "FEWSHOT_TEST_"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore")

    data_dir: Path = Field(Path("./data"), description="Where the embedded (SQLite) bank lives.")
    index_dir: Path = Field(Path("./indexes"), description="Index versions.")
    database_url: str | None = Field(None, description="SQLAlchemy URL; default a SQLite file in data_dir.")
    model: str = Field(PACKAGED_MODEL, description="Sentence-transformers model name or path.")
    embedding_backend: Literal["auto", "onnx", "torch"] = Field(
        "auto",
        description="Inference backend: onnx (ONNX Runtime, exported from the model and checked against it), "
        "torch (sentence-transformers), auto (onnx when it agrees with torch, else torch).",
    )
    model_cache_dir: Path | None = Field(
        None,
        description="Where ONNX exports and their agreement checks are kept; default ~/.cache/fewshot-service "
        "($XDG_CACHE_HOME respected). Keyed by model files and library versions, so it may be shared.",
    )
    embedding_min_agreement: float = Field(
        0.99, gt=0, le=1, description="Least cosine between ONNX and PyTorch embeddings of each seed text."
    )
    api_keys: str | None = Field(
        None,
        description="key:role[:name],... with role reader, curator or admin; none (and none in the database) "
        "turns authentication off, which `fewshot serve` allows on loopback only.",
    )
    llm_base_url: str | None = Field(
        None, description="OpenAI-compatible API root, e.g. http://localhost:11434/v1 (expansion is off without it)."
    )
    llm_model: str | None = Field(None, description="Model name sent to the chat completions endpoint.")
    llm_api_key: str | None = Field(None, description="Bearer token, when the endpoint wants one.")
    llm_timeout_seconds: float = Field(60.0, gt=0, description="Per-request timeout of an LLM call.")
    llm_max_retries: int = Field(3, ge=0, le=20, description="Retries of an LLM call on 429, 5xx and timeouts.")
    llm_backoff_seconds: float = Field(1.0, ge=0, description="First retry delay; doubles per retry, with jitter.")
    llm_max_backoff_seconds: float = Field(30.0, ge=0, description="Longest wait between retries (Retry-After too).")
    llm_max_tokens: int | None = Field(2048, ge=1, description="max_tokens per LLM answer; unset sends none.")

    # LLM expansion of the bank (fewshot_service.expansion).
    expand_template: Path | None = Field(None, description="Prompt template file; default the packaged one.")
    expand_concurrency: int = Field(4, ge=1, le=64, description="LLM calls in flight at once during a run.")
    expand_per_call: int = Field(4, ge=1, le=20, description="New examples asked for in one LLM call.")
    expand_seeds: int = Field(4, ge=1, le=20, description="Seed examples shown in one generation prompt.")
    expand_temperature: float = Field(0.8, ge=0, le=2, description="Sampling temperature when a run names none.")
    expand_cell_target: int = Field(20, ge=1, description="Approved+pending examples --fill-gaps aims for per cell.")
    expand_max_calls: int = Field(200, ge=1, description="Most LLM calls one run may make.")
    expand_min_input_chars: int = Field(20, ge=1, description="Generated inputs shorter than this are dropped.")
    expand_max_input_chars: int = Field(2000, ge=1, description="Generated inputs longer than this are dropped.")
    expand_max_output_chars: int = Field(2000, ge=1, description="Longer generated outputs or steps are dropped.")
    expand_min_predicted_quality: float = Field(
        0.5, ge=0, le=1, description="Generated examples the quality model gives a lower P(good) are dropped."
    )

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    seed_on_empty: bool = Field(True, description="Load seed_examples/ when the bank is empty at start.")
    seed_dir: Path | None = Field(None, description="Seed JSONL folder; default the packaged seed bank.")

    default_strategy: StrategyName = Field("stratified", description="Strategy used when a request names none.")
    default_diversity: float = Field(
        0.6, ge=0.0, le=1.0, description="Diversity trade-off (stratified, mmr, dpp) when a request names none."
    )
    candidate_factor: int = Field(
        5,
        ge=5,
        le=100,
        description="Diversifying strategies choose among factor*k filtered candidates (stratified: twice that).",
    )
    default_topic_preference: float = Field(
        0.25,
        ge=0.0,
        le=1.0,
        description="How strongly to prefer the prompt's estimated topic when a request names none.",
    )
    difficulty_weight: float = Field(
        0.3, ge=0.0, le=1.0, description="Score lost for a difficulty gap of 4 (difficulty_target or match)."
    )
    preference_neighbours: int = Field(
        20,
        ge=1,
        le=100,
        description="Nearest neighbours that vote on the prompt's topic; the nearest half estimate its difficulty.",
    )
    leakage_threshold: float = Field(
        0.97, gt=0.0, le=1.0, description="Examples this similar to the prompt are never returned."
    )
    duplicate_threshold: float = Field(
        0.95, gt=0.0, le=1.0, description="A new example this similar to a stored one is a duplicate."
    )
    label_approvals_needed: int = Field(1, ge=1, description="Approvals that make an example approved.")
    label_min_mean_score: float = Field(3.0, ge=1, le=5, description="Mean label score needed for approval.")
    label_rejections_needed: int = Field(1, ge=1, description="Rejections that make an example rejected.")
    review_lease_seconds: float = Field(600, gt=0, description="How long a review item stays with one annotator.")
    guidelines_file: Path | None = Field(
        None, description="Markdown labelling guidelines shown beside the workbench's review; default the packaged."
    )
    # The most texts in one model call; the embedder cuts fewer where padding would cost more (padding.py).
    # Past a few dozen texts a bigger call gains little on a CPU (encode rates by batch: benchmarks/RESULTS.md, Scale).
    embed_batch_size: int = Field(32, ge=1, le=4096, description="Texts per model call, at most.")
    embed_lanes: int = Field(
        2, ge=1, le=64, description="Prompt embeddings that may run at once (micro-batches); one per core suits a CPU."
    )
    query_cache_size: int = Field(
        1024, ge=0, le=1_000_000, description="Prompt embeddings kept (LRU): a repeated prompt is not embedded again."
    )
    example_cache_size: int = Field(
        20_000, ge=0, description="Examples /v1/select keeps in memory (LRU, loaded at start); 0 reads the bank."
    )
    keep_index_versions: int = Field(3, ge=1, le=100)
    # Index kind and storage (index/kinds.py); they apply to the next index version built.
    index_kind: Literal["auto", "flat", "ivf", "hnsw"] = Field(
        "auto", description="auto: exact (flat) below index_ann_threshold vectors, IVF from it; or one kind always."
    )
    index_ann_threshold: int = Field(50_000, ge=1, description="auto builds an approximate index from this size.")
    index_storage: Literal["float32", "float16", "sq8"] = Field(
        "float32", description="How vectors are stored: float32, float16 (half) or 8-bit scalar quantised (quarter)."
    )
    index_ivf_nlist: int | None = Field(None, ge=1, description="IVF lists; default 2*sqrt(vectors).")
    index_ivf_nprobe: int = Field(32, ge=1, description="IVF lists searched per query (more: slower, better recall).")
    index_hnsw_m: int = Field(32, ge=4, le=128, description="HNSW neighbours per node.")
    index_hnsw_ef_construction: int = Field(40, ge=8, description="HNSW candidate list while building.")
    index_hnsw_ef_search: int = Field(128, ge=8, description="HNSW candidate list per query.")
    # Scale-out (issue 9): replicas follow the bank's change feed and the shared index directory.
    sync_poll_seconds: float = Field(
        0.5,
        gt=0,
        le=60,
        description="How often a server checks the bank and CURRENT for changes made by other processes "
        "(PostgreSQL also wakes it at once with LISTEN/NOTIFY).",
    )
    # Bank outages (issue 21): every bank call is bounded, and the bank's state is probed off the request path.
    bank_connect_timeout_seconds: float = Field(
        3.0, gt=0, le=300, description="Longest wait to open a connection to the bank."
    )
    bank_statement_timeout_seconds: float = Field(
        5.0,
        gt=0,
        le=3600,
        description="Longest a bank statement (or a wait for a lock) may take; the server cancels it, and a "
        "connection that stops answering altogether is cut shortly after.",
    )
    bank_check_seconds: float = Field(
        1.0, gt=0, le=60, description="How often the bank is probed for /readyz; writes fail fast while it is down."
    )
    bank_request_slots: int = Field(
        16,
        ge=1,
        le=1000,
        description="Requests that use the bank (writes, lists, stats) handled at once, so a slow bank never "
        "takes the threads /v1/select and the probes need; more wait for a slot (bank_queue_seconds).",
    )
    bank_queue_seconds: float = Field(
        10.0,
        ge=0,
        le=300,
        description="How long a request waits for a bank slot before 503; none waits while the bank is down.",
    )
    max_body_bytes: int = Field(1_048_576, ge=1024)
    max_import_bytes: int = Field(256 * 1_048_576, ge=1024, description="Limit for JSONL uploads.")
    # Monitoring the bank (stats.py, agreement.py, quality_model.py).
    coverage_target: int = Field(
        5, ge=1, description="Approved examples a topic x difficulty cell should hold; fewer is a coverage gap."
    )
    near_duplicate_threshold: float = Field(
        0.9, gt=0.0, le=1.0, description="Examples at least this similar (cosine) form a near-duplicate cluster."
    )
    fast_label_seconds: float = Field(
        5.0, ge=0, description="A label given sooner than this after the annotator's previous one is flagged."
    )
    quality_min_labels_per_class: int = Field(
        10, ge=2, description="Labelled good and bad examples each needed before the quality model trains."
    )
    log_level: LogLevel = "INFO"
    # Security and reliability (issue 8): limits, logs, metrics.
    rate_limit_per_second: float = Field(
        1000.0,
        ge=0,
        description="Requests per second each API key may make on each kind of route (select, metrics, admin, "
        "the rest), unless the key has its own rate; 0: off. Never applied without authentication.",
    )
    rate_limit_burst: int = Field(
        2000, ge=1, description="Requests a key may make at once before the default rate applies."
    )
    max_in_flight: int = Field(
        100, ge=1, description="Requests handled at once; more wait up to queue_timeout_seconds, then get 503."
    )
    queue_timeout_seconds: float = Field(1.0, ge=0, le=60, description="How long a request waits for a free slot.")
    log_format: Literal["json", "text"] = Field("json", description="Log lines of `fewshot serve`: JSON or text.")
    log_prompts: bool = Field(
        False, description="Log the prompt of each /v1/select, and keep it with the selection record (off: a hash)."
    )
    # Closing the loop (issue 20): selections recorded, feedback, per-example utility.
    selection_retention_days: float = Field(30, gt=0, description="Selections (and their feedback) kept this long.")
    selection_queue_size: int = Field(
        10_000, ge=1, description="Selections waiting to be written; when full, new ones are dropped (and counted)."
    )
    feedback_wait_seconds: float = Field(
        1.0, ge=0, le=30, description="How long feedback waits for a selection another replica has not written yet."
    )
    utility_refresh_seconds: float = Field(60, gt=0, description="How often utility is re-estimated from feedback.")
    default_utility_weight: float = Field(
        1.0, ge=0, le=5, description="utility_weight when a request names none (0: feedback never moves picks)."
    )

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value  # `info` works as Python's logging takes it

    def resolved_model_cache_dir(self) -> Path:
        if self.model_cache_dir is not None:
            return self.model_cache_dir
        base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        return Path(base) / "fewshot-service" / "onnx"

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'bank.sqlite3').resolve()}"


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment; a bad value is a ConfigurationError of one line naming its variable."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        names = [ENV_PREFIX + str(problem["loc"][0]).upper() for problem in exc.errors()]
        problems = [
            f"{name}: {problem['msg']} (got {problem['input']!r})"
            if isinstance(problem["input"], str)
            else f"{name}: {problem['msg']}"
            for name, problem in zip(names, exc.errors(), strict=True)
        ]
        raise ConfigurationError("; ".join(problems), field=names[0]) from exc


def unknown_variables(environ: Mapping[str, str] | None = None) -> list[str]:
    """One note per FEWSHOT_* variable that is no setting. pydantic-settings ignores them, so a mistyped name
    (FEWSHOT_PROT) left its setting at the default without a word."""
    known = {ENV_PREFIX + name.upper() for name in Settings.model_fields}
    notes = []
    for name in sorted(os.environ if environ is None else environ):
        upper = name.upper()  # settings are read whatever the case of their names
        if not upper.startswith(ENV_PREFIX) or upper in known or upper in READ_ELSEWHERE:
            continue
        if upper.startswith(READ_ELSEWHERE_PREFIX):
            continue
        # Compared without the prefix they all share, which would make any two names look alike.
        suffixes = sorted(known_name.removeprefix(ENV_PREFIX) for known_name in known)
        close = difflib.get_close_matches(upper.removeprefix(ENV_PREFIX), suffixes, n=1, cutoff=0.7)
        hint = f" (did you mean {ENV_PREFIX}{close[0]}?)" if close else ""
        notes.append(f"{name} is not a setting and is ignored{hint}")
    return notes
