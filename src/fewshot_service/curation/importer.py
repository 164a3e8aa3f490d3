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
    notes: list[tuple[int, str]] = field(default_factory=list)  # lines stored otherwise than they asked


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
    restore: bool = True,
    batch_size: int = 500,
    on_batch: Callable[[int], None] | None = None,
) -> ImportReport:
    """Import a JSONL file into the bank, idempotent on external_id.

    restore: the lines as exported (ids, labels, dates, status, quality), for operators and seeding; else
    the curator rules (SqlBank.import_curated; exact duplicates only, as there is no index here). status:
    the operator's status for every line stored (the CLI is trusted; the API never passes one). Not
    strict: good lines are written in batches and bad ones reported. Strict: nothing is written when any
    line is bad.
    """
    report = ImportReport()
    if strict:
        parsed = list(parse_lines(path, status if restore else None))
        bad = [(n, item) for n, item in parsed if isinstance(item, str)]
        if bad:
            raise ImportFileError(f"{path.name}: {len(bad)} bad line(s); nothing was imported", line_errors=bad)
        # One transaction: the file goes in whole or not at all.
        good = [(n, item) for n, item in parsed if not isinstance(item, str)]
        _write(bank, good, restore, report, on_batch, strict=True, status=status)
        return report
    batch: list[tuple[int, ExampleImport]] = []
    for number, item in parse_lines(path, status if restore else None):
        if isinstance(item, str):
            report.line_errors.append((number, item))
            continue
        batch.append((number, item))
        if len(batch) >= batch_size:
            _write(bank, batch, restore, report, on_batch, status=status)
            batch = []
    _write(bank, batch, restore, report, on_batch, status=status)
    report.line_errors.sort()
    return report


def _write(
    bank: ExampleBank,
    batch: list[tuple[int, ExampleImport]],
    restore: bool,
    report: ImportReport,
    on_batch: Callable[[int], None] | None,
    *,
    strict: bool = False,
    status: Status | None = None,
) -> None:
    records = [record for _, record in batch]
    try:
        if restore:
            counts = bank.upsert(records, strict=strict)
        else:
            items = [(n, r, None) for n, r in enumerate(records)]
            counts = bank.import_curated(items, None, "import", strict=strict, status=status)
    except ImportFileError as exc:  # strict: the bank names batch positions, the reader wants line numbers
        lines = [(batch[position][0], why) for position, why in exc.line_errors]
        raise ImportFileError(
            f"{len(lines)} line(s) cannot be stored; nothing was imported", line_errors=lines
        ) from exc
    report.counts += counts
    report.line_errors += [(batch[position][0], why) for position, why in counts.failed]
    report.notes += [(batch[position][0], what) for position, what in counts.notes]
    if on_batch is not None:
        on_batch(len(batch))
