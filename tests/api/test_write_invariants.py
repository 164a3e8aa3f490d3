"""A refused write changes nothing: property-based requests to every write route, with explicit null, empty,
boundary, huge, deeply nested and odd-unicode values for each field (and for ids, queries, headers and the
body itself), mostly one or two fields off an otherwise valid request so the refusals come from deep inside.

For every request: no 5xx; and when the answer is not a 2xx, every table of the bank (examples and their
versions, labels, audit, preferences, leases, keys, selections, feedback) and the served index (slots, ids,
revisions, attributes, index version) are exactly as before it. Accepted writes move the baseline on.
tests/api/test_fuzz.py fuzzes the schema for no-5xx; this adds "nothing changed after a refusal".
Derandomized and bounded (a few hundred requests in all).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import numpy as np
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import MetaData, select

from fewshot_service.api import create_app
from fewshot_service.embedding import SentenceTransformerEmbedder
from fewshot_service.serving.lifecycle import FewshotService

from ..keyed import KEY_OF, keyed_service

CASES_PER_ROUTE = 15
# Written as JSON text by the test itself (ensure_ascii), so lone surrogates and NUL reach the server.
NASTY_TEXT = [
    "", " ", "\t\n\r", "\x00", "nul\x00inside", "\x1c\x1f", "\u200b", "\u202eevil", "\ufeff", "😀🧮",
    "\ud800", "a\udfffb", "é" * 8001, "x" * 8001, "x" * 201, "x" * 65, "null", "{input}", "{input:>999}",
    "' OR 1=1 --", "../../etc/passwd", "%00", "<script>",
]  # fmt: skip
NASTY_NUMBERS = [0, -1, 1, 5, 6, 64, 2**31, 2**63, -(2**63) - 1, 10**40, 0.5, -0.0, 1e308, float("nan"), float("inf")]
DEEP = object()  # stands for an object holding lists 300 levels deep (metadata past the 32-level bound)
NASTY_SHAPES: list[Any] = [
    None,
    True,
    False,
    [],
    [None],
    [""],
    ["a"] * 65,
    {},
    {"": None},
    {"a": [1, {"b": None}]},
    DEEP,
]
NASTY = st.sampled_from(NASTY_TEXT + NASTY_NUMBERS + NASTY_SHAPES)
NASTY_IDS = ["", " ", "0", "x" * 65, "x" * 64, "..", "a/b", "%2e%2e", "\u202e", "😀", "null", "-1"]
NASTY_BODIES = [b"", b"null", b"[]", b'"text"', b"{", b"\xff\xfe", b'{"a": ' + b"[" * 5000, b"{}" * 3]


@dataclass
class World:
    service: FewshotService
    client: TestClient
    made: dict[str, list[str]]  # ids of things the setup made: example, label, preference, selection, key

    def ids(self, kind: str) -> list[str]:
        return self.made[kind]


LAST_USED = "last_used_at"  # a key's, written as it authenticates: bookkeeping, not the write refused


_REFLECTED: dict[str, MetaData] = {}


def snapshot(service: FewshotService) -> tuple[Any, ...]:
    """Every row of every table of the bank, and what the served index holds."""
    with service.bank.writer.connect() as conn:
        # The schema is read once per bank (no test migrates one midway): reflecting it at every snapshot
        # was three fifths of this file's time.
        tables = _REFLECTED.get(str(service.bank.url))
        if tables is None:
            tables = _REFLECTED[str(service.bank.url)] = MetaData()
            tables.reflect(conn)
        rows = {
            name: sorted(
                (
                    tuple(v for k, v in row._mapping.items() if k != "last_used_at")
                    for row in conn.execute(select(table))
                ),
                key=repr,
            )
            for name, table in sorted(tables.tables.items())
        }
    # What the index serves, by id: a background swap to a rebuilt version (new slots, same content) is no change.
    slots = service.served().index.slots
    index = sorted(
        (slots.ids[n], int(slots.revision[n]), int(slots.status[n]), slots.topics[slots.topic[n]] if slots.topic[n] >= 0
         else None, int(slots.difficulty[n]), repr(float(slots.quality[n])), int(slots.source[n]), slots.slot_tags[n])
        for n in np.flatnonzero(slots.alive)
    )  # fmt: skip
    return rows, index


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, embedder: SentenceTransformerEmbedder) -> Iterator[World]:
    service = keyed_service(tmp_path_factory.mktemp("invariants"), embedder, rate_limit_per_second=0)
    app = create_app(service.settings, service, start="now")
    admin = {"Authorization": f"Bearer {KEY_OF['admin']}"}
    with TestClient(app, raise_server_exceptions=False, follow_redirects=False) as client:
        examples = client.get("/v1/examples", headers=admin).json()["examples"]
        example_ids = [e["id"] for e in examples]
        label = client.post(f"/v1/examples/{example_ids[0]}/labels", json={"verdict": "approve", "score": 4},
                            headers=admin).json()["label"]  # fmt: skip
        pair = client.post("/v1/preferences", json={"prompt": "p", "response_a": "a", "response_b": "b"},
                           headers=admin).json()  # fmt: skip
        chosen = client.post("/v1/select", json={"prompt": "How fast is a cyclist?"}, headers=admin).json()
        key = client.post("/v1/admin/keys", json={"name": "spare", "role": "reader"}, headers=admin).json()
        assert app.state.feedback.recorder.flush()  # the selection is in the bank before any snapshot
        made = {"example": example_ids[:-1], "kept": example_ids[-1:], "label": [label["id"]],
                "preference": [pair["id"]], "selection": [chosen["selection_id"]], "key": [key["id"]]}  # fmt: skip
        yield World(service, client, made)
    service.bank.close()


# -- what a request is ---------------------------------------------------------------------------------------
@dataclass
class Call:
    method: str
    path: str
    body: Any = None  # JSON value, or bytes sent as they are
    params: dict[str, Any] | None = None
    headers: dict[str, str] | None = None
    content_type: str = "application/json"


def encoded(value: Any) -> bytes:
    text = json.dumps(value, default=lambda _: "__deep__")  # ensure_ascii: surrogates and NaN as they are
    return text.replace('"__deep__"', '{"deep": ' + "[" * 300 + "]" * 300 + "}").encode()


def near_valid(base: dict[str, Any], fields: dict[str, st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
    """The valid base with one to three fields set to a nasty (or another valid) value, sometimes an unknown
    field added, sometimes a field left out; or, rarely, a body that is not the object at all."""

    @st.composite
    def build(draw: st.DrawFn) -> Any:
        if draw(st.integers(0, 19)) == 0:
            return draw(st.sampled_from(NASTY_BODIES))
        body = dict(base)
        for name in draw(st.lists(st.sampled_from(sorted(fields)), min_size=1, max_size=3, unique=True)):
            if draw(st.integers(0, 5)) == 0:
                body.pop(name, None)
            else:
                body[name] = draw(st.one_of(NASTY, fields[name]))
        if draw(st.integers(0, 9)) == 0:
            body[draw(st.sampled_from(["unknown", "id", "quality", "version", ""]))] = draw(NASTY)
        return body

    return build()


def an_id(world: World, kind: str) -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from(world.ids(kind)), st.sampled_from(NASTY_IDS))


def path_of(template: str, *ids: str) -> str:
    return template.format(*(quote(i, safe="") for i in ids))


TEXT = st.text(st.characters(codec="utf-8"), min_size=1, max_size=40)
EXAMPLE_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "input": TEXT, "output": TEXT, "steps": st.lists(TEXT, max_size=3), "topic": TEXT,
    "difficulty": st.integers(1, 5), "tags": st.lists(TEXT, max_size=3), "source": st.sampled_from(["curated", "llm"]),
    "status": st.sampled_from(["pending", "approved", "rejected"]), "external_id": TEXT,
    "metadata": st.dictionaries(TEXT, st.integers(), max_size=2),
}  # fmt: skip
LABEL_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "verdict": st.sampled_from(["approve", "reject", "needs_fix"]), "score": st.integers(1, 5),
    "issues": st.lists(st.sampled_from(["unclear", "duplicate"]), max_size=2), "note": TEXT,
    "corrected_output": TEXT, "step_ratings": st.lists(st.sampled_from([-1, 0, 1]), max_size=3),
    "first_wrong_step": st.integers(0, 63), "annotator": TEXT,
}  # fmt: skip


def new_example(n: int) -> dict[str, Any]:
    return {"input": f"Invariant question {n}: what is {n} plus {n * 7 % 13}?", "output": str(n), "topic": "t",
            "difficulty": 2, "tags": ["a"], "status": "approved", "external_id": f"inv-{n}"}  # fmt: skip


def create_example(world: World) -> st.SearchStrategy[Call]:
    single = st.integers(0, 10**6).flatmap(lambda n: near_valid(new_example(n), EXAMPLE_FIELDS))
    batch = st.builds(lambda one, two: {"examples": [one, two]}, single, single)
    query = st.fixed_dictionaries({}, optional={"on_duplicate": st.sampled_from(["reject", "skip", "keep", "", "x"])})
    return st.builds(lambda body, params: Call("POST", "/v1/examples", body, params), st.one_of(single, batch), query)


def update_example(world: World) -> st.SearchStrategy[Call]:
    edit = near_valid({}, {**EXAMPLE_FIELDS, "version": st.integers(1, 3)})
    if_match = st.one_of(st.none(), st.sampled_from(['"1"', "*", "", "abc", '"99999999999999999999"', "W/1"]))
    return st.builds(
        lambda i, body, tag: Call("PATCH", path_of("/v1/examples/{}", i), body,
                                  headers={"If-Match": tag} if tag is not None else None),
        an_id(world, "example"), edit, if_match,
    )  # fmt: skip


def delete_example(world: World) -> st.SearchStrategy[Call]:
    # Mostly ids that must be refused: a deleted example stays deleted, so real ids are drawn rarely.
    ids = st.one_of(st.sampled_from(NASTY_IDS), st.sampled_from(NASTY_IDS), st.sampled_from(world.ids("example")))
    return st.builds(lambda i: Call("DELETE", path_of("/v1/examples/{}", i)), ids)


def label_example(world: World) -> st.SearchStrategy[Call]:
    body = near_valid({"verdict": "needs_fix", "score": 2, "note": "n"}, LABEL_FIELDS)
    return st.builds(lambda i, b: Call("POST", path_of("/v1/examples/{}/labels", i), b), an_id(world, "example"), body)


def withdraw_label(world: World) -> st.SearchStrategy[Call]:
    return st.builds(
        lambda e, lab: Call("DELETE", path_of("/v1/examples/{}/labels/{}", e, lab)),
        an_id(world, "example"), st.sampled_from(NASTY_IDS),
    )  # fmt: skip


def import_examples(world: World) -> st.SearchStrategy[Call]:
    line = st.one_of(
        st.integers(0, 10**6).flatmap(lambda n: near_valid(new_example(n), EXAMPLE_FIELDS)),
        st.sampled_from([b"", b"not json", b"\xff\xfe", b"[]", b'{"input": ' + b"[" * 3000]),
    )
    lines = st.lists(line, min_size=1, max_size=3)

    def upload(items: list[Any]) -> bytes:
        return b"\n".join(item if isinstance(item, bytes) else encoded(item) for item in items) + b"\n"

    mode = st.fixed_dictionaries({}, optional={"mode": st.sampled_from(["curate", "restore", "", "x"])})
    JSON_LINES = "application/x-ndjson"
    return st.builds(
        lambda body, params: Call("POST", "/v1/examples/import", upload(body), params, content_type=JSON_LINES),
        lines, mode,
    )  # fmt: skip


def create_preference(world: World) -> st.SearchStrategy[Call]:
    fields = {"prompt": TEXT, "response_a": TEXT, "response_b": TEXT, "metadata": EXAMPLE_FIELDS["metadata"]}
    body = near_valid({"prompt": "p", "response_a": "a", "response_b": "b"}, fields)
    return st.builds(lambda b: Call("POST", "/v1/preferences", b), body)


def label_preference(world: World) -> st.SearchStrategy[Call]:
    fields = {"choice": st.sampled_from(["a", "b", "tie", "both_bad"]), "shown_first": st.sampled_from(["a", "b"]),
              "rationale": TEXT, "annotator": TEXT}  # fmt: skip
    body = near_valid({"choice": "a", "shown_first": "b"}, fields)
    return st.builds(
        lambda i, b: Call("POST", path_of("/v1/preferences/{}/labels", i), b), an_id(world, "preference"), body
    )


def review_actions(world: World) -> st.SearchStrategy[Call]:
    # A query string is UTF-8: a lone surrogate cannot even be sent there.
    annotator = st.one_of(st.sampled_from([t for t in NASTY_TEXT if "\ud800" not in t and "\udfff" not in t]), TEXT)
    release = st.builds(
        lambda i, who: Call("POST", path_of("/v1/review/{}/release", i), params={"annotator": who}),
        an_id(world, "example"), annotator,
    )  # fmt: skip
    lease = st.builds(
        lambda who, skip: Call("GET", "/v1/review/next", params={"annotator": who, "skip": skip}),
        annotator, st.lists(st.sampled_from(NASTY_IDS), max_size=3),
    )  # fmt: skip
    return st.one_of(release, lease)


def feedback(world: World) -> st.SearchStrategy[Call]:
    fields = {"selection_id": st.sampled_from(world.ids("selection") + NASTY_IDS),
              "outcome": st.one_of(st.sampled_from(["success", "failure"]), st.floats(0, 1)), "note": TEXT}  # fmt: skip
    body = near_valid({"selection_id": world.ids("selection")[0], "outcome": "success"}, fields)
    return st.builds(lambda b: Call("POST", "/v1/feedback", b), body)


def keys(world: World) -> st.SearchStrategy[Call]:
    fields = {"name": TEXT, "role": st.sampled_from(["reader", "curator", "admin", "root", ""])}
    create = st.builds(lambda b: Call("POST", "/v1/admin/keys", b), near_valid({"name": "k", "role": "x"}, fields))
    revoke = st.builds(lambda i: Call("DELETE", path_of("/v1/admin/keys/{}", i)), st.sampled_from(NASTY_IDS))
    return st.one_of(create, revoke)


ROUTES: dict[str, Callable[[World], st.SearchStrategy[Call]]] = {
    "create_example": create_example, "update_example": update_example, "delete_example": delete_example,
    "label_example": label_example, "withdraw_label": withdraw_label, "import_examples": import_examples,
    "create_preference": create_preference, "label_preference": label_preference, "review": review_actions,
    "feedback": feedback, "keys": keys,
}  # fmt: skip
# Who sends it: mostly the admin key (past every role check); sometimes a lower role, none or a bad one.
KEYS = st.sampled_from([KEY_OF["admin"]] * 6 + [KEY_OF["curator"], KEY_OF["reader"], "", "no-such-key-0123456789"])
ACTORS = st.sampled_from([None, None, None, "", " ", "x" * 1000, "\t", "ok-actor"])


def send(client: TestClient, call: Call, key: str, actor: str | None) -> Any:
    headers = {"content-type": call.content_type, **(call.headers or {})}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    if actor is not None:
        headers["X-Fewshot-Actor"] = actor
    content = call.body if isinstance(call.body, bytes) else None if call.body is None else encoded(call.body)
    return client.request(call.method, call.path, content=content, params=call.params, headers=headers)


@pytest.mark.parametrize("route", sorted(ROUTES))
def test_a_refused_write_changes_nothing(world: World, route: str) -> None:
    @given(data=st.data())
    @settings(
        max_examples=CASES_PER_ROUTE, deadline=None, derandomize=True, database=None,
        suppress_health_check=list(HealthCheck),
    )  # fmt: skip
    def check(data: st.DataObject) -> None:
        call = data.draw(ROUTES[route](world), label="call")
        before = snapshot(world.service)
        answer = send(world.client, call, data.draw(KEYS, label="key"), data.draw(ACTORS, label="actor"))
        assert answer.status_code < 500, f"{answer.status_code} for {call}: {answer.text[:500]}"
        if not 200 <= answer.status_code < 300:
            if answer.status_code >= 400:
                assert answer.json()["error"]["code"], answer.text[:300]
            assert snapshot(world.service) == before, f"{answer.status_code} for {call} changed the bank or index"

    check()


def test_the_snapshot_sees_a_change(world: World) -> None:
    """The invariant is only as strong as the snapshot: an accepted edit of one field must show in it."""
    before = snapshot(world.service)
    target = world.ids("kept")[0]
    answer = world.client.patch(f"/v1/examples/{target}", json={"tags": ["seen"]},
                                headers={"Authorization": f"Bearer {KEY_OF['admin']}"})  # fmt: skip
    assert answer.status_code == 200
    after = snapshot(world.service)
    assert after[0] != before[0] and after[1] != before[1]  # bank rows, and the index's revision and tags


# -- every field, every core nasty value, deterministically ----------------------------------------------------
CORE = [None, "", " ", "\ud800", "x" * 8001, -1, 10**40, [], {}, DEEP]
SWEEP: dict[str, tuple[str, str, dict[str, Any], list[str]]] = {
    "create_example": ("POST", "/v1/examples", {}, [*EXAMPLE_FIELDS]),
    "update_example": ("PATCH", "/v1/examples/{kept}", {}, [*EXAMPLE_FIELDS, "version"]),
    "label_example": ("POST", "/v1/examples/{kept}/labels", {"verdict": "needs_fix"}, [*LABEL_FIELDS]),
    "create_preference": ("POST", "/v1/preferences", {"prompt": "p", "response_a": "a", "response_b": "b"},
                          ["prompt", "response_a", "response_b", "metadata"]),
    "label_preference": ("POST", "/v1/preferences/{preference}/labels", {"choice": "a", "shown_first": "b"},
                         ["choice", "shown_first", "rationale", "annotator"]),
    "feedback": ("POST", "/v1/feedback", {"outcome": "success"}, ["selection_id", "outcome", "note"]),
    "create_key": ("POST", "/v1/admin/keys", {"name": "k", "role": "reader"}, ["name", "role"]),
}  # fmt: skip


@pytest.mark.parametrize("route", sorted(SWEEP))
def test_every_field_refuses_each_core_nasty_value_without_a_trace(world: World, route: str) -> None:
    """null, empty, blank, a lone surrogate, too long, negative, huge, the wrong shape and too deep: in each
    field of each write body in turn, the rest valid. No 5xx; a refusal changes nothing (some are accepted:
    null clears a nullable field, "" is a valid output)."""
    method, template, base, fields = SWEEP[route]
    path = template.format(kept=world.ids("kept")[0], preference=world.ids("preference")[0])
    base = {"selection_id": world.ids("selection")[0], **base} if route == "feedback" else base
    for f, field in enumerate(fields):
        for v, value in enumerate(CORE):
            # A new example each time, kept even if it resembles the last: a duplicate is refused before the
            # value under test is read.
            fresh = new_example(10**7 + 100 * f + v) if route == "create_example" else {}
            keep = {"on_duplicate": "keep"} if route == "create_example" else None
            call = Call(method, path, {**base, **fresh, field: value}, keep)
            before = snapshot(world.service)
            answer = send(world.client, call, KEY_OF["admin"], None)
            assert answer.status_code < 500, f"{answer.status_code} for {field}={value!r:.40}: {answer.text[:300]}"
            if answer.status_code >= 300:
                assert answer.status_code in (400, 404, 409, 422), (field, answer.text[:300])
                assert snapshot(world.service) == before, f"{answer.status_code} for {field}={value!r:.40} changed it"
