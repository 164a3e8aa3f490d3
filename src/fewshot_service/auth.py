"""API keys and roles: who may call what.

Keys come from FEWSHOT_API_KEYS (``key:role[:name[:rate]],...``) and from the bank's ``api_keys`` table, where
admins create and revoke them; only a key's sha256 is stored. A caller presents ``Authorization: Bearer
<key>``; its role must reach the one the route needs (reader < curator < admin). The key's name is the
actor recorded in the history.

Authentication is on when any key is configured, in the settings or in the bank (checked at start and every
few seconds after), and once on it stays on for the life of the process: revoking the last database key
locks the service, it never opens it. A bank that does not answer is asked again, never taken for an
answer. With no key anywhere, every caller is an anonymous admin, which ``fewshot serve`` allows on
loopback only (``check_bind``).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import secrets
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from .bank import SqlBank
from .bank.keys_sql import StoredKey
from .errors import BankUnavailable, ConfigurationError, Conflict, FewshotError, Forbidden, InvalidInput
from .models import INVISIBLE_REFUSAL, NumberOrNull, shows_something

log = logging.getLogger(__name__)

Role = Literal["reader", "curator", "admin"]
ROLES: tuple[Role, ...] = ("reader", "curator", "admin")
RANK: dict[str, int] = {role: rank for rank, role in enumerate(ROLES)}
KEY_PREFIX = "fsk_"  # makes a leaked key recognisable to secret scanners and people alike
CACHE_SECONDS = 5.0  # a revoked key stops working in other processes within this time (at once in this one)
CHECK_SECONDS = 5.0  # how often a service without keys looks for keys created since
TOUCH_SECONDS = 60.0  # last_used_at is written at most this often per key and process
MAX_KEY_RATE = 1_000_000.0  # a per-key rate above this is a typo, not a plan

KeyName = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.@:-]+$")
]


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> str:
    """A fresh random key: 32 bytes from the OS's CSPRNG."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def is_loopback(host: str) -> bool:
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name other than localhost may resolve to anything


@dataclass(frozen=True)
class Principal:
    """Who is calling: a key's name and role, or the anonymous admin when authentication is off."""

    name: str
    role: Role
    key_id: str | None = None  # the database key's id; None for settings keys and anonymous callers
    authenticated: bool = True
    rate: float | None = None  # requests per second on each kind of route; None: the server's default

    def may(self, role: Role) -> bool:
        return RANK[self.role] >= RANK[role]


ANONYMOUS = Principal("anonymous", "admin", authenticated=False)


@dataclass(frozen=True)
class Annotating:
    """Whose label or lease a request is: the annotator, the admin recording for them (if any), and
    whether lease rules may be overridden (an admin's key only; the anonymous admin is everyone)."""

    annotator: str
    recorded_by: str | None = None
    admin: bool = False


def annotating(principal: Principal, claimed: str | None) -> Annotating:
    """The annotator a request acts as. With keys on it is the key's name; another name needs an admin key
    (then recorded as acting for that annotator). With keys off it is the name the caller gives."""
    if claimed is not None and not shows_something(claimed):  # a zero-width space would label as nobody visible
        raise InvalidInput(f"annotator: {INVISIBLE_REFUSAL}", field="annotator")
    if not principal.authenticated:
        if claimed is None:
            raise InvalidInput("annotator is required: who is labelling?", field="annotator")
        return Annotating(claimed)
    admin = principal.role == "admin"
    if claimed is None or claimed == principal.name:
        return Annotating(principal.name, admin=admin)
    if not admin:
        raise Forbidden(
            f"the key {principal.name!r} labels as {principal.name!r}, not as {claimed!r}; omit annotator or "
            "use an admin key to act for someone",
            field="annotator",
        )
    return Annotating(claimed, recorded_by=principal.name, admin=True)


@dataclass(frozen=True)
class _SettingsKey:
    digest: bytes
    principal: Principal


