"""No acknowledged write is lost, whatever happens to the process: a real `fewshot serve` on a SQLite bank,
curators adding examples over HTTP from several threads, killed with SIGKILL at random moments (some during
start-up, while it loads or rebuilds its index) and restarted, over and over.

After every kill: the database passes `PRAGMA integrity_check` and holds every acknowledged (201) example
exactly once. After every restart: the index the server serves holds exactly the bank's live examples, each
once (no orphans, none missing, no duplicates). Requests cut off by the kill may or may not have landed;
that is what acknowledging means.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import httpx

from ..keyed import SPEC, bearer, tiny_seed_dir
from ..servers import free_port, wait_until_answers

KILLS = 20
WRITERS = 4
STARTUP_KILL_EVERY = 4  # every 4th kill lands during start-up instead of under writes


def start(root: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = dict(
        os.environ,
        FEWSHOT_DATA_DIR=str(root / "data"),
        FEWSHOT_INDEX_DIR=str(root / "indexes"),
        FEWSHOT_SEED_DIR=str(tiny_seed_dir(root / "seed")),
        FEWSHOT_API_KEYS=SPEC,
        FEWSHOT_RATE_LIMIT_PER_SECOND="0",
        FEWSHOT_LOG_FORMAT="json",
        HF_HUB_OFFLINE="1",
    )
    env.pop("FEWSHOT_SEED_ON_EMPTY", None)
    executable = Path(sys.executable).with_name("fewshot")
    with log.open("ab") as out:
        return subprocess.Popen([str(executable), "serve", "--port", str(port)], env=env, stdout=out, stderr=out)


def write_until_refused(client: httpx.Client, name: str, acknowledged: dict[str, str], lock: threading.Lock) -> None:
    """Add examples one at a time until the server is gone; record those answered 201."""
    for n in range(1_000_000):
        external_id = f"{name}-{n}"
        body = {
            "external_id": external_id,
            "input": f"Crash drill {external_id}: a crate holds {n + 3} boxes of {len(name)} jars. How many jars?",
            "output": str((n + 3) * len(name)),
            "status": "approved",
        }
        try:
            response = client.post("/v1/examples", params={"on_duplicate": "keep"}, json=body)
        except httpx.TransportError:
            return  # killed mid-request: not acknowledged
        assert response.status_code == 201, response.text
        with lock:
            acknowledged[external_id] = response.json()["examples"][0]["id"]


def check_bank(database: Path, acknowledged: dict[str, str]) -> dict[str, str]:
    """With no server running: integrity, and every acknowledged example once. Returns live id -> external id."""
    with sqlite3.connect(database) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        rows = conn.execute(
            "SELECT id, external_id, embedding IS NOT NULL FROM examples WHERE deleted_at IS NULL"
        ).fetchall()
    conn.close()
    counts = Counter(external_id for _, external_id, _ in rows)
    live = {example_id: external_id for example_id, external_id, _ in rows}
    for external_id, example_id in acknowledged.items():
        assert counts[external_id] == 1, f"{external_id} is stored {counts[external_id]} times"
        assert live.get(example_id) == external_id, f"{external_id} lost its id {example_id}"
    assert all(embedded for _, _, embedded in rows), "an acknowledged example was stored without its embedding"
    return live


def check_index(client: httpx.Client, live: dict[str, str]) -> None:
    status = client.get("/v1/admin/index", params={"ids": "true"}, headers=bearer("admin")).json()
    ids = status["ids"]
    assert len(ids) == len(set(ids)), "an example is in the index twice"
    assert set(ids) - set(live) == set(), "the index holds examples the bank does not"
    assert set(live) - set(ids) == set(), "the index lacks examples of the bank"
    assert status["size"] == len(live)


def test_sigkill_at_random_moments_loses_no_acknowledged_write(tmp_path: Path) -> None:
    rng = random.Random(8)
    log = tmp_path / "server.log"
    database = tmp_path / "data" / "bank.sqlite3"
    acknowledged: dict[str, str] = {}
    lock = threading.Lock()
    kills = restarts_checked = 0
    started_at = time.monotonic()
    while kills < KILLS:
        port = free_port()
        process = start(tmp_path, port, log)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60, headers=bearer("curator")) as client:
            if kills % STARTUP_KILL_EVERY == STARTUP_KILL_EVERY - 1:
                time.sleep(rng.uniform(0.2, 2.0))  # loading the model, replaying the bank, rebuilding the index
            else:
                wait_until_answers(f"http://127.0.0.1:{port}", process, log, timeout=120, interval=0.05)
                if database.exists() and kills:
                    check_index(client, check_bank_live(database))
                    restarts_checked += 1
                writers = [
                    threading.Thread(target=write_until_refused, args=(client, f"k{kills}w{w}", acknowledged, lock))
                    for w in range(WRITERS)
                ]
                for writer in writers:
                    writer.start()
                time.sleep(rng.uniform(0.3, 1.5))
            process.send_signal(signal.SIGKILL)
            process.wait(30)
            kills += 1
            if kills % STARTUP_KILL_EVERY:
                for writer in writers:
                    writer.join(60)
        if database.exists():
            check_bank(database, acknowledged)

    # One last start: everything acknowledged is served, and the server's logs were JSON throughout.
    port = free_port()
    process = start(tmp_path, port, log)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            wait_until_answers(f"http://127.0.0.1:{port}", process, log, timeout=120, interval=0.05)
            live = check_bank_live(database)
            check_index(client, live)
            assert set(acknowledged.values()) <= set(live)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)
    check_bank(database, acknowledged)
    assert len(acknowledged) > 10 * WRITERS, "too few writes were acknowledged to mean anything"
    assert restarts_checked >= KILLS // 2
    for line in log.read_text().splitlines():
        json.loads(line)
    print(
        f"{kills} kills, {restarts_checked + 1} restarts checked, {len(acknowledged)} acknowledged examples, "
        f"{time.monotonic() - started_at:.0f} s"
    )


def check_bank_live(database: Path) -> dict[str, str]:
    """The live examples (id -> external id) as the bank holds them while a server is up (WAL readers)."""
    with sqlite3.connect(database) as conn:
        rows = conn.execute("SELECT id, external_id FROM examples WHERE deleted_at IS NULL").fetchall()
    conn.close()
    return dict(rows)
