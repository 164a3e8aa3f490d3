"""Who may call what: every route of the OpenAPI schema x {no key, wrong key, reader, curator, admin}, keys
created and revoked by admins, the key naming the actor, and a keyless server that locks once a key exists."""

from __future__ import annotations

import hashlib
import itertools
import json
import re
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from fewshot_service.api import create_app
from fewshot_service.auth import parse_api_keys
from fewshot_service.embedding import SentenceTransformerEmbedder
from fewshot_service.errors import ConfigurationError
from fewshot_service.settings import Settings

from ..keyed import bearer, keyed_service

Request = tuple[str, dict[str, Any]]  # (url, keyword arguments of client.request)
counter = itertools.count()


def unique_example(**fields: Any) -> dict[str, Any]:
    n = next(counter)
    return {"input": f"Matrix problem {n}: a box holds {n + 7} red and {n + 3} blue marbles. How many?", **fields}


@dataclass
class Fixtures:
    """Things the requests refer to, made with the admin key before the matrix runs."""

    client: TestClient

    def example(self, **fields: Any) -> str:
        response = self.client.post(
            "/v1/examples", params={"on_duplicate": "keep"}, json=unique_example(**fields), headers=bearer("admin")
        )
        assert response.status_code == 201, response.text
        return str(response.json()["examples"][0]["id"])

    def label_of(self, annotator: str) -> str:
        """The URL of a new label by this annotator on a new example."""
        example_id = self.example(status="pending")
        body = {"annotator": annotator, "verdict": "approve"}
        response = self.client.post(f"/v1/examples/{example_id}/labels", json=body, headers=bearer("admin"))
        assert response.status_code == 201, response.text
        return f"/v1/examples/{example_id}/labels/{response.json()['label']['id']}"

    def preference(self) -> str:
        pair = {"prompt": "2+2?", "response_a": "4", "response_b": "5"}
        response = self.client.post("/v1/preferences", json=pair, headers=bearer("admin"))
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    def db_key(self) -> str:
        response = self.client.post(
            "/v1/admin/keys", json={"name": "doomed", "role": "reader"}, headers=bearer("admin")
        )
        assert response.status_code == 201, response.text
        return str(response.json()["id"])


def jsonl(*rows: dict[str, Any]) -> dict[str, Any]:
    return {"content": "".join(json.dumps(r) + "\n" for r in rows), "headers": {"content-type": "application/x-ndjson"}}


