"""Identical adds racing through two replicas over one PostgreSQL bank store one example (issue 16, item 5)."""

from __future__ import annotations

from pathlib import Path

from fewshot_service.embedding import SentenceTransformerEmbedder

from ..api.test_duplicate_race import race_identical_adds
from ..pg import fresh_database


def test_concurrent_identical_adds_store_one_on_postgresql(
    tmp_path: Path, embedder: SentenceTransformerEmbedder
) -> None:
    with fresh_database() as url:
        race_identical_adds(tmp_path, embedder, url, "reject")
