"""Prometheus metrics: requests per route template, their latency, the served index, embedding time.

Each app has its own registry (no process-wide default registry), so several apps in one process, as in the
tests, never share counters. The index gauges are read from the served index when scraped.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, InfoMetricFamily, Metric

from ..embedding import Embedder
from ..serving.lifecycle import FewshotService

# Seconds, from a select's milliseconds to a rebuild's or an import's minutes (measured: benchmarks/RESULTS.md).
LATENCY_BUCKETS = (0.005, 0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 120.0)
EMBED_BUCKETS = (0.002, 0.005, 0.01, 0.02, 0.035, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class _IndexCollector:
    """The served index's size, version and bank revision, read at scrape time."""

    def __init__(self, service: FewshotService) -> None:
        self.service = service

    def collect(self) -> Iterable[Metric]:
        ready = GaugeMetricFamily("fewshot_ready", "1 once the bank and an index are loaded.")
        served = self.service._served  # read without raising: the scrape must work while loading
        ready.add_metric([], 1.0 if served is not None else 0.0)
        yield ready
        if served is None:
            return
        size = GaugeMetricFamily("fewshot_index_size", "Live (searchable) examples in the served index.")
        size.add_metric([], float(served.index.size))
        yield size
        slots = GaugeMetricFamily("fewshot_index_slots", "Slots in the served index, deleted ones included.")
        slots.add_metric([], float(len(served.index.slots)))
        yield slots
        revision = GaugeMetricFamily("fewshot_index_bank_revision", "Bank revision the served version was built at.")
        revision.add_metric([], float(served.manifest.bank_revision))
        yield revision
        info = InfoMetricFamily("fewshot_index", "The served index version.")
        info.add_metric([], {"version": served.manifest.version, "model": served.manifest.model_id})
        yield info


class _BankCollector:
    """The bank's last probed state, read at scrape time."""

    def __init__(self, service: FewshotService) -> None:
        self.health = service.bank.health

    def collect(self) -> Iterable[Metric]:
        available = GaugeMetricFamily(
            "fewshot_bank_available", "1 when the bank answered its last probe, 0 when not (or not probed yet)."
        )
        available.add_metric([], 1.0 if self.health.available else 0.0)
        yield available


class Metrics:
    def __init__(self, service: FewshotService) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "fewshot_http_requests",
            "HTTP requests answered, by method, route template and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "fewshot_http_request_duration_seconds",
            "Time to answer an HTTP request, by method and route template.",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "fewshot_http_requests_in_flight", "HTTP requests being handled now.", registry=self.registry
        )
        self.embedding = Histogram(
            "fewshot_embedding_seconds",
            "Time of one call to the embedding model (a prompt, or a batch of examples).",
            buckets=EMBED_BUCKETS,
            registry=self.registry,
        )
        self.embedded = Counter("fewshot_embedded_texts", "Texts embedded.", registry=self.registry)
        self.registry.register(_IndexCollector(service))
        self.registry.register(_BankCollector(service))
        self.refused_writes = Counter(
            "fewshot_bank_refused_writes",
            "Write requests answered 503 bank_unavailable: the bank was down, hung or all its slots were taken.",
            registry=self.registry,
        )


class TimedEmbedder:
    """An Embedder that records how long each embed() call takes; everything else goes to the inner one."""

    def __init__(self, inner: Embedder, metrics: Metrics) -> None:
        self.inner = inner
        self.metrics = metrics
        self.model_id = inner.model_id
        self.dim = inner.dim

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        started = time.perf_counter()
        try:
            return self.inner.embed(texts)
        finally:
            self.metrics.embedding.observe(time.perf_counter() - started)
            self.metrics.embedded.inc(len(texts))

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return self.inner.count_tokens(texts)

    def __getattr__(self, name: str) -> Any:
        # Whatever else the model offers (now or later) stays reachable through the wrapper.
        return getattr(self.inner, name)


def time_embeddings(service: FewshotService, metrics: Metrics) -> None:
    """Have the service's embedder report to metrics."""
    service.wrap_embedder(lambda embedder: TimedEmbedder(embedder, metrics))