# (METHOD, path template) -> (role needed or None for open, status a permitted caller gets, its error code if
# not 2xx, a builder of the request). Every operation of the schema must be here: test_matrix_covers... fails
# when one is missing, so a new route cannot ship without deciding who may call it.
Build = Callable[[Fixtures], Request]
MATRIX: dict[tuple[str, str], tuple[str | None, int, str | None, Build]] = {
    ("GET", "/healthz"): (None, 200, None, lambda f: ("/healthz", {})),
    ("GET", "/readyz"): (None, 200, None, lambda f: ("/readyz", {})),
    ("GET", "/readyz/writes"): (None, 200, None, lambda f: ("/readyz/writes", {})),
    ("GET", "/metrics"): ("reader", 200, None, lambda f: ("/metrics", {})),
    ("POST", "/v1/select"): ("reader", 200, None, lambda f: ("/v1/select", {"json": {"prompt": "How many marbles?"}})),
    ("POST", "/v1/examples"): (
        "curator", 201, None, lambda f: ("/v1/examples?on_duplicate=keep", {"json": unique_example()}),
    ),
    ("GET", "/v1/examples"): ("curator", 200, None, lambda f: ("/v1/examples", {})),
    ("GET", "/v1/examples/export"): ("curator", 200, None, lambda f: ("/v1/examples/export", {})),
    ("POST", "/v1/examples/import"): (
        "curator", 200, None, lambda f: ("/v1/examples/import", jsonl(unique_example(status="pending"))),
    ),
    ("GET", "/v1/examples/{example_id}"): ("curator", 200, None, lambda f: (f"/v1/examples/{f.example()}", {})),
    ("PATCH", "/v1/examples/{example_id}"): (
        "curator", 200, None, lambda f: (f"/v1/examples/{f.example()}", {"json": {"tags": ["edited"]}}),
    ),
    ("DELETE", "/v1/examples/{example_id}"): ("curator", 204, None, lambda f: (f"/v1/examples/{f.example()}", {})),
    ("GET", "/v1/review/progress"): (
        "curator", 200, None, lambda f: ("/v1/review/progress", {"params": {"since": "2026-01-01T00:00:00Z"}}),
    ),
    ("GET", "/v1/examples/{example_id}/usage"): (
        "curator", 200, None, lambda f: (f"/v1/examples/{f.example()}/usage", {}),
    ),
    ("GET", "/v1/examples/{example_id}/history"): (
        "curator", 200, None, lambda f: (f"/v1/examples/{f.example()}/history", {}),
    ),
    ("POST", "/v1/examples/{example_id}/labels"): (
        "curator", 201, None,
        lambda f: (f"/v1/examples/{f.example()}/labels", {"json": {"verdict": "approve"}}),
    ),
    # The label is the curator key's (recorded for it by the admin): its annotator or an admin may undo it.
    ("DELETE", "/v1/examples/{example_id}/labels/{label_id}"): (
        "curator", 204, None, lambda f: (f.label_of("cara"), {}),
    ),
    ("GET", "/v1/examples/{example_id}/labels"): (
        "curator", 200, None, lambda f: (f"/v1/examples/{f.example()}/labels", {}),
    ),
    ("POST", "/v1/preferences"): (
        "curator", 201, None,
        lambda f: ("/v1/preferences", {"json": {"prompt": "p", "response_a": "a", "response_b": "b"}}),
    ),
    ("POST", "/v1/preferences/{preference_id}/labels"): (
        "curator", 201, None,
        lambda f: (
            f"/v1/preferences/{f.preference()}/labels",
            {"json": {"choice": "a", "shown_first": "a"}},
        ),
    ),
    ("GET", "/v1/preferences/export"): ("curator", 200, None, lambda f: ("/v1/preferences/export", {})),
    ("GET", "/v1/review/next"): ("curator", 200, None, lambda f: ("/v1/review/next", {})),
    ("POST", "/v1/review/{example_id}/release"): (
        "curator", 204, None, lambda f: (f"/v1/review/{f.example()}/release", {}),
    ),
    ("GET", "/v1/preferences/next"): (
        "curator", 200, None, lambda f: (f"/v1/preferences/next?skip=x{f.preference()}", {}),
    ),
    ("GET", "/v1/me"): ("reader", 200, None, lambda f: ("/v1/me", {})),
    ("GET", "/v1/stats"): ("curator", 200, None, lambda f: ("/v1/stats", {})),
    ("GET", "/v1/stats/agreement"): ("curator", 200, None, lambda f: ("/v1/stats/agreement", {})),
    ("GET", "/v1/stats/charts/{name}.png"): (
        "curator", 200, None, lambda f: ("/v1/stats/charts/topic_difficulty.png", {}),
    ),
    ("POST", "/v1/admin/rebuild"): ("admin", 200, None, lambda f: ("/v1/admin/rebuild", {})),
    ("GET", "/v1/admin/index"): ("admin", 200, None, lambda f: ("/v1/admin/index?ids=true", {})),
    # No LLM endpoint is configured here: a permitted caller gets the documented 503, past authorization.
    ("POST", "/v1/admin/expand"): (
        "admin", 503, "llm_not_configured",
        lambda f: ("/v1/admin/expand", {"json": {"topic": "t", "difficulty": 1, "n": 1}}),
    ),
    # Too few labels to train, and so no model to score with or describe: answers past authorization.
    ("POST", "/v1/admin/quality/train"): ("admin", 409, "not_enough_labels", lambda f: ("/v1/admin/quality/train", {})),
    ("POST", "/v1/admin/quality/score"): ("admin", 404, "no_quality_model", lambda f: ("/v1/admin/quality/score", {})),
    ("GET", "/v1/admin/quality"): ("admin", 404, "no_quality_model", lambda f: ("/v1/admin/quality", {})),
    ("GET", "/v1/admin/quality/scores"): ("admin", 200, None, lambda f: ("/v1/admin/quality/scores", {})),
    ("POST", "/v1/admin/keys"): (
        "admin", 201, None, lambda f: ("/v1/admin/keys", {"json": {"name": "new-app", "role": "reader"}}),
    ),
    ("GET", "/v1/admin/keys"): ("admin", 200, None, lambda f: ("/v1/admin/keys", {})),
    # An unknown selection: answers past authorization (a real one is refused to every key but its own).
    ("POST", "/v1/feedback"): (
        "reader", 404, "not_found",
        lambda f: ("/v1/feedback", {"json": {"selection_id": "never-made", "outcome": "success"}}),
    ),
    ("DELETE", "/v1/admin/keys/{key_id}"): ("admin", 204, None, lambda f: (f"/v1/admin/keys/{f.db_key()}", {})),
}  # fmt: skip
CALLERS = ("no key", "wrong key", "reader", "curator", "admin")
RANK = {"reader": 0, "curator": 1, "admin": 2}


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory, embedder: SentenceTransformerEmbedder) -> Iterator[TestClient]:
    service = keyed_service(tmp_path_factory.mktemp("auth"), embedder, rate_limit_per_second=0)
    with TestClient(create_app(service.settings, service, start="now")) as client:
        Fixtures(client).example(status="pending")  # something for /v1/review/next to hand out
        yield client
    service.bank.close()


