"""Schema migrations on SQLite and the real PostgreSQL server: up, down, adopting old banks, refusing stale ones."""

from __future__ import annotations

import hashlib
import itertools
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect, text
from typer.testing import CliRunner

from fewshot_service.bank import SqlBank, migrate
from fewshot_service.bank.base import input_hash
from fewshot_service.bank.schema import metadata
from fewshot_service.cli.main import app as cli
from fewshot_service.errors import SchemaOutOfDate
from fewshot_service.index import IndexStore
from fewshot_service.models import ExampleCreate, ExampleImport
from fewshot_service.serving.lifecycle import FewshotService
from fewshot_service.settings import Settings

from ..pg import fresh_database

# The tables of the bank when migrations were adopted (revision 0001).
BASELINE_TABLES = {"examples", "bank_meta", "labels", "audit", "preferences", "preference_labels", "leases"}


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'bank.sqlite3'}"
    else:
        with fresh_database() as pg_url:
            yield pg_url


@pytest.fixture
def bank(url: str) -> Iterator[SqlBank]:
    bank = SqlBank(url)
    yield bank
    bank.close()


def tables(bank: SqlBank) -> set[str]:
    return set(inspect(bank.engine).get_table_names())


def revisions() -> list[str]:
    """Every revision of the chain, oldest first."""
    script = ScriptDirectory.from_config(migrate.alembic_config())
    chain = [revision.revision for revision in script.walk_revisions()][::-1]
    assert chain[-1] == migrate.head_revision()
    return chain


def test_an_empty_database_is_migrated_to_head_and_matches_the_schema(bank: SqlBank) -> None:
    assert migrate.schema_status(bank.writer).state == "empty"
    bank.create_schema()  # what start-up does: an empty bank needs no command
    status = migrate.schema_status(bank.writer)
    assert status.state == "current" and status.current == migrate.head_revision()
    assert set(metadata.tables) <= tables(bank) and bank.revision() == 0
    # The migrations create exactly what bank/schema.py describes (tables, columns, types, indexes).
    with bank.engine.connect() as conn:
        differences = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), metadata)
    assert differences == []


def test_every_revision_goes_up_and_down_keeping_the_examples(bank: SqlBank) -> None:
    chain = revisions()
    assert chain[0] == "0001" and len(chain) == len(set(chain))  # one linear chain
    migrate.upgrade(bank.writer, chain[0])
    bank.insert([ExampleCreate(input="What is 2 + 2?", output="4", tags=["t"])], np.ones((1, 4), np.float32), "m", "a")
    for older, newer in itertools.pairwise(chain):
        _, after = migrate.upgrade(bank.writer, newer)
        assert after.current == newer
        _, after = migrate.downgrade(bank.writer, older)
        assert after.current == older
        migrate.upgrade(bank.writer, newer)
        [example] = list(bank.iter_examples())
        assert example.input == "What is 2 + 2?" and example.tags == ["t"]
    _, after = migrate.downgrade(bank.writer, "base")
    assert after.state == "empty" and not (tables(bank) & set(metadata.tables))
    migrate.upgrade(bank.writer)
    assert migrate.schema_status(bank.writer).state == "current" and bank.count() == 0


def test_revision_0006_rehashes_inputs_as_read_and_0005_back_as_typed(bank: SqlBank) -> None:
    """A bank of revision 0005 hashed inputs lower-cased and space-collapsed only. Upgrading recomputes every
    stored hash (in batches: more rows than one batch here) so that the exact check finds a copy typed another
    way; downgrading restores the old hashes."""
    migrate.upgrade(bank.writer, "0005")
    texts = [f"What is {n} + {n}?" for n in range(2100)] + ["Zoë has １２ crê\u200bpes.", "\ufeffCAFÉ"]
    bank.insert([ExampleCreate(input=t) for t in texts], np.ones((len(texts), 4), np.float32), "m", "a")

    def as_typed(text: str) -> str:
        return hashlib.sha256(" ".join(text.lower().split()).encode()).hexdigest()

    def stored() -> dict[str, str]:
        with bank.engine.connect() as conn:
            return dict(conn.execute(text("SELECT input, input_hash FROM examples")).all())

    with bank.engine.begin() as conn:  # as revision 0005's code wrote them
        for value in texts[-2:]:
            conn.execute(
                text("UPDATE examples SET input_hash = :h WHERE input = :i"), {"h": as_typed(value), "i": value}
            )
    assert stored() == {t: as_typed(t) for t in texts}
    assert bank.find_exact([input_hash("Zoë has 12 crêpes.")]) == {}

    migrate.upgrade(bank.writer)
    assert stored() == {t: input_hash(t) for t in texts}  # the head's hash, for every row
    assert stored()["\ufeffCAFÉ"] == input_hash("café") and list(bank.find_exact([input_hash("Zoë has 12 crêpes.")]))

    migrate.downgrade(bank.writer, "0005")
    assert stored() == {t: as_typed(t) for t in texts}


