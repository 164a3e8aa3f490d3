"""docker-compose.yml and deploy/nginx.conf agree with the project: real commands, real settings, every
replica behind nginx on one database and one index volume. No Docker engine runs here, so they are parsed."""

from __future__ import annotations

import re
from typing import Any

import yaml
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from fewshot_service.cli.main import app as cli
from fewshot_service.settings import Settings

from ..helpers import REPO


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    return loaded


def fewshot_services() -> dict[str, dict[str, Any]]:
    return {name: s for name, s in compose()["services"].items() if s.get("command", [""])[0] == "fewshot"}


def test_services_are_a_database_a_migration_two_replicas_a_rebuild_job_and_nginx() -> None:
    services = compose()["services"]
    assert set(services) >= {"postgres", "migrate", "replica-1", "replica-2", "rebuild", "nginx"}
    commands = {name: s["command"] for name, s in fewshot_services().items()}
    assert commands["migrate"] == ["fewshot", "db", "upgrade"] and commands["rebuild"] == ["fewshot", "rebuild"]
    replicas = [name for name, command in commands.items() if command[:2] == ["fewshot", "serve"]]
    assert sorted(replicas) == ["replica-1", "replica-2"]
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in [*replicas, "rebuild"]:
        assert services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert services["rebuild"]["profiles"] == ["jobs"]  # a job run on demand, not a long-running service


def test_every_command_and_option_exists_in_the_cli() -> None:
    for name, service in fewshot_services().items():
        words = service["command"][1:]
        subcommand = [w for w in words if not w.startswith("-") and not w.isdigit() and w != "0.0.0.0"]
        result = CliRunner().invoke(cli, [*subcommand, "--help"])
        assert result.exit_code == 0, (name, result.output)
        for option in (w for w in words if w.startswith("--")):
            assert option in result.output, (name, option)


def test_the_fewshot_services_share_one_database_one_index_volume_and_need_keys() -> None:
    services, fewshot = compose()["services"], fewshot_services()
    postgres = services["postgres"]["environment"]
    for name, service in fewshot.items():
        env = service["environment"]
        for variable in env:  # every variable is a real setting
            assert variable.startswith("FEWSHOT_") and variable[8:].lower() in Settings.model_fields, variable
        url = make_url(re.sub(r"\$\{(\w+):-([^}]*)\}", r"\2", env["FEWSHOT_DATABASE_URL"]))
        assert url.drivername == "postgresql+psycopg" and url.host == "postgres" and url.port == 5432
        assert url.database == postgres["POSTGRES_DB"] and url.username == postgres["POSTGRES_USER"]
        assert f"indexes:{env['FEWSHOT_INDEX_DIR']}" in service["volumes"], name
        # Beyond loopback the server refuses to start without keys; compose refuses to start without them.
        assert env["FEWSHOT_API_KEYS"].startswith("${FEWSHOT_API_KEYS:?")
    assert "indexes" in compose()["volumes"]


def test_nginx_balances_over_every_replica_on_the_port_it_serves() -> None:
    nginx = compose()["services"]["nginx"]
    mount = next(v for v in nginx["volumes"] if v.endswith("/etc/nginx/conf.d/default.conf:ro"))
    conf = (REPO / mount.split(":", 1)[0]).read_text()
    upstream = re.search(r"upstream (\w+) \{(.*?)\}", conf, re.S)
    assert upstream is not None and f"proxy_pass http://{upstream.group(1)};" in conf
    servers = set(re.findall(r"server ([\w-]+):(\d+)", upstream.group(2)))
    replicas = {
        (name, s["command"][s["command"].index("--port") + 1])
        for name, s in fewshot_services().items()
        if s["command"][:2] == ["fewshot", "serve"] and s["command"][s["command"].index("--host") + 1] == "0.0.0.0"
    }
    assert servers == replicas
    assert set(nginx["depends_on"]) == {name for name, _ in replicas}


def test_readme_explains_running_several_replicas() -> None:
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Running several replicas", 1)[1].split("\n## ", 1)[0]
    for needed in ("docker-compose.yml", "fewshot db upgrade", "fewshot rebuild", "FEWSHOT_SYNC_POLL_SECONDS"):
        assert needed in section, needed
