"""A curator's progress: labels given since a moment (the workbench asks from local midnight)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

from fastapi.testclient import TestClient

from fewshot_service.api import create_app
from fewshot_service.embedding import SentenceTransformerEmbedder

from ..keyed import bearer, keyed_service


def test_progress_counts_the_keys_own_labels_since_a_moment_and_not_withdrawn_ones(
    tmp_path: Path, embedder: SentenceTransformerEmbedder
) -> None:
    service = keyed_service(tmp_path, embedder)
    with TestClient(create_app(service.settings, service, start="now")) as client:
        curator = bearer("curator")
        since = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
        assert client.get("/v1/review/progress", params={"since": since}, headers=curator).json()["labelled"] == 0
        ids = [e["id"] for e in client.get("/v1/examples", params={"limit": 3}, headers=curator).json()["examples"]]
        given = [
            client.post(f"/v1/examples/{i}/labels", json={"verdict": "approve", "score": 4}, headers=curator).json()
            for i in ids
        ]
        client.post(f"/v1/examples/{ids[0]}/labels", json={"annotator": "ops", "verdict": "reject"},
                    headers=bearer("admin"))  # fmt: skip
        progress = client.get("/v1/review/progress", params={"since": since}, headers=curator).json()
        assert progress == {"annotator": "cara", "since": progress["since"], "labelled": 3}
        undo = f"/v1/examples/{ids[1]}/labels/{given[1]['label']['id']}"
        assert client.delete(undo, headers=curator).status_code == 204
        assert client.get("/v1/review/progress", params={"since": since}, headers=curator).json()["labelled"] == 2
        later = (datetime.now(UTC) + timedelta(minutes=1)).isoformat()
        assert client.get("/v1/review/progress", params={"since": later}, headers=curator).json()["labelled"] == 0
        # The same moment written in any offset counts the same: SQLite compared the wall-clock text, so a
        # curator east of UTC asking from local midnight saw none of the day's labels, one west of it too many.
        for hours in (8, -5, 14):
            local = (datetime.now(UTC) - timedelta(minutes=1)).astimezone(timezone(timedelta(hours=hours)))
            shifted = client.get("/v1/review/progress", params={"since": local.isoformat()}, headers=curator)
            assert shifted.json()["labelled"] == 2, local
            ahead = (datetime.now(UTC) + timedelta(minutes=1)).astimezone(timezone(timedelta(hours=hours)))
            later_there = client.get("/v1/review/progress", params={"since": ahead.isoformat()}, headers=curator)
            assert later_there.json()["labelled"] == 0, ahead
        naive = client.get("/v1/review/progress", params={"since": "2026-01-01T00:00:00"}, headers=curator)
        assert naive.status_code == 422 and naive.json()["error"]["field"] == "since"
        other = client.get("/v1/review/progress", params={"since": since, "annotator": "bob"}, headers=curator)
        assert other.status_code == 403
    service.bank.close()