def parse_api_keys(spec: str | None) -> list[tuple[str, Principal]]:
    """``key:role[:name[:rate]],...`` -> (key, principal); a key without a name is named after its role and a
    fingerprint (never the key); rate (requests per second, 0 for none) overrides the server's default for
    this key. Raises ConfigurationError naming the bad entry's position."""
    found: list[tuple[str, Principal]] = []
    for position, entry in enumerate((spec or "").split(","), start=1):
        if not entry.strip():
            continue
        parts = [part.strip() for part in entry.split(":")]
        if len(parts) not in (2, 3, 4) or not parts[0]:
            raise ConfigurationError(
                f"FEWSHOT_API_KEYS entry {position} is not key:role, key:role:name or key:role:name:rate"
            )
        key, role = parts[0], parts[1]
        if role not in RANK:
            raise ConfigurationError(
                f"FEWSHOT_API_KEYS entry {position} has role {role!r}; roles are {', '.join(ROLES)}"
            )
        name = parts[2] if len(parts) >= 3 and parts[2] else f"{role}-{digest(key)[:8]}"
        rate = _parse_rate(parts[3], position) if len(parts) == 4 and parts[3] else None
        found.append((key, Principal(name, role, rate=rate)))  # type: ignore[arg-type]  # role checked above
    keys = [key for key, _ in found]
    if len(set(keys)) != len(keys):
        raise ConfigurationError("FEWSHOT_API_KEYS names the same key twice")
    return found


def _parse_rate(text: str, position: int) -> float:
    try:
        rate = float(text)
    except ValueError:
        rate = -1.0
    if not 0 <= rate <= MAX_KEY_RATE:  # also refuses nan and inf
        raise ConfigurationError(
            f"FEWSHOT_API_KEYS entry {position} has rate {text!r}; a rate is requests per second, "
            f"0 (no limit) to {MAX_KEY_RATE:g}"
        )
    return rate


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: KeyName = Field(description="Who uses the key; recorded as the actor of every change made with it.")
    role: Role
    rate_per_second: NumberOrNull = Field(
        None,
        ge=0,
        le=MAX_KEY_RATE,
        description="Requests per second this key may make on each kind of route (0: no limit); "
        "omitted: the server's FEWSHOT_RATE_LIMIT_PER_SECOND.",
    )


class KeyInfo(BaseModel):
    """A stored key, without the key: it is shown once, when created."""

    id: str
    name: str
    role: Role
    created_at: datetime
    revoked_at: datetime | None = None
    last_used_at: datetime | None = None
    rate_per_second: float | None = None

    @classmethod
    def of(cls, stored: StoredKey) -> KeyInfo:
        return cls.model_validate(stored, from_attributes=True)


class KeyCreated(KeyInfo):
    key: str = Field(description="The secret, shown this once; only its sha256 is stored.")