def headers_of(caller: str) -> dict[str, str]:
    if caller == "no key":
        return {}
    if caller == "wrong key":
        return {"Authorization": "Bearer not-a-key-the-service-knows"}
    return bearer(caller)


def test_matrix_covers_every_route_of_the_schema(keyed: TestClient) -> None:
    schema = keyed.get("/openapi.json").json()
    routes = {(method.upper(), path) for path, operations in schema["paths"].items() for method in operations}
    assert routes - set(MATRIX) == set(), "routes without an expected role: add them to MATRIX"
    assert set(MATRIX) - routes == set(), "MATRIX names routes the schema does not have"
    for (method, path), (role, *_rest) in MATRIX.items():
        # The schema tells clients which operations need a key.
        assert bool(schema["paths"][path][method.lower()].get("security")) == (role is not None), (method, path)


@pytest.mark.parametrize(("method", "path"), list(MATRIX))
def test_each_route_answers_each_caller_as_its_role_allows(keyed: TestClient, method: str, path: str) -> None:
    role, allowed_status, allowed_code, build = MATRIX[(method, path)]
    fixtures = Fixtures(keyed)
    seen = {}
    for caller in CALLERS:
        url, kwargs = build(fixtures)
        kwargs["headers"] = {**kwargs.get("headers", {}), **headers_of(caller)}
        response = keyed.request(method, url, **kwargs)
        seen[caller] = response.status_code
        if role is not None and caller in ("no key", "wrong key"):
            assert response.status_code == 401, (caller, response.text)
            assert response.headers["WWW-Authenticate"] == "Bearer"
            assert response.json()["error"]["code"] == "unauthorized"
        elif role is not None and RANK[caller] < RANK[role]:
            assert response.status_code == 403, (caller, response.text)
            assert response.json()["error"]["code"] == "forbidden"
            assert role in response.json()["error"]["message"]
        else:
            assert response.status_code == allowed_status, (caller, response.text)
            if allowed_code is not None:
                assert response.json()["error"]["code"] == allowed_code
    assert len(seen) == len(CALLERS)


def test_docs_and_schema_are_open(keyed: TestClient) -> None:
    for path in ("/docs", "/redoc", "/openapi.json"):
        assert keyed.get(path).status_code == 200, path


def test_docs_pages_load_their_scripts_from_the_service_not_a_cdn(keyed: TestClient) -> None:
    # A network that reaches no CDN still gets working docs: every script and style the pages name is served
    # here, without a key, as the pages themselves are.
    for page in ("/docs", "/redoc"):
        html = keyed.get(page).text
        assets = re.findall(r'(?:src|href)="([^"]+)"', html)
        assert assets and all(asset.startswith("/docs/assets/") for asset in assets), (page, assets)
        for asset in assets:
            answer = keyed.get(asset)
            assert answer.status_code == 200 and len(answer.content) > 1000, asset
    assert "javascript" in keyed.get("/docs/assets/swagger-ui-bundle.js").headers["content-type"]


