"""Which FAISS index to build for a bank, and how its vectors are stored.

Exact search (a flat scan) is the right answer while it is fast; from ``ann_threshold`` vectors ``auto``
builds an inverted-file index (IVF) instead. IVF rather than HNSW because it is the one that fits the issue's
budget on a 2-core machine. On the synthetic 1M-vector bank of benchmarks/scale.py (384-d, clustered like
sentence embeddings) an IVF with 2·√n lists trained and filled in about 30 s and found 98% of the exact top 10
while scanning under 2% of the vectors (the whole `fewshot rebuild`, reading the bank included, took 81 s);
an HNSW graph (M=16, efConstruction=40) took 100 s for the graph alone and reached 0.91 recall@10 only at
efSearch 256. HNSW stays available (``kind="hnsw"``) for machines with more cores or banks that rarely change.
Uniformly random vectors, which have no neighbourhoods, defeat both (IVF: 0.09 recall@10 at nprobe 32):
the recall figures hold for data with structure, as embeddings of real text have.

Storage is float32 by default; float16 halves the memory at no measured recall cost, 8-bit scalar
quantisation quarters it for about 0.02 of recall@10 (benchmarks/RESULTS.md, "Scale").
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import math
from dataclasses import dataclass
from typing import Any, Literal

import faiss

log = logging.getLogger(__name__)

Kind = Literal["auto", "flat", "ivf", "hnsw"]
Storage = Literal["float32", "float16", "sq8"]
KINDS: tuple[str, ...] = ("auto", "flat", "ivf", "hnsw")
STORAGES: tuple[str, ...] = ("float32", "float16", "sq8")

_QUANTIZERS = {"float16": faiss.ScalarQuantizer.QT_fp16, "sq8": faiss.ScalarQuantizer.QT_8bit}
_STORAGE_OF_QTYPE = {int(qtype): name for name, qtype in _QUANTIZERS.items()}
# k-means wants about 40 training points per list (FAISS warns below 39); more only costs time.
_POINTS_PER_LIST = 40
# Training a scalar quantiser only estimates each dimension's range: a modest sample does it.
_SQ_TRAINING_POINTS = 50_000
_MIN_SQ8_VECTORS = 1_000


@dataclass(frozen=True)
class IndexOptions:
    """How to build an index version (search-time parameters are stored in the index file)."""

    kind: Kind = "auto"
    storage: Storage = "float32"
    ann_threshold: int = 50_000  # auto: exact below this many vectors, IVF from it
    ivf_nlist: int | None = None  # None: 2·√n lists
    ivf_nprobe: int = 32
    hnsw_m: int = 32
    hnsw_ef_construction: int = 40
    hnsw_ef_search: int = 128

    def resolve(self, count: int) -> Literal["flat", "ivf", "hnsw"]:
        """The kind of index to build for count vectors."""
        if self.kind == "auto":
            return "flat" if count < self.ann_threshold else "ivf"
        return self.kind

    def nlist(self, count: int) -> int:
        """Inverted lists for count vectors: enough training points per list, at least one list."""
        wanted = self.ivf_nlist if self.ivf_nlist is not None else round(2 * math.sqrt(count))
        return max(1, min(wanted, count // _POINTS_PER_LIST))


def training_size(options: IndexOptions, count: int) -> int:
    """How many vectors the index for count vectors is trained on (0: it needs no training)."""
    kind = options.resolve(count)
    if kind == "ivf":
        return options.nlist(count) * _POINTS_PER_LIST
    if options.storage == "sq8":
        return _SQ_TRAINING_POINTS
    return 0


def create(dim: int, options: IndexOptions, count: int) -> Any:
    """An empty index for about count vectors of dimension dim (untrained when it needs training)."""
    kind = options.resolve(count)
    metric = faiss.METRIC_INNER_PRODUCT
    # Any: FAISS's stubs miss some constructors' overloads and the subclasses' attributes.
    qtype: Any = _QUANTIZERS.get(options.storage)
    if options.storage == "sq8" and count < _MIN_SQ8_VECTORS:
        qtype = None  # too few vectors to estimate each dimension's range from; and too few to matter
    if kind == "flat":
        return faiss.IndexFlatIP(dim) if qtype is None else faiss.IndexScalarQuantizer(dim, qtype, metric)
    if kind == "hnsw":
        index: Any = (
            faiss.IndexHNSWFlat(dim, options.hnsw_m, metric)
            if qtype is None
            else faiss.IndexHNSWSQ(dim, qtype, options.hnsw_m, metric)
        )
        index.hnsw.efConstruction = options.hnsw_ef_construction
        index.hnsw.efSearch = options.hnsw_ef_search
        return index
    _fixed_mmap_threshold()
    nlist = options.nlist(count)
    quantizer = faiss.IndexFlatIP(dim)
    ivf: Any = (
        faiss.IndexIVFFlat(quantizer, dim, nlist, metric)
        if qtype is None
        else faiss.IndexIVFScalarQuantizer(quantizer, dim, nlist, qtype, metric)
    )
    ivf.nprobe = min(options.ivf_nprobe, nlist)
    ivf.cp.niter = 10  # fewer k-means rounds than FAISS's 25 give lists as good for search, much sooner
    # Reading a slot's vector back (MMR, the upsert check) needs slot -> (list, offset).
    ivf.make_direct_map()
    return ivf


def describe(index: Any) -> tuple[str, str]:
    """(kind, storage) of a FAISS index built by create()."""
    codec: Any
    if isinstance(index, faiss.IndexIVF):
        kind, codec = "ivf", index
    elif isinstance(index, faiss.IndexHNSW):
        kind, codec = "hnsw", faiss.downcast_index(index.storage)
    else:
        kind, codec = "flat", index
    if isinstance(codec, faiss.IndexScalarQuantizer | faiss.IndexIVFScalarQuantizer):
        return kind, _STORAGE_OF_QTYPE.get(int(codec.sq.qtype), f"sq{int(codec.sq.qtype)}")
    return kind, "float32"


_mmap_threshold_fixed = False


def _fixed_mmap_threshold() -> None:
    """Stop glibc from raising its mmap threshold, once per process.

    An IVF keeps one growing buffer per list. By default glibc raises the size above which it maps memory
    straight from the kernel each time such a buffer is freed, so the lists' outgrown buffers end up on the
    heap and stay resident: filling a 1M-vector IVF then peaked at 1.5 x the vectors. With the threshold
    fixed at glibc's initial 128 KiB, outgrown buffers go back to the kernel and the peak was 1.1 x.
    """
    global _mmap_threshold_fixed
    if _mmap_threshold_fixed:
        return
    _mmap_threshold_fixed = True
    m_mmap_threshold = -3  # from <malloc.h>
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
        libc.mallopt(m_mmap_threshold, 128 * 1024)
    except (OSError, AttributeError):  # not glibc: its allocator is left alone
        log.debug("mallopt is not available; the IVF build may use more memory")
