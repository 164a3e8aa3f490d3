"""Reading JSONL example files: every bad line reported with its number, the good ones kept."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from ..errors import ImportFileError
from ..models import RESTORING, ExampleImport, Status, nul_path, nul_refusal
from .protocol import ExampleBank, ImportCounts


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
        # pydantic prefixes a validator's own message with "Value error, "; the API's answers drop it too.
        parts.append(f"{location}: {problem['msg'].removeprefix('Value error, ')}")
    return "; ".join(parts)


def check_file(path: Path) -> int:
    """How many lines the file has, once it is known to exist, be readable and decode (before any write)."""
    if not path.is_file():
        # Said as it is: "no such file" for a folder or a pipe sent the operator looking for a typo.
        if path.is_dir():
            reason = f"{path} is a folder, not a JSONL file"
        elif path.exists():  # a pipe (<(zcat bank.jsonl.gz)) cannot be read twice: checked, then imported
            reason = f"{path} is not a regular file (the file is read twice: checked, then imported); save it first"
        else:
            reason = f"no such file: {path}"
        raise ImportFileError(reason, line_errors=[])
    lines = 0
    try:
        with path.open("rb") as handle:
            for lines, raw in enumerate(handle, start=1):
                _decode(raw, lines)
    except OSError as exc:
        raise ImportFileError(f"cannot read {path}: {exc.strerror}", line_errors=[]) from exc
    except UnicodeDecodeError as exc:
        raise ImportFileError(
            f"{path.name} line {lines}: {_undecodable(exc)}; nothing was imported", line_errors=[]
        ) from exc
    return lines


def _decode(raw: bytes, number: int) -> str:
    # A byte order mark opens files some editors save as "UTF-8"; it is not part of the first line's JSON.
    return raw.decode("utf-8-sig" if number == 1 else "utf-8")


def _undecodable(exc: UnicodeDecodeError) -> str:
    return f"not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at column {exc.start + 1})"


def parse_line(line: str | bytes, *, restore: bool = False) -> ExampleImport | str:
    """One JSONL line as a record, or why it is not one ("field: message"). restore: the line is put back
    as exported, so an input the bank held is taken even where a new one would be refused (models.RESTORING)."""
    try:
        record = ExampleImport.model_validate_json(line, context={RESTORING: restore})
    except ValidationError as exc:
        return describe(exc)
    # Refused as the API refuses it in a body (api/middleware/limits.py): PostgreSQL cannot store it.
    escaped_nul = b"\\u0000" in line if isinstance(line, bytes) else "\\u0000" in line
    if escaped_nul and (where := nul_path(json.loads(line))) is not None:
        return nul_refusal(where)
    return record


def parse_lines(
    path: Path, status: Status | None = None, *, restore: bool = False
) -> Iterator[tuple[int, ExampleImport | str]]:
    """(line number, record) for good lines and (line number, reason) for bad ones; blank lines skipped."""
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise ImportFileError(f"cannot read {path}: {exc.strerror}", line_errors=[]) from exc
    with handle:
        for number, raw in enumerate(handle, start=1):
            try:
                line = _decode(raw, number)
            except UnicodeDecodeError as exc:
                yield number, _undecodable(exc)
                continue
            if not line.strip():
                continue
            record = parse_line(line, restore=restore)
            if isinstance(record, str):
                yield number, record
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
    line is bad. on_batch is told how many lines of the file each write covered (bad and blank ones too),
    so it can count lines read.
    """
    report = ImportReport()
    if strict:
        parsed = list(parse_lines(path, status if restore else None, restore=restore))
        bad = [(n, item) for n, item in parsed if isinstance(item, str)]
        if bad:
            raise ImportFileError(f"{path.name}: {len(bad)} bad line(s); nothing was imported", line_errors=bad)
        # One transaction: the file goes in whole or not at all.
        good = [(n, item) for n, item in parsed if not isinstance(item, str)]
        _write(bank, good, restore, report, strict=True, status=status)
        _advance(on_batch, _last_line(path))
        return report
    batch: list[tuple[int, ExampleImport]] = []
    lines_done = 0  # lines a write has covered, bad ones included, so the progress ends at the file's end
    for number, item in parse_lines(path, status if restore else None, restore=restore):
        if isinstance(item, str):
            report.line_errors.append((number, item))
            continue
        batch.append((number, item))
        if len(batch) >= batch_size:
            _write(bank, batch, restore, report, status=status)
            _advance(on_batch, number - lines_done)
            lines_done, batch = number, []
    _write(bank, batch, restore, report, status=status)
    _advance(on_batch, _last_line(path) - lines_done)
    report.line_errors.sort()
    return report


def _write(
    bank: ExampleBank,
    batch: list[tuple[int, ExampleImport]],
    restore: bool,
    report: ImportReport,
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


def _advance(on_batch: Callable[[int], None] | None, lines: int) -> None:
    if on_batch is not None and lines > 0:
        on_batch(lines)


def _last_line(path: Path) -> int:
    with path.open("rb") as handle:
        return sum(1 for _ in handle)