class Authenticator:
    """Resolves a presented key to a Principal, from the settings keys or the bank's."""

    def __init__(self, spec: str | None, bank: SqlBank, *, required: bool = False) -> None:
        """required: authentication is on even before any key exists (a non-loopback server)."""
        self._settings_keys = [_SettingsKey(bytes.fromhex(digest(k)), p) for k, p in parse_api_keys(spec)]
        self.bank = bank
        self._on = required or bool(self._settings_keys)
        self._checked_at = -CHECK_SECONDS
        self._known_keyless = False  # the bank's last answer was "no keys"
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[float, Principal]] = {}  # digest -> (cached at, principal)
        self._used: dict[str, datetime] = {}  # db key id -> last use not yet written
        self._touched_at = time.monotonic()

    # -- is authentication on? ------------------------------------------------------------------
    def settled(self) -> bool:
        """True when enabled() answers without reading the bank (callers on the event loop check this)."""
        return self._on or time.monotonic() - self._checked_at < CHECK_SECONDS

    def enabled(self) -> bool:
        """Whether callers must send a key. A bank that cannot answer is never taken for "no keys": before
        any answer this fails closed (BankUnavailable, 503) and asks again on the next request, so nothing
        latches; once the bank has said "no keys", that answer stands until it can be asked again."""
        if self.settled():
            return self._on
        self._checked_at = time.monotonic()
        try:
            count = self.bank.active_key_count()
        except FewshotError as exc:
            if self._known_keyless:
                return False
            self._checked_at = -CHECK_SECONDS  # unknown: ask again next time, do not remember a guess
            log.warning("cannot tell whether API keys exist, so requests are refused: %s", exc.message)
            raise BankUnavailable(
                f"cannot tell whether API keys are required, the bank does not answer ({exc.message})"
            ) from exc
        self._known_keyless = not count
        if count and not self._on:
            log.info("authentication is on: the bank holds %d API key(s)", count)
            self._on = True
        return self._on

    # -- who is it? -------------------------------------------------------------------------------
    def cached(self, key: str) -> Principal | None:
        """The principal for key without reading the bank, when the settings or the cache know it."""
        key_digest = digest(key)
        raw = bytes.fromhex(key_digest)
        found: Principal | None = None
        for configured in self._settings_keys:
            # Every configured key is compared, each in constant time, so timing tells nothing.
            if hmac.compare_digest(configured.digest, raw):
                found = configured.principal
        if found is not None:
            return found
        hit = self._cache.get(key_digest)
        if hit is not None and time.monotonic() - hit[0] < CACHE_SECONDS:
            self._note_use(hit[1])
            return hit[1]
        return None

    def lookup(self, key: str) -> Principal | None:
        """The principal for key, reading the bank when the cache does not know it; None for no such key."""
        found = self.cached(key)
        if found is not None:
            return found
        key_digest = digest(key)
        try:
            stored = self.bank.find_key(key_digest) if len(key) <= 200 else None
        except BankUnavailable:
            known = self._cache.get(key_digest)
            if known is None:
                raise
            # A key this process accepted before the outage stays accepted during it: selects keep working,
            # and revoking it needs the bank anyway. Asked again at the next use once the bank answers.
            return known[1]
        if stored is None:
            self._cache.pop(key_digest, None)
            return None
        principal = Principal(
            stored.name,
            stored.role,  # type: ignore[arg-type]
            key_id=stored.id,
            rate=stored.rate_per_second,
        )
        with self._lock:
            if len(self._cache) > 10_000:  # bounded: stale entries go first, then everything
                now = time.monotonic()
                self._cache = {d: hit for d, hit in self._cache.items() if now - hit[0] < CACHE_SECONDS}
                if len(self._cache) > 10_000:
                    self._cache.clear()
            self._cache[key_digest] = (time.monotonic(), principal)
        self._note_use(principal)
        return principal

    # -- keys in the bank -------------------------------------------------------------------------
    def create(self, request: KeyCreate) -> KeyCreated:
        """A new key; its name may be an existing key's only with that key's role (the bank checks its own)."""
        for settings_key in self._settings_keys:
            principal = settings_key.principal
            if principal.name == request.name and principal.role != request.role:
                raise Conflict(
                    f"FEWSHOT_API_KEYS has a key named {request.name!r} with the role {principal.role}: keys with "
                    "one name act as one person, so they share a role; choose another name",
                    field="role",
                )
        key = new_key()
        stored = self.bank.create_key(
            uuid.uuid4().hex, request.name, request.role, digest(key), request.rate_per_second
        )
        self._on = True  # the first key created turns authentication on at once, not within CHECK_SECONDS
        return KeyCreated(**KeyInfo.of(stored).model_dump(), key=key)

    def revoke(self, key_id: str) -> KeyInfo:
        stored = self.bank.revoke_key(key_id)
        with self._lock:
            # This process stops accepting the key now; others within CACHE_SECONDS.
            self._cache = {d: hit for d, hit in self._cache.items() if hit[1].key_id != key_id}
        return KeyInfo.of(stored)

    def list(self) -> list[KeyInfo]:
        return [KeyInfo.of(stored) for stored in self.bank.list_keys()]

    def _note_use(self, principal: Principal) -> None:
        if principal.key_id is None:
            return
        self._used[principal.key_id] = datetime.now(UTC)
        if time.monotonic() - self._touched_at >= TOUCH_SECONDS:
            self._touched_at = time.monotonic()
            used, self._used = self._used, {}
            # Off the request path: a write waiting for the bank's write lock must not delay a select.
            threading.Thread(target=self._touch, args=(used,), name="fewshot-key-touch", daemon=True).start()

    def _touch(self, used: dict[str, datetime]) -> None:
        try:
            self.bank.touch_keys(used)
        except FewshotError as exc:
            log.warning("could not record when API keys were last used: %s", exc.message)


def check_bind(settings_spec: str | None, host: str, bank: SqlBank) -> str | None:
    """Refuse (ConfigurationError) to serve beyond loopback without keys; returns a line to log when
    authentication is off, None when it is on."""
    configured = len(parse_api_keys(settings_spec))
    if configured:
        return None
    if is_loopback(host):
        try:
            stored = bank.active_key_count()
        except FewshotError:
            stored = 0  # the service reports an unreachable bank itself; on loopback there is nothing to guard
        if stored:
            return None
        return f"authentication is off: no API key is configured, so the service listens on loopback only ({host})"
    try:
        stored = bank.active_key_count()
    except FewshotError as exc:
        raise ConfigurationError(
            f"refusing to listen on {host} without API keys: cannot read the bank's keys ({exc.message})"
        ) from exc
    if not stored:
        raise ConfigurationError(
            f"refusing to listen on {host} without API keys: set FEWSHOT_API_KEYS (key:role,...) or create one "
            "with `fewshot keys create`, or listen on 127.0.0.1"
        )
    return None
