"""Where the service is and which key to send, from arguments or the environment, checked at construction."""

from __future__ import annotations

import math
import os
from typing import Any
from urllib.parse import urlsplit

import httpx

from .. import __version__

DEFAULT_URL = "http://127.0.0.1:8000"


def connection_settings(base_url: str | None, api_key: str | None) -> tuple[str, dict[str, str]]:
    """The base URL and the headers every request carries (the key as a bearer token, when there is one).

    Mistakes are refused here (ValueError, TypeError), not found by the first request: they are no connection
    error, and retrying them only delays the message."""
    # Only an omitted URL falls back: an explicit "" (an unset variable passed through, say) would otherwise
    # send the key to whatever listens on the default address.
    if base_url is None:
        url, origin = os.environ.get("FEWSHOT_URL") or DEFAULT_URL, "FEWSHOT_URL"
    else:
        url, origin = base_url, "base_url"
    if not isinstance(url, str):
        raise TypeError(f"base_url must be a string such as {DEFAULT_URL!r}, not {type(url).__name__}")
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(
            f"{origin} {url!r} is not a service URL: it needs http:// or https:// and a host, e.g. {DEFAULT_URL!r}"
        )
    key, key_origin = (
        (api_key, "api_key") if api_key is not None else (os.environ.get("FEWSHOT_API_KEY"), "FEWSHOT_API_KEY")
    )
    headers = {"User-Agent": f"fewshot-service-client/{__version__}"}
    if key:
        headers["Authorization"] = f"Bearer {_checked_key(key, key_origin)}"
    return url.strip().rstrip("/"), headers


def _checked_key(key: Any, origin: str) -> str:
    if not isinstance(key, str):
        raise TypeError(f"{origin} must be a string, not {type(key).__name__}")
    # A header carries visible ASCII; anything else failed every request as a "connection error" whose text
    # held the key. The message names the character's place, never the key itself.
    for position, char in enumerate(key):
        if not "!" <= char <= "~":
            shown = f"{char!a}" if char.isspace() or not char.isprintable() else "a non-ASCII character"
            raise ValueError(
                f"{origin} holds {shown} at character {position}, which an HTTP header cannot carry "
                "(keys are visible ASCII; a key read from a file may keep its newline: strip it)"
            )
    return key


def checked_timeout(timeout: Any) -> Any:
    """Seconds (> 0), None for no limit, or an httpx.Timeout as given."""
    if timeout is None or isinstance(timeout, httpx.Timeout):
        return timeout
    if (
        isinstance(timeout, bool)
        or not isinstance(timeout, int | float)
        or not (timeout > 0 and math.isfinite(timeout))
    ):
        raise ValueError(f"timeout must be a positive number of seconds (or None for no limit), not {timeout!r}")
    return timeout
