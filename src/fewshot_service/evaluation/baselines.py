"""LangChain's example selectors over the same bank and model, as rows of the evaluation table.

Both selectors run over ``langchain_community.vectorstores.FAISS`` built with ``FAISS.from_embeddings``
from the bank's stored embeddings (the same all-MiniLM-L6-v2 vectors the service indexes, so nothing is
embedded twice); each query is embedded per call by the service's own embedder. They use LangChain's
defaults: SemanticSimilarityExampleSelector (k nearest), MaxMarginalRelevanceExampleSelector (fetch_k=20,
lambda_mult=0.5). They know nothing of filters, statuses or the leakage guard. LangChain is an optional
(benchmark) dependency: ``pip install -e '.[bench]'``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import numpy as np

from ..errors import ConfigurationError

LC_SIMILARITY = "langchain:similarity"
LC_MMR = "langchain:mmr"
BASELINES = (LC_SIMILARITY, LC_MMR)
BASELINE_TITLES = {
    LC_SIMILARITY: "LangChain SemanticSimilarityExampleSelector",
    LC_MMR: "LangChain MaxMarginalRelevanceExampleSelector",
}

Select = Callable[[str], list[str]]  # prompt -> ids of the chosen examples, in the selector's order


class BaselineUnavailable(ConfigurationError):
    """LangChain is not installed."""


def langchain_selectors(
    ids: Sequence[str],
    texts: Sequence[str],
    vectors: np.ndarray,
    embed: Callable[[list[str]], np.ndarray],
    k: int,
) -> dict[str, Select]:
    """{LC_SIMILARITY: select, LC_MMR: select} over one FAISS store holding the bank."""
    os.environ.setdefault("LANGSMITH_TRACING", "false")
    os.environ.setdefault("LANGCHAIN_TRACING_V2", "false")
    try:
        from langchain_community.vectorstores import FAISS
        from langchain_core.embeddings import Embeddings
        from langchain_core.example_selectors import (
            MaxMarginalRelevanceExampleSelector,
            SemanticSimilarityExampleSelector,
        )
    except ImportError as exc:
        raise BaselineUnavailable(f"LangChain is not installed ({exc}); pip install -e '.[bench]'") from exc

    class _Embeddings(Embeddings):  # type: ignore[misc,unused-ignore]  # Any where LangChain is absent
        """The service's embedder (normalised all-MiniLM-L6-v2) behind LangChain's interface."""

        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            return [list(map(float, row)) for row in embed(list(texts))]

        def embed_query(self, text: str) -> list[float]:
            return self.embed_documents([text])[0]

    store = FAISS.from_embeddings(
        text_embeddings=list(zip(texts, np.asarray(vectors, dtype=np.float32).tolist(), strict=True)),
        embedding=_Embeddings(),
        metadatas=[{"id": i, "question": t} for i, t in zip(ids, texts, strict=True)],
        ids=list(ids),
    )
    similarity = SemanticSimilarityExampleSelector(vectorstore=store, k=k, input_keys=["question"])
    mmr = MaxMarginalRelevanceExampleSelector(vectorstore=store, k=k, input_keys=["question"])

    def run(selector: SemanticSimilarityExampleSelector | MaxMarginalRelevanceExampleSelector) -> Select:
        return lambda prompt: [str(example["id"]) for example in selector.select_examples({"question": prompt})]

    return {LC_SIMILARITY: run(similarity), LC_MMR: run(mmr)}
