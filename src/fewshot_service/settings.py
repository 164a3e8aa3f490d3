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
    llm_base_url: str | None = None
    llm_model: str | None = None
    llm_api_key: str | None = None

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    seed_on_empty: bool = Field(True, description="Load seed_examples/ when the bank is empty at start.")
    seed_dir: Path | None = Field(None, description="Seed JSONL folder; default the packaged seed bank.")

    default_strategy: str = "mmr"
    default_diversity: float = Field(0.2, ge=0.0, le=1.0, description="MMR trade-off when a request names none.")
    candidate_factor: int = Field(
        5, ge=5, le=100, description="Diversifying strategies (mmr) choose among factor*k filtered candidates."
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
    log_level: str = "INFO"

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'bank.sqlite3').resolve()}"
