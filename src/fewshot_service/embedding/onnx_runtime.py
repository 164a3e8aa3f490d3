"""The same sentence-transformers model run by ONNX Runtime: a faster query path on the CPU.

A prompt is one short text; PyTorch spends much of its time per call on operator dispatch, ONNX Runtime
far less. The graph is exported here from the local model (nothing is downloaded) with mean pooling and
L2 normalisation inside it, so one `run` gives the finished embedding. Whether the export reproduces the
reference model is checked by `backends.load_embedder` before it is used, never assumed.
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
import time
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import EmbeddingError
from .padding import plan_batches

MODEL_FILE = "model.onnx"
META_FILE = "meta.json"
TOKENIZER_FILE = "tokenizer.json"
_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
# Not "embedding": the exported BERT graph already names a value so (its token embedding lookup).
OUTPUT = "sentence_embedding"
CPU = ["CPUExecutionProvider"]
# A call spins only when no two calls have overlapped for this long: under sustained concurrency the gaps
# between overlapping calls are a few model calls long, so it stays on the sharing session throughout.
QUIET_SECONDS = 0.25


@contextmanager
def _quiet_exporter() -> Iterator[None]:
    """The exporter's chatter kept out of the server's log: a warning per torchvision operator it cannot
    register (torchvision is not installed, and BERT uses none) and library-internal deprecation notices."""
    registration = logging.getLogger("torch.onnx._internal.exporter._registration")
    level = registration.level
    registration.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            yield
    finally:
        registration.setLevel(level)


def export_onnx(reference_model: Any, directory: Path, model_id: str) -> None:
    """Write model.onnx, tokenizer.json and meta.json for a SentenceTransformer into directory.

    Only the transformer runs in the graph, followed by mean pooling and normalisation; a model whose own
    pipeline differs (CLS pooling, a dense layer ...) then disagrees with its reference and is refused.
    """
    import torch

    transformer = reference_model[0].auto_model.eval()
    tokenizer = reference_model.tokenizer

    class MeanPooled(torch.nn.Module):  # type: ignore[misc]  # torch types as Any here (pyproject, mypy)
        def __init__(self) -> None:
            super().__init__()
            self.transformer = transformer

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            hidden = self.transformer(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, dim=1)

    directory.mkdir(parents=True, exist_ok=True)
    sample = tokenizer(["an example sentence", "a second, longer example sentence"], padding=True, return_tensors="pt")
    if "token_type_ids" not in sample:
        raise EmbeddingError("ONNX export needs a BERT-style tokenizer with token_type_ids")
    # Batch size and text length vary from call to call; the graph must not be specialised to the sample's.
    dynamic = torch.export.Dim.DYNAMIC
    with _quiet_exporter():
        torch.onnx.export(
            MeanPooled().eval(),
            tuple(sample[name] for name in _INPUTS),
            str(directory / MODEL_FILE),
            input_names=list(_INPUTS),
            output_names=[OUTPUT],
            dynamic_shapes=tuple({0: dynamic, 1: dynamic} for _ in _INPUTS),
            opset_version=18,
            dynamo=True,  # torch.export + onnxscript: the TorchScript exporter is deprecated
            external_data=False,  # one self-contained file, as OnnxEmbedder loads it
            verbose=False,
        )
    tokenizer.backend_tokenizer.save(str(directory / TOKENIZER_FILE))
    get_dim = (
        getattr(reference_model, "get_embedding_dimension", None) or reference_model.get_sentence_embedding_dimension
    )
    meta = {
        "model_id": model_id,
        "dim": int(get_dim()),
        "max_seq_length": int(reference_model.max_seq_length),
        "pad_token_id": int(tokenizer.pad_token_id or 0),
        "pad_token": str(tokenizer.pad_token or "[PAD]"),
    }
    (directory / META_FILE).write_text(json.dumps(meta, indent=2))


def _options(onnxruntime: Any, threads: int | None, spin: bool) -> Any:
    options = onnxruntime.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    if spin:
        options.add_session_config_entry("session.force_spinning_stop", "1")
    else:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


def _shared_threads(threads: int | None, lanes: int) -> int:
    """Threads per call when `lanes` calls share the cores (or the `threads` given for one call)."""
    available = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else range(os.cpu_count() or 1)
    cores = threads or len(available)
    return max(1, cores // max(1, lanes))


class OnnxEmbedder:
    """Embedder over an exported model.onnx; needs neither PyTorch nor transformers at run time."""

    backend = "onnx"

    def __init__(self, directory: Path, batch_size: int = 64, threads: int | None = None, lanes: int = 1) -> None:
        """threads: what one call alone may use (None: ONNX Runtime's default, a thread per core); lanes: how
        many calls may run at once (MicroBatcher's lanes), which then share those threads."""
        try:
            import onnxruntime
            from tokenizers import Tokenizer

            meta = json.loads((directory / META_FILE).read_text())
            model = str(directory / MODEL_FILE)
            # Two sessions over one model file (about 90 MB of weights each): which one a call takes, and why,
            # is _session_for's to say.
            self._alone = onnxruntime.InferenceSession(model, _options(onnxruntime, threads, spin=True), providers=CPU)
            self._shared = onnxruntime.InferenceSession(
                model, _options(onnxruntime, _shared_threads(threads, lanes), spin=False), providers=CPU
            )
            # Two tokenizers from one file: the model's (truncated, padded, special tokens) and an
            # untruncated one that counts what a prompt budget pays for.
            self._tokenizer = Tokenizer.from_file(str(directory / TOKENIZER_FILE))
            self._counter = Tokenizer.from_file(str(directory / TOKENIZER_FILE))
        except Exception as exc:  # missing package, damaged file, unreadable meta
            raise EmbeddingError(f"cannot load the ONNX model in {directory}: {exc}") from exc
        self.model_id: str = meta["model_id"]
        self.dim: int = int(meta["dim"])
        self.batch_size = batch_size
        self._tokenizer.enable_truncation(int(meta["max_seq_length"]))
        # Unpadded: embed() pads each batch itself, to the longest text of that batch only.
        self._tokenizer.no_padding()
        self._pad_id = int(meta["pad_token_id"])
        self._counter.no_truncation()
        self._counter.no_padding()
        # A fast tokenizer instance must not be used by two threads at once ("Already borrowed").
        self._lock = threading.Lock()
        self._running = 0  # model calls under way
        self._running_lock = threading.Lock()
        self._overlapped_at = -math.inf  # when two calls last ran at once
        self._overlaps = 0  # calls that started while another ran
        self.alone_calls = 0  # calls that ran on the spinning session, for tests

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        try:
            with self._lock:
                encodings = self._tokenizer.encode_batch(list(texts))
            # Sorted by token count and cut where padding would cost more than a model call (padding.py).
            order = sorted(range(len(texts)), key=lambda i: len(encodings[i].ids))
            lengths = [len(encodings[i].ids) for i in order]
            out = np.empty((len(texts), self.dim), dtype=np.float32)
            for batch in plan_batches(lengths, self.batch_size):
                rows = [order[position] for position in batch]
                out[rows] = self._run([encodings[row] for row in rows], lengths[batch.stop - 1])
        except EmbeddingError:
            raise
        except Exception as exc:
            raise EmbeddingError(f"embedding failed: {exc}") from exc
        return out

    def _run(self, encodings: list[Any], width: int) -> np.ndarray:
        """One model call over tokenised texts, each padded to width."""
        feeds = {name: np.zeros((len(encodings), width), dtype=np.int64) for name in _INPUTS}
        feeds["input_ids"].fill(self._pad_id)
        for row, encoding in enumerate(encodings):
            size = len(encoding.ids)
            feeds["input_ids"][row, :size] = encoding.ids
            feeds["attention_mask"][row, :size] = 1
            feeds["token_type_ids"][row, :size] = encoding.type_ids
        with self._running_lock:
            self._running += 1
            now = time.monotonic()
            if self._running > 1:
                self._overlaps += 1
                self._overlapped_at = now
            overlaps_before = self._overlaps
            alone = self._running == 1 and now - self._overlapped_at > QUIET_SECONDS
            self.alone_calls += alone
        try:
            (vectors,) = self._session_for(alone).run([OUTPUT], feeds)
        finally:
            with self._running_lock:
                # A call that another overlapped, whenever, ends an overlap too.
                if self._running > 1 or self._overlaps != overlaps_before:
                    self._overlapped_at = time.monotonic()
                self._running -= 1
        return np.asarray(vectors, dtype=np.float32)

    @property
    def running(self) -> int:
        """Model calls under way."""
        return self._running

    def _session_for(self, alone: bool) -> Any:
        """The spinning session for a call that starts with the cores to itself; the sharing one otherwise.

        A model call is about a hundred operators, each split over ONNX Runtime's pool threads; between two,
        the pool's threads either spin or sleep. Spinning makes a lone prompt's call a fifth faster (no thread
        has to be woken a hundred times), and force_spinning_stop ends it as the call ends, so the work after
        the call (search, selection, the answer) gets the cores. But calls running side by side (micro-batches
        of concurrent requests, on two lanes) would spin against each other and the request threads; they run
        on the sharing session instead: no spinning, and the cores split between the lanes (one thread each on
        2 cores), which got 16 clients about a tenth more answers a second than two threads each.
        Under sustained load a call still finds itself alone now and then, between two batches of the other
        lane; spinning then took cores from the next call and the request threads. So "alone" means alone and
        no overlap for QUIET_SECONDS: 16 clients got about 4% more answers a second (RESULTS.md, fourth round).
        Figures: benchmarks/RESULTS.md, "Where /v1/select's time goes (issue 19)"."""
        return self._alone if alone else self._shared

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        with self._lock:
            encodings = self._counter.encode_batch(list(texts), add_special_tokens=False)
        return [len(e.ids) for e in encodings]
