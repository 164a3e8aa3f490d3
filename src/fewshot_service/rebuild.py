"""Building an index version from the bank: embed only what lacks an embedding, then build and save."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from .bank import ExampleBank
from .embedding import Embedder
from .index import IndexManifest, IndexStore, VectorIndex

log = logging.getLogger(__name__)

Progress = Callable[[int], None]


def embed_missing(
    bank: ExampleBank, embedder: Embedder, *, batch_size: int = 64, on_progress: Progress | None = None
) -> int:
    """Embed every example whose stored embedding is missing or from another model; returns how many."""
    done = 0
    for batch in bank.iter_unembedded(embedder.model_id, batch_size):
        vectors = embedder.embed([text for _, text in batch])
        # Each batch is committed on its own, so an interrupted run resumes where it stopped.
        bank.store_embeddings(batch, vectors, embedder.model_id)
        done += len(batch)
        if on_progress is not None:
            on_progress(len(batch))
    return done


def build_version(
    bank: ExampleBank, embedder: Embedder, store: IndexStore, *, batch_size: int = 64, on_embed: Progress | None = None
) -> tuple[VectorIndex, IndexManifest]:
    """Bring embeddings up to date, build an index over every embedded example and make it current."""
    started = time.perf_counter()
    embed_missing(bank, embedder, batch_size=batch_size, on_progress=on_embed)
    # Read the revision before the rows: a write that lands in between makes the manifest look
    # older than its contents, which errs towards a rebuild, never towards serving stale data.
    revision = bank.revision()
    index = VectorIndex.build(embedder.dim, bank.iter_index_rows(embedder.model_id))
    manifest = store.save(
        index, model_id=embedder.model_id, bank_revision=revision, build_seconds=time.perf_counter() - started
    )
    log.info(
        "index version %s built: %d examples at bank revision %d in %.1fs",
        manifest.version,
        manifest.count,
        revision,
        manifest.build_seconds,
    )
    return index, manifest
