"""Replicas as they are deployed: `fewshot serve` processes sharing one PostgreSQL database and one index
directory. A write through one is selectable (or gone) on the other within 2 s; a replica started late
catches up from the published index plus the change feed; writers on both replicas lose nothing.

The replicas start together on an empty database (what a fresh deployment does) and are shared by the
tests of this module: each process loads the model, which takes seconds.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from fewshot_service.bank import SqlBank

from ..helpers import write_jsonl
from ..pg import fresh_database
from ..servers import free_port, wait_until_answers

BOUND_SECONDS = 2.0
FEWSHOT = Path(sys.executable).with_name("fewshot")
SEED = [
    {"external_id": f"seed-{n}", "input": text, "output": "x", "topic": topic, "difficulty": 1 + n % 5,
     "status": "approved", "tags": ["seed"]}
    for n, (topic, text) in enumerate([
        ("arithmetic", "A shop sells pens at 3 for $2. How much do 12 pens cost?"),
        ("arithmetic", "What is 15% of 240?"),
        ("geometry", "Find the perimeter of a square with side 7 cm."),
        ("geometry", "What is the area of a triangle with base 10 m and height 4 m?"),
        ("probability", "Two dice are rolled. What is the chance their sum is 7?"),
        ("probability", "A bag holds 3 red and 5 blue balls. What is P(red)?"),
        ("units", "How many seconds are in 3.5 minutes?"),
        ("units", "Convert 2.5 kg to grams."),
    ])
]  # fmt: skip


@dataclass
class Replica:
    name: str
    process: subprocess.Popen[bytes]
    client: httpx.Client
    log: Path

    def ready(self) -> dict[str, Any]:
        response = self.client.get("/readyz")
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def tagged(self, tag: str, statuses: tuple[str, ...] = ("approved",)) -> list[dict[str, Any]]:
        body = {"prompt": "any problem", "k": 5, "strategy": "knn", "filters": {"tags": [tag], "statuses": statuses}}
        response = self.client.post("/v1/select", json=body)
        assert response.status_code == 200, response.text
        examples: list[dict[str, Any]] = response.json()["examples"]
        return examples

    def add(self, text: str, tag: str, **fields: Any) -> dict[str, Any]:
        body = {"input": text, "output": "x", "tags": [tag], "status": "approved", **fields}
        response = self.client.post("/v1/examples", json=body, params={"on_duplicate": "keep"})
        assert response.status_code == 201, response.text
        made: dict[str, Any] = response.json()["examples"][0]
        return made

    def label(self, example_id: str, verdict: str) -> None:
        label = {"annotator": f"curator-{self.name}", "verdict": verdict, "score": 4 if verdict == "approve" else 1}
        response = self.client.post(f"/v1/examples/{example_id}/labels", json=label)
        assert response.status_code == 201, response.text


class Cluster:
    """Replica processes over one database and one index directory."""

    def __init__(self, root: Path, url: str) -> None:
        self.root = root
        self.url = url
        self.env = dict(
            os.environ,
            HF_HUB_OFFLINE="1",
            FEWSHOT_DATABASE_URL=url,
            FEWSHOT_INDEX_DIR=str(root / "indexes"),  # shared
            FEWSHOT_SEED_DIR=str(write_jsonl(root / "seed" / "seed.jsonl", SEED).parent),
            FEWSHOT_LOG_FORMAT="text",
        )
        self.env.pop("FEWSHOT_API_KEYS", None)  # loopback: authentication may stay off
        self.replicas: list[Replica] = []

    def start(self, name: str) -> Replica:
        port = free_port()
        log = self.root / f"{name}.log"
        env = dict(self.env, FEWSHOT_DATA_DIR=str(self.root / name))  # each its own quality-model folder
        with log.open("ab") as out:
            process = subprocess.Popen(
                [str(FEWSHOT), "serve", "--port", str(port)], env=env, stdout=out, stderr=subprocess.STDOUT
            )
        replica = Replica(name, process, httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60), log)
        self.replicas.append(replica)
        return replica

    def wait_ready(self, replica: Replica, timeout: float = 240) -> None:
        wait_until_answers(str(replica.client.base_url).rstrip("/"), replica.process, replica.log, timeout=timeout)

    def stop(self, replica: Replica) -> None:
        replica.process.send_signal(signal.SIGTERM)
        try:
            replica.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            replica.process.kill()
            replica.process.wait()
        replica.client.close()
        self.replicas.remove(replica)

    def command(self, *args: str) -> str:
        env = dict(self.env, FEWSHOT_DATA_DIR=str(self.root / "job"))
        done = subprocess.run([str(FEWSHOT), *args], env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with fresh_database() as url:
        cluster = Cluster(tmp_path_factory.mktemp("replicas"), url)
        try:
            a, b = cluster.start("a"), cluster.start("b")  # together, on the empty database
            cluster.wait_ready(a)
            cluster.wait_ready(b)
            yield cluster
        finally:
            for replica in list(cluster.replicas):
                cluster.stop(replica)


def delay(check: Callable[[], bool], bound: float = BOUND_SECONDS) -> float:
    """Seconds until check() holds; fails once the bound has passed."""
    started = time.monotonic()
    while not check():
        waited = time.monotonic() - started
        assert waited < bound, f"not within {bound}s"
        time.sleep(0.02)
    return time.monotonic() - started


def test_replicas_started_together_share_one_seeded_bank(cluster: Cluster) -> None:
    a, b = cluster.replicas
    bank = SqlBank(cluster.url)
    try:
        assert bank.count() == len(SEED)  # seeded once, though both found the database empty
    finally:
        bank.close()
    assert a.ready()["examples"] == b.ready()["examples"] == len(SEED)
    assert {e["external_id"] for e in b.tagged("seed")} <= {r["external_id"] for r in SEED}


def test_every_kind_of_write_through_one_replica_reaches_the_other_within_2_s(cluster: Cluster) -> None:
    a, b = cluster.replicas
    delays: dict[str, float] = {}

    made = a.add("A cyclist rides 36 km in 90 minutes. What is her speed in km/h?", "sync-add")
    delays["add"] = delay(lambda: [e["id"] for e in b.tagged("sync-add")] == [made["id"]])

    edited = a.client.patch(f"/v1/examples/{made['id']}", json={"output": "24 km/h", "tags": ["sync-edit"]})
    assert edited.status_code == 200, edited.text
    delays["edit"] = delay(lambda: [e["output"] for e in b.tagged("sync-edit")] == ["24 km/h"])

    pending = a.add("A recipe needs 250 g of flour per 4 people. How much for 10?", "sync-approve", status="pending")
    assert b.tagged("sync-approve") == []
    a.label(pending["id"], "approve")
    delays["approve"] = delay(lambda: [e["id"] for e in b.tagged("sync-approve")] == [pending["id"]])

    a.label(made["id"], "reject")
    delays["reject"] = delay(lambda: b.tagged("sync-edit") == [])
    assert [e["status"] for e in b.tagged("sync-edit", statuses=("rejected",))] == ["rejected"]

    assert a.client.delete(f"/v1/examples/{pending['id']}").status_code == 204
    delays["delete"] = delay(lambda: b.tagged("sync-approve", statuses=("approved", "pending", "rejected")) == [])

    back = b.add("A tap fills a 12 litre bucket in 40 seconds. What is its flow in litres per minute?", "sync-back")
    delays["add through B, seen on A"] = delay(lambda: [e["id"] for e in a.tagged("sync-back")] == [back["id"]])
    print("\nsync delay from the write's response to the other replica's select (s):", delays)
    bank = SqlBank(cluster.url)
    try:
        revision = bank.revision()
    finally:
        bank.close()
    for replica in (a, b):  # both report the bank's last revision as applied
        delay(lambda r=replica: r.ready()["synced_revision"] == revision)  # type: ignore[misc]


def test_writers_on_both_replicas_lose_nothing(cluster: Cluster) -> None:
    a, b = cluster.replicas
    writers, batches, size = 4, 4, 10

    def write(writer: int) -> list[str]:
        replica = (a, b)[writer % 2]
        acknowledged: list[str] = []
        for batch in range(batches):
            examples = [
                {"input": f"Writer {writer} batch {batch} item {n}: a box holds {n + 2} rows of {writer + 3} cans. "
                 "How many cans?", "output": str((n + 2) * (writer + 3)), "external_id": f"cw-{writer}-{batch}-{n}",
                 "tags": [f"cw-{writer}-{batch}-{n}"], "status": "approved"}
                for n in range(size)
            ]  # fmt: skip
            response = replica.client.post("/v1/examples", json={"examples": examples}, params={"on_duplicate": "keep"})
            assert response.status_code == 201, response.text
            acknowledged += [e["external_id"] for e in response.json()["examples"]]
        return acknowledged

    with ThreadPoolExecutor(writers) as pool:
        acknowledged = [eid for ids in pool.map(write, range(writers)) for eid in ids]
    assert len(acknowledged) == len(set(acknowledged)) == writers * batches * size

    bank = SqlBank(cluster.url)
    try:
        stored = [e.external_id for e in bank.iter_examples() if (e.external_id or "").startswith("cw-")]
        assert sorted(stored) == sorted(acknowledged)  # each stored exactly once
        revision, live = bank.revision(), bank.count()
    finally:
        bank.close()
    # Both indexes reach the bank's last revision and hold every live example, once.
    for replica in (a, b):
        delay(lambda r=replica: r.ready()["synced_revision"] >= revision)  # type: ignore[misc]
        assert replica.ready()["examples"] == live
    for writer, batch, n in [(0, 0, 0), (1, 3, 9), (2, 1, 5), (3, 2, 7)]:
        tag = f"cw-{writer}-{batch}-{n}"
        assert [e["external_id"] for e in a.tagged(tag)] == [e["external_id"] for e in b.tagged(tag)] == [tag]


def test_a_replica_started_late_catches_up_from_the_published_index_and_the_feed(cluster: Cluster) -> None:
    a, b = cluster.replicas
    # The offline rebuild job publishes a version to the shared directory; running replicas adopt it.
    out = cluster.command("rebuild")
    version = out.split("index version ", 1)[1].split(":", 1)[0]
    for replica in (a, b):
        delay(lambda r=replica: r.ready()["index_version"] == version, bound=10)  # type: ignore[misc]

    # Changes after the published revision: the late replica must replay them.
    late_add = a.add("A ribbon 3.6 m long is cut into 9 equal pieces. How long is each piece in cm?", "late-add")
    gone = b.tagged("seed")[0]
    assert b.client.delete(f"/v1/examples/{gone['id']}").status_code == 204

    c = cluster.start("c")
    cluster.wait_ready(c)
    try:
        ready = c.ready()
        assert ready["index_version"] == version  # loaded the published version, no rebuild of its own
        assert "replayed" in c.log.read_text() and "rebuilding the index" not in c.log.read_text()
        assert [e["id"] for e in c.tagged("late-add")] == [late_add["id"]]
        assert gone["id"] not in {e["id"] for e in c.tagged("seed")}
        assert ready["examples"] == a.ready()["examples"] == b.ready()["examples"]
        # And it follows the feed from then on like the others.
        newest = b.add("How many minutes are in a quarter of a day?", "late-follow")
        delay(lambda: [e["id"] for e in c.tagged("late-follow")] == [newest["id"]])
    finally:
        cluster.stop(c)
