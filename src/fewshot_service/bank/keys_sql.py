"""API keys kept in the bank: created and revoked by admins, looked up by the sha256 of the presented key."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, insert, inspect, select, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.exc import SQLAlchemyError

from ..errors import BankError, Conflict, NotFound
from .base import SqlBase, now, utc
from .schema import api_keys


@dataclass(frozen=True)
class StoredKey:
    """A key as stored: everything but the key itself, which is never kept."""

    id: str
    name: str
    role: str
    created_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None
    rate_per_second: float | None = None  # None: the server's default rate


def _stored(row: RowMapping) -> StoredKey:
    return StoredKey(
        id=row["id"],
        name=row["name"],
        role=row["role"],
        created_at=utc(row["created_at"]),
        revoked_at=utc(row["revoked_at"]) if row["revoked_at"] else None,
        last_used_at=utc(row["last_used_at"]) if row["last_used_at"] else None,
        rate_per_second=row["rate_per_second"],
    )


class KeyStore(SqlBase):
    def create_key(
        self, key_id: str, name: str, role: str, key_hash: str, rate_per_second: float | None = None
    ) -> StoredKey:
        with self._transaction() as conn:
            # A key's name is who acts (labels, leases, feedback): two live keys with one name are one person,
            # so they must hold one role. Same name and role is how a key is rotated.
            held = conn.execute(
                select(api_keys.c.role).where(
                    api_keys.c.name == name, api_keys.c.role != role, api_keys.c.revoked_at.is_(None)
                )
            ).scalar()
            if held is not None:
                raise Conflict(
                    f"a live key named {name!r} has the role {held}: keys with one name act as one person, so "
                    f"they share a role (to rotate it, create a {held} key, then revoke the old one; otherwise "
                    "choose another name)",
                    field="role",
                )
            conn.execute(
                insert(api_keys).values(
                    id=key_id,
                    name=name,
                    role=role,
                    key_hash=key_hash,
                    created_at=now(),
                    rate_per_second=rate_per_second,
                )
            )
            row = conn.execute(select(api_keys).where(api_keys.c.id == key_id)).mappings().one()
        return _stored(row)

    def list_keys(self) -> list[StoredKey]:
        """Every key, revoked ones included, newest first."""
        with self._connect() as conn:
            rows = conn.execute(select(api_keys).order_by(api_keys.c.created_at.desc(), api_keys.c.id)).mappings()
            return [_stored(row) for row in rows]

    def revoke_key(self, key_id: str) -> StoredKey:
        """Revoke a key (again: a no-op that keeps the first revocation time)."""
        with self._transaction() as conn:
            row = conn.execute(select(api_keys).where(api_keys.c.id == key_id)).mappings().first()
            if row is None:
                raise NotFound(f"no API key with id {key_id!r}", field="key_id")
            if row["revoked_at"] is None:
                conn.execute(update(api_keys).where(api_keys.c.id == key_id).values(revoked_at=now()))
                row = conn.execute(select(api_keys).where(api_keys.c.id == key_id)).mappings().one()
        return _stored(row)

    def find_key(self, key_hash: str) -> StoredKey | None:
        """The active (unrevoked) key with this hash, if any."""
        with self._connect() as conn:
            row = (
                conn.execute(select(api_keys).where(api_keys.c.key_hash == key_hash, api_keys.c.revoked_at.is_(None)))
                .mappings()
                .first()
            )
        return _stored(row) if row is not None else None

    def active_key_count(self) -> int:
        """Unrevoked keys; 0 when the table does not exist yet (a bank that was never started)."""
        try:
            with self._connect() as conn:
                if not inspect(conn).has_table(api_keys.name):
                    return 0
                count = conn.execute(
                    select(func.count()).select_from(api_keys).where(api_keys.c.revoked_at.is_(None))
                ).scalar_one()
        except SQLAlchemyError as exc:
            raise BankError(f"cannot read the API keys: {exc}") from exc
        return int(count)

    def touch_keys(self, last_used: Mapping[str, datetime]) -> None:
        """Record when keys were last used (id -> time)."""
        if not last_used:
            return
        with self._transaction() as conn:
            for key_id, when in last_used.items():
                conn.execute(update(api_keys).where(api_keys.c.id == key_id).values(last_used_at=when))
