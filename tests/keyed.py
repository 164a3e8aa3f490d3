"""A small service with API keys configured, shared by the security tests (auth matrix, limits, fuzzing)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fewshot_service.bank import SqlBank
from fewshot_service.embedding import Embedder
from fewshot_service.index import IndexStore
from fewshot_service.serving.lifecycle import FewshotService
from fewshot_service.settings import Settings

from .helpers import seed_rows, write_jsonl

# key -> (role, name): FEWSHOT_API_KEYS of the keyed service.
KEYS = {
    "reader-secret-0123456789": ("reader", "app-server"),
    "curator-secret-0123456789": ("curator", "cara"),
    "admin-secret-0123456789": ("admin", "ops"),
}
KEY_OF = {role: key for key, (role, _) in KEYS.items()}
SPEC = ",".join(f"{key}:{role}:{name}" for key, (role, name) in KEYS.items())


def bearer(role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {KEY_OF[role]}"}


def tiny_seed_dir(root: Path, per_topic: int = 2) -> Path:
    """A seed bank of a few examples per topic: start-up and rebuilds take well under a second."""
    taken: dict[str | None, int] = {}
    rows = []
    for row in seed_rows():
        if taken.get(row.get("topic"), 0) < per_topic:
            taken[row.get("topic")] = taken.get(row.get("topic"), 0) + 1
            rows.append(row)
    write_jsonl(root / "seed.jsonl", rows)
    return root


def keyed_service(root: Path, embedder: Embedder, **overrides: Any) -> FewshotService:
    settings = Settings(
        data_dir=root / "data",
        index_dir=root / "indexes",
        seed_dir=tiny_seed_dir(root / "seed"),
        api_keys=SPEC,
        **overrides,
    )
    return FewshotService(
        settings, SqlBank(settings.resolved_database_url()), lambda: embedder, IndexStore(settings.index_dir)
    )
