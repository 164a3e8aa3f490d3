"""Building an index version from the bank: embed only what lacks an embedding, then build and save."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from ..bank import ExampleBank
from ..embedding import Embedder
from ..index import IndexManifest, IndexOptions, IndexStore, VectorIndex
from ..settings import Settings

log = logging.getLogger(__name__)

Progress = Callable[[int], None]


def index_options(settings: Settings) -> IndexOptions:
    """The index kind and storage the settings ask for."""
    return IndexOptions(
        kind=settings.index_kind,
        storage=settings.index_storage,
        ann_threshold=settings.index_ann_threshold,
        ivf_nlist=settings.index_ivf_nlist,
        ivf_nprobe=settings.index_ivf_nprobe,
        hnsw_m=settings.index_hnsw_m,
        hnsw_ef_construction=settings.index_hnsw_ef_construction,
        hnsw_ef_search=settings.index_hnsw_ef_search,
    )


# Texts read, embedded and committed together. The embedder cuts a page into model calls by length (padding.py),
# which it does better the more texts it can sort; each page is committed on its own, so an interrupted run
# redoes at most one page (256 texts: about a second of work).
EMBED_PAGE = 256


def embed_missing(
    bank: ExampleBank, embedder: Embedder, *, page_size: int = EMBED_PAGE, on_progress: Progress | None = None
) -> int:
    """Embed every example whose stored embedding is missing or from another model, page_size texts a page;
    returns how many."""
    done = 0
    for batch in bank.iter_unembedded(embedder.model_id, page_size):
        vectors = embedder.embed([text for _, text in batch])
        # Each batch is committed on its own, so an interrupted run resumes where it stopped.
        bank.store_embeddings(batch, vectors, embedder.model_id)
        done += len(batch)
        if on_progress is not None:
            on_progress(len(batch))
    return done


def build_version(
    bank: ExampleBank,
    embedder: Embedder,
    store: IndexStore,
    *,
    page_size: int = EMBED_PAGE,
    on_embed: Progress | None = None,
    on_index: Progress | None = None,
    options: IndexOptions | None = None,
) -> tuple[VectorIndex, IndexManifest]:
    """Bring embeddings up to date, build an index over every embedded example and make it current.

    The rows stream from the bank into FAISS a batch at a time: the vectors are never held twice."""
    started = time.perf_counter()
    embed_missing(bank, embedder, page_size=page_size, on_progress=on_embed)
    # Read the revision before the rows: a write that lands in between makes the manifest look
    # older than its contents, which errs towards a rebuild, never towards serving stale data.
    revision = bank.revision()
    index = VectorIndex.build(
        embedder.dim,
        bank.iter_index_rows(embedder.model_id),
        options=options,
        expected=bank.count(),
        on_progress=on_index,
    )
    manifest = store.save(
        index, model_id=embedder.model_id, bank_revision=revision, build_seconds=time.perf_counter() - started
    )
    log.info(
        "index version %s built (%s, %s): %d examples at bank revision %d in %.1fs",
        manifest.version,
        manifest.kind,
        manifest.storage,
        manifest.count,
        revision,
        manifest.build_seconds,
    )
    return index, manifest