def test_a_created_key_works_at_once_is_stored_hashed_and_stops_working_when_revoked(
    keyed: TestClient, tmp_path_factory: pytest.TempPathFactory
) -> None:
    created = keyed.post("/v1/admin/keys", json={"name": "search-frontend", "role": "reader"}, headers=bearer("admin"))
    assert created.status_code == 201
    body = created.json()
    key, key_id = body["key"], body["id"]
    assert key.startswith("fsk_") and len(key) >= 40 and body["role"] == "reader"

    mine = {"Authorization": f"Bearer {key}"}
    assert keyed.post("/v1/select", json={"prompt": "How many marbles?"}, headers=mine).status_code == 200
    assert keyed.get("/v1/examples", headers=mine).status_code == 403  # a reader does not curate

    listed = {k["id"]: k for k in keyed.get("/v1/admin/keys", headers=bearer("admin")).json()}
    assert listed[key_id]["name"] == "search-frontend" and "key" not in listed[key_id]
    # Only the sha256 is kept: the key itself is nowhere in the database file.
    database = Path(str(keyed.app.state.service.bank.url).removeprefix("sqlite:///"))  # type: ignore[attr-defined]
    with sqlite3.connect(database) as conn:
        (stored,) = conn.execute("SELECT key_hash FROM api_keys WHERE id = ?", (key_id,)).fetchone()
    assert stored == hashlib.sha256(key.encode()).hexdigest()
    raw = b"".join(p.read_bytes() for p in database.parent.glob(database.name + "*"))
    assert key.encode() not in raw

    assert keyed.delete(f"/v1/admin/keys/{key_id}", headers=bearer("admin")).status_code == 204
    refused = keyed.post("/v1/select", json={"prompt": "How many marbles?"}, headers=mine)
    assert refused.status_code == 401 and refused.json()["error"]["message"] == "unknown or revoked API key"
    revoked = next(k for k in keyed.get("/v1/admin/keys", headers=bearer("admin")).json() if k["id"] == key_id)
    assert revoked["revoked_at"] is not None
    assert keyed.delete("/v1/admin/keys/no-such-key", headers=bearer("admin")).status_code == 404


def test_a_name_is_one_person_so_its_keys_share_a_role(keyed: TestClient) -> None:
    """Labels, leases and feedback belong to a key's name: a reader key named after a curator would act as
    that curator. A second key with the same name and role (rotation) is fine; another role is 409."""
    admin = bearer("admin")
    first = keyed.post("/v1/admin/keys", json={"name": "app1", "role": "reader"}, headers=admin)
    assert first.status_code == 201
    rotated = keyed.post("/v1/admin/keys", json={"name": "app1", "role": "reader"}, headers=admin)
    assert rotated.status_code == 201
    for name, role, holder in [("app1", "curator", "reader"), ("cara", "admin", "curator")]:
        refused = keyed.post("/v1/admin/keys", json={"name": name, "role": role}, headers=admin)
        assert refused.status_code == 409, refused.text
        assert refused.json()["error"]["field"] == "role" and f"the role {holder}" in refused.json()["error"]["message"]
    for key in (first, rotated):
        assert keyed.delete(f"/v1/admin/keys/{key.json()['id']}", headers=admin).status_code == 204
    again = keyed.post("/v1/admin/keys", json={"name": "app1", "role": "curator"}, headers=admin)
    assert again.status_code == 201  # once its keys are revoked, a name may come back in another role


def test_the_key_names_the_actor_whatever_the_caller_claims(keyed: TestClient) -> None:
    added = keyed.post(
        "/v1/examples?on_duplicate=keep",
        json=unique_example(),
        headers={**bearer("curator"), "X-Fewshot-Actor": "somebody-else"},
    )
    example_id = added.json()["examples"][0]["id"]
    history = keyed.get(f"/v1/examples/{example_id}/history", headers=bearer("curator")).json()
    assert [entry["actor"] for entry in history] == ["cara"]  # the curator key's name in FEWSHOT_API_KEYS


def test_a_keyless_server_is_open_until_the_first_key_is_created(tmp_path: Path, make_service: Any) -> None:
    service = make_service(seed_dir=tmp_path / "no-seed", seed_on_empty=False)
    with TestClient(create_app(service.settings, service, start="now")) as client:
        assert client.get("/v1/examples").status_code == 200  # authentication off: anonymous admin
        created = client.post("/v1/admin/keys", json={"name": "first-admin", "role": "admin"})
        assert created.status_code == 201
        assert client.get("/v1/examples").status_code == 401  # on from that moment, for good
        key = {"Authorization": f"Bearer {created.json()['key']}"}
        assert client.get("/v1/examples", headers=key).status_code == 200
        client.delete(f"/v1/admin/keys/{created.json()['id']}", headers=key)
        assert client.get("/v1/examples").status_code == 401  # revoking the last key never reopens it


def test_key_settings_are_parsed_and_bad_ones_refused(tmp_path: Path) -> None:
    parsed = parse_api_keys(" k1:reader , k2:admin:ops ,")
    assert [(key, p.role, p.name) for key, p in parsed] == [
        ("k1", "reader", f"reader-{hashlib.sha256(b'k1').hexdigest()[:8]}"),  # named without showing the key
        ("k2", "admin", "ops"),
    ]
    for spec, fragment in (("k1:owner", "role 'owner'"), ("k1", "not key:role"), ("k1:reader,k1:admin", "twice")):
        with pytest.raises(ConfigurationError, match=fragment):
            create_app(Settings(data_dir=tmp_path, index_dir=tmp_path, api_keys=spec))
