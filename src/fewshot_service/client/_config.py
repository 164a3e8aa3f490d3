"""Where the service is and which key to send, from arguments or the environment."""

from __future__ import annotations

import os

from .. import __version__

DEFAULT_URL = "http://127.0.0.1:8000"


def connection_settings(base_url: str | None, api_key: str | None) -> tuple[str, dict[str, str]]:
    """The base URL and the headers every request carries (the key as a bearer token, when there is one)."""
    url = base_url or os.environ.get("FEWSHOT_URL") or DEFAULT_URL
    key = api_key if api_key is not None else os.environ.get("FEWSHOT_API_KEY")
    headers = {"User-Agent": f"fewshot-service-client/{__version__}"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    return url.rstrip("/"), headers
