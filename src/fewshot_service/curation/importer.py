"""Reading JSONL example files: every bad line reported with its number, the good ones kept."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from ..bank import ExampleBank, ImportCounts
from ..errors import ImportFileError
from ..models import ExampleImport, Status


@dataclass
class ImportReport:
    counts: ImportCounts = field(default_factory=ImportCounts)
    line_errors: list[tuple[int, str]] = field(default_factory=list)


def describe(error: ValidationError) -> str:
    """'field: message' for each problem, e.g. 'difficulty: Input should be less than or equal to 5'."""
    parts = []
    for problem in error.errors():
        location = ".".join(str(p) for p in problem["loc"]) or "line"
        parts.append(f"{location}: {problem['msg']}")
    return "; ".join(parts)


def parse_lines(path: Path, status: Status | None = None) -> Iterator[tuple[int, ExampleImport | str]]:
    """(line number, record) for good lines and (line number, reason) for bad ones; blank lines skipped."""
    try:
        handle = path.open("r", encoding="utf-8")
    except OSError as exc:
        raise ImportFileError(f"cannot read {path}: {exc.strerror}", line_errors=[]) from exc
    with handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = ExampleImport.model_validate_json(line)
            except ValidationError as exc:
                yield number, describe(exc)
                continue
            if status is not None:
                record = record.model_copy(update={"status": status})
            yield number, record


def import_file(
    bank: ExampleBank,
    path: Path,
    *,
    status: Status | None = None,
    strict: bool = False,
    batch_size: int = 500,
    on_batch: Callable[[int], None] | None = None,
) -> ImportReport:
    """Import a JSONL file into the bank, idempotent on external_id.

    Not strict: good lines are written in batches and bad ones reported. Strict: the whole file is
    checked first and nothing is written when any line is bad.
    """
    report = ImportReport()
    if strict:
        parsed = list(parse_lines(path, status))
        bad = [(n, item) for n, item in parsed if isinstance(item, str)]
        if bad:
            raise ImportFileError(f"{path.name}: {len(bad)} bad line(s); nothing was imported", line_errors=bad)
        # One transaction: the file goes in whole or not at all.
        report.counts += _write(bank, [item for _, item in parsed if not isinstance(item, str)], on_batch)
        return report
    batch: list[ExampleImport] = []
    for number, item in parse_lines(path, status):
        if isinstance(item, str):
            report.line_errors.append((number, item))
            continue
        batch.append(item)
        if len(batch) >= batch_size:
            report.counts += _write(bank, batch, on_batch)
            batch = []
    report.counts += _write(bank, batch, on_batch)
    return report


def _write(bank: ExampleBank, batch: list[ExampleImport], on_batch: Callable[[int], None] | None) -> ImportCounts:
    counts = bank.upsert(batch)
    if on_batch is not None:
        on_batch(len(batch))
    return counts
