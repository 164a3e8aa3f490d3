"""What a database's integrity error says clashed, told the same way on SQLite and PostgreSQL.

Only the external_id unique constraint is a caller's clash worth naming as such; any other violation is
reported as what it is (a null where a value is needed, another unique key), so a refusal never blames
external_id for a change that did not touch it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy.exc import IntegrityError

from ..errors import Conflict, FewshotError, InvalidInput

Kind = Literal["unique", "not_null", "other"]
# SQLite: "UNIQUE constraint failed: examples.external_id", "NOT NULL constraint failed: examples.output".
_SQLITE = re.compile(r"(UNIQUE|NOT NULL) constraint failed: \w+\.(\w+)")
# PostgreSQL SQLSTATEs (Appendix A of its manual).
_SQLSTATE: dict[str, Kind] = {"23505": "unique", "23502": "not_null"}
# PostgreSQL's detail of a unique violation: 'Key (external_id)=(x) already exists.'
_PG_KEY = re.compile(r"Key \((\w+)\)=")
_FIELD = {"meta": "metadata"}  # column name -> API field name, where they differ


@dataclass(frozen=True)
class Violation:
    kind: Kind
    column: str | None


def violation_of(exc: IntegrityError) -> Violation:
    """The kind of constraint an integrity error broke, and the column, when the driver says."""
    original = exc.orig
    diag = getattr(original, "diag", None)  # psycopg
    if diag is not None:
        kind = _SQLSTATE.get(getattr(original, "sqlstate", None) or "", "other")
        key = _PG_KEY.search(diag.message_detail or "")
        return Violation(kind, diag.column_name or (key.group(1) if key else None))
    found = _SQLITE.search(str(original))
    if found is None:
        return Violation("other", None)
    return Violation("unique" if found.group(1) == "UNIQUE" else "not_null", found.group(2))


def refusal(exc: IntegrityError, values: dict[str, Any]) -> FewshotError:
    """The error to answer for an integrity error raised writing `values` (column -> value) to examples."""
    violation = violation_of(exc)
    field = _FIELD.get(violation.column or "", violation.column)
    if violation.kind == "unique" and violation.column == "external_id":
        return Conflict(f"external_id {values.get('external_id')!r} is already used by another example", field=field)
    if violation.kind == "not_null" and field is not None:
        return InvalidInput(f"{field} may not be null: every example has one", field=field)
    what = f"{violation.kind.replace('_', ' ')} constraint" + (f" on {field}" if field else "")
    return Conflict(f"the bank refused the change ({what})", field=field)
