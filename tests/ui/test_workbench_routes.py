"""The workbench's own routes in-process: packaged files, the CSP on every answer, the guidelines file
setting, and GET /v1/me. (The browser tests are in test_workbench.py.)"""

from __future__ import annotations

import re
from collections.abc import Iterator
from importlib.resources import files
from pathlib import Path
from typing import Any, cast

import pytest
from fastapi.testclient import TestClient

from fewshot_service.api import create_app
from fewshot_service.bank import SqlBank
from fewshot_service.embedding import Embedder
from fewshot_service.index import IndexStore
from fewshot_service.serving.lifecycle import FewshotService
from fewshot_service.settings import Settings

from ..keyed import SPEC, bearer


def client_for(root: Path, **overrides: Any) -> TestClient:
    settings = Settings(**{"data_dir": root / "data", "index_dir": root / "indexes", "api_keys": SPEC, **overrides})
    # The embedder is never loaded: these routes do not need the started service.
    bank = SqlBank(settings.resolved_database_url())
    service = FewshotService(settings, bank, lambda: cast(Embedder, None), IndexStore(settings.index_dir))
    return TestClient(create_app(settings, service, start="no"))


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with client_for(tmp_path) as test_client:
        yield test_client


def test_the_page_and_every_file_it_loads_are_package_data_served_under_the_csp(client: TestClient) -> None:
    page = client.get("/ui/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    static = files("fewshot_service.ui").joinpath("static")
    modules = {p.name for p in static.iterdir() if p.name.endswith(".js")}
    referenced = set(re.findall(r"/ui/static/([\w.-]+)", page.text))
    for name in sorted(referenced | modules):
        answer = client.get(f"/ui/static/{name}")
        assert answer.status_code == 200, name
        assert answer.content == static.joinpath(name).read_bytes()
        # Each import between modules names a file that exists.
        for imported in re.findall(r'from "\./([\w.-]+)"', answer.text):
            assert imported in modules, (name, imported)
    for response in (page, client.get("/ui/static/app.js"), client.get("/ui/guidelines.md")):
        csp = response.headers["content-security-policy"]
        assert "default-src 'self'" in csp and "script-src 'self'" in csp and "object-src 'none'" in csp
        assert "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp and "unsafe-eval" not in csp
        assert response.headers["x-content-type-options"] == "nosniff"
    # Markup inline in the page would need 'unsafe-inline'; the page has none.
    assert "<script>" not in page.text and "<style" not in page.text and not re.search(r"\son\w+=", page.text)


def test_bare_path_moves_to_the_page_and_only_listed_static_names_are_served(client: TestClient) -> None:
    moved = client.get("/ui", follow_redirects=False)
    assert moved.status_code == 308 and moved.headers["location"] == "/ui/"
    for name in ("router.py", "..%2Frouter.py", "index.html", "app.js.map", "guidelines.md"):
        answer = client.get(f"/ui/static/{name}")
        assert answer.status_code == 404, name
        assert answer.json()["error"]["code"] == "not_found"


def test_guidelines_default_and_the_file_setting_overrides_them(tmp_path: Path) -> None:
    with client_for(tmp_path / "default") as default:
        text = default.get("/ui/guidelines.md")
        assert text.headers["content-type"].startswith("text/markdown")
        assert "first wrong step" in text.text and "needs fix" in text.text.lower()
    ours = tmp_path / "ours.md"
    ours.write_text("# House rules\n\n<b>only</b> these\n")
    with client_for(tmp_path / "custom", guidelines_file=ours) as custom:
        assert custom.get("/ui/guidelines.md").text == "# House rules\n\n<b>only</b> these\n"
    with client_for(tmp_path / "missing", guidelines_file=tmp_path / "absent.md") as missing:
        answer = missing.get("/ui/guidelines.md")
        assert answer.status_code == 404 and answer.json()["error"]["field"] == "guidelines_file"
    assert Settings(guidelines_file=str(ours)).guidelines_file == ours  # type: ignore[arg-type]


def test_me_names_the_key_and_its_role(client: TestClient) -> None:
    assert client.get("/v1/me", headers=bearer("curator")).json() == {
        "name": "cara",
        "role": "curator",
        "auth_enabled": True,
    }
    assert client.get("/v1/me", headers=bearer("reader")).json()["role"] == "reader"
    assert client.get("/v1/me").status_code == 401
    schema = client.get("/openapi.json").json()
    assert schema["paths"]["/v1/me"]["get"]["operationId"] == "whoami"


def test_me_without_keys_is_the_anonymous_admin(tmp_path: Path) -> None:
    with client_for(tmp_path, api_keys=None) as keyless:
        assert keyless.get("/v1/me").json() == {"name": "anonymous", "role": "admin", "auth_enabled": False}
        assert keyless.get("/ui/keys.json").json() == {"auth_enabled": False}


def test_the_page_learns_whether_keys_are_needed_without_a_key(client: TestClient) -> None:
    """So that it shows the key form at once, rather than asking /v1/me to be refused."""
    answer = client.get("/ui/keys.json")
    assert answer.status_code == 200 and answer.json() == {"auth_enabled": True}
    assert "default-src 'self'" in answer.headers["content-security-policy"]
