"""The exception tree of fewshot-service.

Every error the service raises on purpose derives from one base class, so the API maps them to HTTP
statuses in one place and the CLI to one-line messages::

    FewshotError                       500 unless a subclass says otherwise
    ├── Unauthorized                   401  no API key, or one the service does not know (or revoked)
    ├── Forbidden                      403  the key's role does not allow the operation
    ├── RateLimited                    429  the key (or client address) sent too many requests
    ├── InvalidInput                   422  a value the caller sent is wrong (names the field)
    │   └── ImportFileError            422  a JSONL file has bad lines (names them)
    ├── NotFound                       404
    ├── Conflict                       409  e.g. an external_id already used by another example
    ├── PayloadTooLarge                413  a batch over its limit
    ├── NotReady                       503  bank or index still loading
    ├── ConfigurationError             500  settings that cannot work (bad model path, bad URL)
    │   └── LLMNotConfigured           503  LLM expansion asked for, but no FEWSHOT_LLM_* endpoint set
    ├── LLMError                       502  the LLM endpoint failed (after retries) or refused the call
    ├── BankError                      500  the database failed (wraps SQLAlchemy errors)
    │   ├── SchemaOutOfDate            500  the bank's schema is not this version's (`fewshot db upgrade`)
    │   └── BankUnavailable            503  the database is down, refuses or does not answer in time
    ├── EmbeddingError                 500  the model failed to load or encode
    └── IndexStoreError                500  an index version on disk is missing or damaged
        ├── ManifestMismatch                the saved index does not describe the current bank/model
        └── IndexStorageFull           507  the index directory is full or read-only; nothing was published

Library errors are translated where the library is called and chained with ``raise ... from exc``.
"""

from __future__ import annotations

from typing import Any


class FewshotError(Exception):
    """Base of every error raised on purpose by fewshot-service."""

    status_code = 500
    code = "internal_error"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    def details(self) -> dict[str, Any]:
        """Extra members for the error body (e.g. the duplicates found)."""
        return {}

    def headers(self) -> dict[str, str]:
        """HTTP headers the answer must carry (e.g. Retry-After)."""
        return {}


class Unauthorized(FewshotError):
    status_code = 401
    code = "unauthorized"

    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": "Bearer"}  # RFC 6750: tells the client which scheme to use


class Forbidden(FewshotError):
    status_code = 403
    code = "forbidden"


class RateLimited(FewshotError):
    status_code = 429
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class InvalidInput(FewshotError):
    status_code = 422
    code = "invalid_input"


class ImportFileError(InvalidInput):
    code = "invalid_import_file"

    def __init__(self, message: str, *, line_errors: list[tuple[int, str]]) -> None:
        super().__init__(message)
        self.line_errors = line_errors

    def details(self) -> dict[str, Any]:
        return {"errors": [{"line": number, "message": reason} for number, reason in self.line_errors[:100]]}


class NotFound(FewshotError):
    status_code = 404
    code = "not_found"


class Conflict(FewshotError):
    status_code = 409
    code = "conflict"


class PayloadTooLarge(FewshotError):
    status_code = 413
    code = "payload_too_large"


class NotReady(FewshotError):
    status_code = 503
    code = "not_ready"

    def headers(self) -> dict[str, str]:
        # Only "still loading" is worth retrying soon; a 503 for an unconfigured feature is not.
        return {"Retry-After": "2"}


class ConfigurationError(FewshotError):
    code = "configuration_error"


class FeatureNotInstalled(ConfigurationError):
    # 501: the server runs, but this deployment did not install the extra that the feature needs.
    status_code = 501
    code = "feature_not_installed"

    @classmethod
    def needing(cls, feature: str, extra: str, exc: ImportError) -> FeatureNotInstalled:
        missing = exc.name or str(exc)
        return cls(f"{feature} needs {missing}, which is not installed: pip install 'fewshot-service[{extra}]'")


class LLMNotConfigured(ConfigurationError):
    # 503, not 500: the service works, this optional feature is switched off until an endpoint is set.
    status_code = 503
    code = "llm_not_configured"


class LLMError(FewshotError):
    status_code = 502
    code = "llm_error"

    def __init__(self, message: str, *, retries: int = 0) -> None:
        super().__init__(message)
        self.retries = retries  # attempts repeated before giving up, for the run's accounting


class BankError(FewshotError):
    code = "bank_error"


class SchemaOutOfDate(BankError):
    """The database's schema revision is not the one this version of the code was written for."""

    code = "schema_out_of_date"


class BankUnavailable(BankError):
    """The bank cannot be reached or did not answer within its timeout: worth retrying, not a server bug."""

    status_code = 503
    code = "bank_unavailable"

    def __init__(self, message: str, *, retry_after: int = 2) -> None:
        super().__init__(message)
        self.retry_after = retry_after

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class EmbeddingError(FewshotError):
    code = "embedding_error"


class IndexStoreError(FewshotError):
    code = "index_error"


class ManifestMismatch(IndexStoreError):
    code = "index_manifest_mismatch"


class IndexStorageFull(IndexStoreError):
    """Writing an index version failed for lack of space or permission; the served version stays."""

    status_code = 507
    code = "index_storage_unavailable"


# Codes the HTTP layer answers without an exception class of this tree (api/errors.py, api/middleware/).
HTTP_LAYER_CODES = ("invalid_json", "unsupported_media_type", "method_not_allowed", "http_error", "overloaded")


def error_codes() -> list[str]:
    """Every `code` an error body may carry: each class's in the tree (as imported) and the HTTP layer's."""
    codes: set[str] = set(HTTP_LAYER_CODES)
    pending: list[type[FewshotError]] = [FewshotError]
    while pending:
        kind = pending.pop()
        codes.add(kind.code)
        pending.extend(kind.__subclasses__())
    return sorted(codes)
