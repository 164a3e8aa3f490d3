"""Configuration from the environment (prefix ``FEWSHOT_``).

Settings are built by ``create_app()`` or the CLI and passed down; nothing reads them at import time.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

PACKAGED_MODEL = "packaged:all-MiniLM-L6-v2"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FEWSHOT_", extra="ignore")

    data_dir: Path = Field(Path("./data"), description="Where the embedded (SQLite) bank lives.")
    index_dir: Path = Field(Path("./indexes"), description="Index versions.")
    database_url: str | None = Field(None, description="SQLAlchemy URL; default a SQLite file in data_dir.")
    model: str = Field(PACKAGED_MODEL, description="Sentence-transformers model name or path.")
    api_keys: str | None = Field(None, description="key:role,key:role (auth arrives with issue 8).")
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

    default_strategy: str = "mmr"
    default_diversity: float = Field(0.6, ge=0.0, le=1.0, description="MMR trade-off when a request names none.")
    candidate_factor: int = Field(
        5, ge=5, le=100, description="Diversifying strategies (mmr) choose among factor*k filtered candidates."
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
        10, ge=1, le=100, description="Nearest neighbours that estimate the prompt's topic and difficulty."
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
    embed_batch_size: int = Field(64, ge=1, le=4096)
    keep_index_versions: int = Field(3, ge=1, le=100)
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
    log_level: str = "INFO"

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'bank.sqlite3').resolve()}"
