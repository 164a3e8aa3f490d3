"""The change-feed follower on the embedded SQLite bank: writes from another service or from `fewshot import`
reach a running server, and index versions another process publishes are adopted."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from typer.testing import CliRunner

from fewshot_service.api import create_app
from fewshot_service.cli.main import app as cli
from fewshot_service.curation.service import Curator
from fewshot_service.models import Example, ExampleCreate, SelectFilters, SelectRequest
from fewshot_service.serving.follower import ChangeFollower
from fewshot_service.serving.lifecycle import FewshotService

from ..conftest import ServiceFactory
from ..helpers import write_jsonl

BOUND_SECONDS = 2.0


def within(seconds: float, check: Callable[[], bool]) -> float:
    """Seconds until check() holds, failing after `seconds`."""
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < seconds, f"not within {seconds}s"
        time.sleep(0.02)
    return time.monotonic() - started


def tagged(service: FewshotService, tag: str) -> list[str]:
    request = SelectRequest(prompt="anything at all", k=5, filters=SelectFilters(tags=[tag]), strategy="knn")
    return [e.id for e in service.select(request).examples]


def add(curator: Curator, text: str, tag: str) -> list[Example]:
    record = ExampleCreate(input=text, output="x", tags=[tag], status="approved")
    return curator.add([record], on_duplicate="reject", actor="cara").examples


def test_a_second_service_on_the_same_bank_follows_writes_and_published_versions(
    make_service: ServiceFactory, tmp_path: Path
) -> None:
    a = make_service(seed_on_empty=False)
    a.start()
    b = make_service(seed_on_empty=False)
    b.start()
    follower = ChangeFollower(b, poll_seconds=0.1)
    follower.start()
    try:
        curator = Curator(a)
        [made] = add(curator, "How many legs do 3 spiders have?", "sp")
        within(BOUND_SECONDS, lambda: tagged(b, "sp") == [made.id])
        curator.delete(made.id, "cara")
        within(BOUND_SECONDS, lambda: tagged(b, "sp") == [])

        # A rebuild in A publishes a version; B adopts it and keeps every change after it.
        manifest = a.rebuild()
        within(BOUND_SECONDS, lambda: b.served().manifest.version == manifest.version)
        [later] = add(curator, "How many wheels do 4 tricycles have?", "tr")
        within(BOUND_SECONDS, lambda: tagged(b, "tr") == [later.id])
        # The replay makes the change searchable before it records the revision it reached: wait for both.
        within(BOUND_SECONDS, lambda: b.applied_revision == a.bank.revision())
    finally:
        follower.stop()
    assert not follower._thread or not follower._thread.is_alive()


def select(client: TestClient, body: dict[str, Any]) -> list[dict[str, Any]]:
    response = client.post("/v1/select", json=body)
    assert response.status_code == 200, response.text
    examples: list[dict[str, Any]] = response.json()["examples"]
    return examples


def test_fewshot_import_reaches_a_running_sqlite_server(make_service: ServiceFactory, tmp_path: Path) -> None:
    service = make_service(seed_on_empty=False, sync_poll_seconds=0.2)
    with TestClient(create_app(service.settings, service, start="now")) as client:
        line = {"external_id": "imp-1", "input": "What is 12 squared?", "output": "144", "tags": ["imp"]}
        path = write_jsonl(tmp_path / "new.jsonl", [dict(line, status="approved")])
        env = {"FEWSHOT_DATA_DIR": str(service.settings.data_dir), "FEWSHOT_INDEX_DIR": str(service.settings.index_dir)}
        result = CliRunner().invoke(cli, ["import", "--restore", str(path)], env=env)
        assert result.exit_code == 0, result.output
        body = {"prompt": "twelve times twelve", "k": 1, "filters": {"tags": ["imp"]}}
        within(BOUND_SECONDS, lambda: [e["external_id"] for e in select(client, body)] == ["imp-1"])
        assert client.get("/readyz").json()["synced_revision"] == service.bank.revision()
    follower: ChangeFollower = client.app.state.follower  # type: ignore[attr-defined]
    assert follower._thread is not None and not follower._thread.is_alive()  # stopped with the app
