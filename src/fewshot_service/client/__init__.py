"""A typed Python client for fewshot-service, importable with only httpx and pydantic installed.

    from fewshot_service.client import FewshotClient
    with FewshotClient("http://127.0.0.1:8000", api_key="...") as client:
        shots = client.select("A train travels 120 km in 2 hours ...", k=4).examples

Framework adapters live beside it: fewshot_service.client.langchain (langchain-core) and
fewshot_service.client.dspy (DSPy); each imports its framework only when imported itself.
"""

from ._async import AsyncFewshotClient
from ._http import RetryPolicy
from ._sync import FewshotClient
from .errors import (
    Conflict,
    FewshotAPIError,
    FewshotConnectionError,
    Forbidden,
    NotFound,
    RateLimited,
    Unauthorized,
    Unavailable,
    ValidationFailed,
)

__all__ = [
    "AsyncFewshotClient",
    "Conflict",
    "FewshotAPIError",
    "FewshotClient",
    "FewshotConnectionError",
    "Forbidden",
    "NotFound",
    "RateLimited",
    "RetryPolicy",
    "Unauthorized",
    "Unavailable",
    "ValidationFailed",
]
