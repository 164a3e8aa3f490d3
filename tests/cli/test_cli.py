"""The `fewshot` CLI through its runner, on real temporary files, checking the bank it leaves behind."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from fewshot_service.bank import SqlBank
from fewshot_service.cli.main import app
from fewshot_service.settings import Settings

from ..helpers import write_jsonl

GOOD = [
    {
        "external_id": "c1",
        "input": "A cyclist rides 36 km in 2 hours. How fast?",
        "output": "18 km/h",
        "topic": "rates",
    },
    {"external_id": "c2", "input": "Solve 3x = 21.", "output": "x = 7", "topic": "algebra", "difficulty": 1},
    {"external_id": "c3", "input": "What is 15% of 80?", "output": "12", "topic": "percent", "tags": ["percent"]},
]


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("FEWSHOT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("FEWSHOT_INDEX_DIR", str(tmp_path / "indexes"))
    monkeypatch.setenv("FEWSHOT_SEED_ON_EMPTY", "false")
    return Settings()


def run(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


def stored(settings: Settings) -> dict[str, dict[str, object]]:
    bank = SqlBank(settings.resolved_database_url())
    try:
        return {e.external_id or e.id: e.model_dump(mode="json") for e in bank.iter_examples()}
    finally:
        bank.close()


def test_import_is_idempotent_on_external_id(env: Settings, tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "good.jsonl", GOOD)
    first = run("import", str(path), "--no-embed")
    assert first.exit_code == 0, first.output
    assert "3 created, 0 updated, 0 unchanged, 0 bad line(s)" in first.output
    before = stored(env)
    second = run("import", str(path), "--no-embed")
    assert "0 created, 0 updated, 3 unchanged" in second.output
    assert stored(env) == before and len(before) == 3


def test_bad_lines_are_reported_by_number_and_the_rest_imported(env: Settings, tmp_path: Path) -> None:
    lines = [GOOD[0], "{not json", GOOD[1], {**GOOD[2], "difficulty": 9}, {"output": "no input"}]
    path = write_jsonl(tmp_path / "mixed.jsonl", lines)
    result = run("import", str(path), "--no-embed")
    assert result.exit_code == 1
    assert "line 2:" in result.output and "line 4: difficulty" in result.output and "line 5: input" in result.output
    assert set(stored(env)) == {"c1", "c2"}


def test_strict_import_writes_nothing_when_a_line_is_bad(env: Settings, tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "mixed.jsonl", [GOOD[0], GOOD[1], {**GOOD[2], "source": "rumour"}])
    result = run("import", str(path), "--strict", "--no-embed")
    assert result.exit_code == 1
    assert "line 3: source" in result.output and "nothing was imported" in result.output
    assert stored(env) == {}


def test_status_option_overrides_the_file(env: Settings, tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "good.jsonl", GOOD)
    assert run("import", str(path), "--status", "approved", "--no-embed").exit_code == 0  # the operator's choice
    assert {e["status"] for e in stored(env).values()} == {"approved"}
    assert run("import", str(path), "--restore", "--status", "rejected", "--no-embed").exit_code == 0
    assert {e["status"] for e in stored(env).values()} == {"rejected"}


def test_export_then_import_reproduces_the_bank(env: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run("import", str(write_jsonl(tmp_path / "good.jsonl", GOOD)), "--no-embed")
    exported = tmp_path / "export.jsonl"
    result = run("export", "--output", str(exported))
    assert result.exit_code == 0 and "exported 3 example(s)" in result.output
    assert len(exported.read_text().splitlines()) == 3
    original = stored(env)
    monkeypatch.setenv("FEWSHOT_DATA_DIR", str(tmp_path / "other"))
    assert run("import", str(exported), "--restore", "--no-embed").exit_code == 0
    assert stored(Settings()) == original


def test_restoring_lines_without_ids_twice_stores_them_once(env: Settings, tmp_path: Path) -> None:
    bare = [{k: v for k, v in line.items() if k != "external_id"} for line in GOOD]
    path = write_jsonl(tmp_path / "bare.jsonl", bare)
    first = run("import", str(path), "--restore", "--no-embed")
    assert "3 created, 0 updated, 0 unchanged, 0 bad line(s)" in first.output, first.output
    before = stored(env)
    second = run("import", str(path), "--restore", "--no-embed")
    assert second.exit_code == 0 and "0 created, 0 updated, 3 unchanged" in second.output, second.output
    assert stored(env) == before
    # The same input with another answer and nothing to say which example it changes: refused, named.
    changed = write_jsonl(tmp_path / "changed.jsonl", [{**bare[1], "output": "x = 8"}])
    third = run("import", str(changed), "--restore", "--no-embed")
    assert third.exit_code == 1 and "line 1: input: duplicate of example" in third.output, third.output
    assert stored(env) == before


def test_without_restore_an_import_follows_the_curator_rules(env: Settings, tmp_path: Path) -> None:
    assert run("import", str(write_jsonl(tmp_path / "good.jsonl", GOOD)), "--no-embed").exit_code == 0
    assert {e["status"] for e in stored(env).values()} == {"pending"}  # labels decide, not the file
    c1 = stored(env)["c1"]
    label = {
        "id": "l1",
        "example_id": "x",
        "annotator": "mallory",
        "verdict": "approve",
        "created_at": "2020-01-01T00:00:00Z",
    }
    lines = [
        {**GOOD[0], "output": "18 km per hour", "version": 7},  # stale: c1 is at version 1
        {**GOOD[1], "labels": [label]},
        {"input": "What is 15 percent of 80?", "id": "../../../etc/passwd"},
        {"input": "WHAT IS 15%   of 80?", "status": "approved", "quality": 5.0, "created_at": "2001-01-01T00:00:00Z"},
        {"external_id": "c4", "input": "Name the largest planet.", "status": "approved", "quality": 5.0},
    ]
    result = run("import", str(write_jsonl(tmp_path / "hostile.jsonl", lines)), "--no-embed")
    assert result.exit_code == 1
    for expected in ("line 1: version", "line 2: labels", "line 3: id", "line 4: input: duplicate of"):
        assert expected in result.output, result.output
    assert "line 5: note: status, quality ignored" in result.output
    after = stored(env)
    assert after["c1"] == c1 and set(after) == {"c1", "c2", "c3", "c4"}
    assert after["c4"]["status"] == "pending" and after["c4"]["quality"] is None


def test_missing_file_is_a_one_line_failure(env: Settings, tmp_path: Path) -> None:
    result = run("import", str(tmp_path / "absent.jsonl"))
    assert result.exit_code == 1 and result.output.strip().startswith("error: no such file")


def test_rebuild_and_select(env: Settings, tmp_path: Path) -> None:
    assert run("import", str(write_jsonl(tmp_path / "good.jsonl", GOOD)), "--restore").exit_code == 0
    rebuilt = run("rebuild")
    assert rebuilt.exit_code == 0, rebuilt.output
    assert "3 examples" in rebuilt.output
    version = (Path(env.index_dir) / "CURRENT").read_text().strip()
    assert version in rebuilt.output
    selected = run("select", "A runner covers 10 km in 50 minutes. What is her speed?", "-k", "1", "--json")
    assert selected.exit_code == 0, selected.output
    body = json.loads(selected.output[selected.output.index("{") :])
    assert [e["external_id"] for e in body["examples"]] == ["c1"] and body["index_version"] == version
    filtered = run("select", "percent of a number", "-k", "2", "--topic", "algebra")
    assert filtered.exit_code == 0 and "Solve 3x = 21." in filtered.output and "15%" not in filtered.output


def test_select_with_bad_options_fails_cleanly(env: Settings) -> None:
    result = run("select", "hello", "-k", "0")
    assert result.exit_code == 1 and "error:" in result.output and "k" in result.output


def test_text_in_square_brackets_is_printed_as_it_is(env: Settings, tmp_path: Path) -> None:
    # rich read "[/x]" as a closing tag (stats crashed with MarkupError) and ate "[postgres]" from messages.
    odd = {"external_id": "odd", "input": "Compute [/x] and [bold]y[/bold].", "output": "z", "topic": "[/x]"}
    assert run("import", str(write_jsonl(tmp_path / "odd.jsonl", [odd])), "--restore").exit_code == 0
    stats = run("stats")
    assert stats.exit_code == 0, stats.output
    assert "[/x]" in stats.output


def test_a_missing_database_driver_names_the_extra_to_install(env: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FEWSHOT_DATABASE_URL", "mysql://user@127.0.0.1/bank")
    result = run("db", "current")
    assert result.exit_code == 1
    assert "pip install 'fewshot-service[postgres]'" in result.output, result.output


@pytest.mark.parametrize("command", [["db", "current"], ["rebuild"], ["export"], ["keys", "list"]])
def test_a_data_dir_that_cannot_be_made_is_one_line_naming_the_setting(
    env: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: list[str]
) -> None:
    # A file where a folder should be: mkdir failed with a traceback (NotADirectoryError) in every command.
    (tmp_path / "taken").write_text("a file")
    monkeypatch.setenv("FEWSHOT_DATA_DIR", str(tmp_path / "taken" / "data"))
    result = run(*command)
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.exception
    lines = result.output.strip().splitlines()
    assert lines[-1].startswith("error: cannot create the bank's folder"), result.output
    assert "FEWSHOT_DATA_DIR" in lines[-1] and "Not a directory" in lines[-1]


def test_an_index_dir_that_cannot_be_made_is_one_line_naming_the_setting(env: Settings) -> None:
    Path(env.index_dir).write_text("a file where the index folder should be")
    result = run("rebuild")
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.exception
    assert "cannot create the index folders" in result.output
    assert "(FEWSHOT_INDEX_DIR): Not a directory" in result.output


def test_a_seed_dir_without_seed_files_is_one_line_not_an_empty_bank(
    env: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "seeds").mkdir()
    monkeypatch.setenv("FEWSHOT_SEED_ON_EMPTY", "true")
    monkeypatch.setenv("FEWSHOT_SEED_DIR", str(tmp_path / "seeds"))
    result = run("select", "How fast is a train that covers 120 km in 2 hours?")
    assert result.exit_code == 1, result.output
    assert "FEWSHOT_SEED_DIR" in result.output and "holds no *.jsonl file" in result.output


def test_export_to_a_folder_that_is_not_there_is_one_line(env: Settings, tmp_path: Path) -> None:
    result = run("export", "-o", str(tmp_path / "absent" / "bank.jsonl"))
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.exception
    assert result.output.strip().splitlines()[-1] == (
        f"error: cannot write {str(tmp_path / 'absent' / 'bank.jsonl')!r}: No such file or directory"
    )


def test_an_export_cut_short_leaves_the_previous_file_as_it_was(env: Settings, tmp_path: Path) -> None:
    # The file was truncated first and written line by line: a full disk left the last backup half-written.
    rows = [{"external_id": f"e{n}", "input": f"Example {n}: " + "word " * 200, "output": str(n)} for n in range(100)]
    assert run("import", str(write_jsonl(tmp_path / "rows.jsonl", rows)), "--restore", "--no-embed").exit_code == 0
    backup = tmp_path / "backup.jsonl"
    backup.write_text("the previous export\n")
    limit = 64 * 1024  # above SQLite's 32 KiB shared-memory file, below the export (about 100 KiB)

    def full_disk() -> None:  # every write past the limit fails with EFBIG, as a full disk fails with ENOSPC
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    done = subprocess.run(
        [str(Path(sys.executable).with_name("fewshot")), "export", "-o", str(backup)],
        env={**os.environ, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=full_disk,
    )
    assert done.returncode == 1, done.stderr
    assert (
        done.stderr.strip().splitlines()[-1] == f"error: cannot write {str(backup)!r}, left as it was: File too large"
    )
    assert backup.read_text() == "the previous export\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["backup.jsonl", "data", "rows.jsonl"]


def test_a_mistyped_setting_is_named_with_the_one_meant(env: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    # pydantic-settings ignores FEWSHOT_* names it does not know: FEWSHOT_PROT=8001 left the port at 8000 unsaid.
    monkeypatch.setenv("FEWSHOT_PROT", "8001")
    monkeypatch.setenv("FEWSHOT_URL", "http://127.0.0.1:8001")  # the client's, not a setting of the service
    result = run("db", "current")
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.output.splitlines() if line.startswith("warning:")]
    assert warnings == ["warning: FEWSHOT_PROT is not a setting and is ignored (did you mean FEWSHOT_PORT?)"]