def make_pre_migration_bank(bank: SqlBank) -> str:
    """A bank as `metadata.create_all` left it before migrations: baseline tables without the columns added
    later (predicted_quality) and no alembic_version; it holds one example. Returns the example's id."""
    bank.create_schema()
    [example] = bank.insert([ExampleCreate(input="What is 3 + 4?", output="7")], np.ones((1, 4), np.float32), "m", "a")
    with bank.engine.begin() as conn:
        for table in tables(bank) - BASELINE_TABLES:
            conn.execute(text(f"DROP TABLE {table}"))
        conn.execute(text("ALTER TABLE examples DROP COLUMN predicted_quality"))
    return example.id


def test_a_bank_from_before_migrations_is_refused_then_adopted_by_db_upgrade(bank: SqlBank, url: str) -> None:
    example_id = make_pre_migration_bank(bank)
    status = migrate.schema_status(bank.writer)
    assert status.state == "unversioned"
    with pytest.raises(SchemaOutOfDate, match=r"created before schema migrations; run `fewshot db upgrade`"):
        bank.create_schema()

    result = CliRunner().invoke(cli, ["db", "upgrade"], env={"FEWSHOT_DATABASE_URL": url})
    assert result.exit_code == 0, result.output
    assert f"none (unversioned; head {status.head}) -> {status.head} (current" in result.output
    bank.create_schema()  # accepted now
    assert [e.id for e in bank.iter_examples()] == [example_id]
    # The column added before migrations is back: scoring and the review queue read it.
    assert bank.replace_predicted_quality({example_id: 0.4}) == [example_id]
    leased = bank.lease_next("ann", 60)
    assert leased is not None and leased[0].id == example_id


def test_an_older_revision_stops_the_service_and_the_commands_naming_the_fix(
    bank: SqlBank, url: str, tmp_path: Path
) -> None:
    *_, older, head = ["base", *revisions()]
    if older == "base":
        pytest.skip("the chain has one revision: nothing is older than head")
    migrate.upgrade(bank.writer, older)
    expected = (
        f"the bank schema is at revision {older}, this version of fewshot-service needs {head}: "
        "run `fewshot db upgrade`"
    )
    settings = Settings(database_url=url, data_dir=tmp_path / "data", index_dir=tmp_path / "indexes")
    service = FewshotService(settings, bank, lambda: pytest.fail("the model is not loaded"), IndexStore(tmp_path))
    with pytest.raises(SchemaOutOfDate) as refused:
        service.start()
    assert refused.value.message == expected and service.failure == expected

    env = {"FEWSHOT_DATABASE_URL": url, "FEWSHOT_DATA_DIR": str(tmp_path / "data")}
    for command in (["export"], ["stats"], ["db", "current", "--check"]):
        result = CliRunner().invoke(cli, command, env=env)
        assert result.exit_code == 1 and "fewshot db upgrade" in result.output, (command, result.output)
    # The server refuses before it binds, with the same one line.
    fewshot = Path(sys.executable).with_name("fewshot")
    served = subprocess.run(
        [str(fewshot), "serve", "--port", "1"], env=dict(os.environ, **env), capture_output=True, text=True, timeout=120
    )
    assert served.returncode == 1 and expected in " ".join(served.stderr.split())
    assert CliRunner().invoke(cli, ["db", "upgrade"], env=env).exit_code == 0
    assert CliRunner().invoke(cli, ["db", "current", "--check"], env=env).exit_code == 0


def test_a_revision_this_code_does_not_know_is_refused(bank: SqlBank) -> None:
    bank.create_schema()
    with bank.engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    with pytest.raises(SchemaOutOfDate, match=r"revision 9999, which this version of fewshot-service does not know"):
        bank.create_schema()


def test_replicas_starting_together_on_an_empty_postgresql_database_migrate_it_once() -> None:
    with fresh_database() as url:
        banks = [SqlBank(url) for _ in range(4)]
        errors: list[BaseException] = []

        def start(bank: SqlBank) -> None:
            try:
                bank.create_schema()
                bank.upsert([ExampleImport(external_id="seed-1", input="What is 5 + 5?", output="10")])
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=start, args=(bank,)) for bank in banks]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        assert migrate.schema_status(banks[0].writer).state == "current"
        assert banks[0].count() == 1  # seeding is idempotent on external_id: one example, not four
        for bank in banks:
            bank.close()


def test_postgres_urls_without_a_driver_use_psycopg_3() -> None:
    with fresh_database() as url:
        plain = url.replace("postgresql+psycopg://", "postgresql://")
        bank = SqlBank(plain)
        try:
            bank.create_schema()
            assert bank.engine.dialect.driver == "psycopg"
        finally:
            bank.close()
        engine = create_engine(url)
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM bank_meta")).scalar_one() == 1
        engine.dispose()
