"""A small client for the OpenAI-compatible chat completions API (OpenAI, vLLM, Ollama, llama.cpp's server).

One call is one POST {base_url}/chat/completions asking for a JSON object. Transient failures (429,
408, 5xx, timeouts, dropped connections) are retried with exponential backoff and jitter, honouring the
server's Retry-After; anything else fails at once, since repeating a refused request cannot help.
The client is thread-safe (one httpx.Client shared by the expander's worker threads).
"""

from __future__ import annotations

import json
import logging
import random
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import Any

import httpx

from ..errors import ConfigurationError, LLMError, LLMNotConfigured
from ..settings import Settings

log = logging.getLogger(__name__)

RETRYABLE_STATUS = frozenset({408, 429})  # and every 5xx
Message = dict[str, str]


class MalformedReply(LLMError):
    """A 200 whose body is not a chat completion (no choices[0].message.content): the call is skipped."""

    code = "llm_malformed_reply"

    def __init__(self, message: str, usage: TokenUsage) -> None:
        super().__init__(message)
        self.usage = usage


@dataclass
class TokenUsage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0

    def __iadd__(self, other: TokenUsage) -> TokenUsage:
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens
        self.total_tokens += other.total_tokens
        return self

    @classmethod
    def from_body(cls, body: Any) -> TokenUsage:
        """The `usage` member of a response, tolerating servers that omit it or parts of it."""
        usage = body.get("usage") if isinstance(body, dict) else None
        if not isinstance(usage, dict):
            return cls()

        def number(name: str) -> int:
            value = usage.get(name)
            return int(value) if isinstance(value, int | float) and value >= 0 else 0

        prompt, completion = number("prompt_tokens"), number("completion_tokens")
        return cls(prompt, completion, number("total_tokens") or prompt + completion)


@dataclass(frozen=True)
class ChatReply:
    content: str
    usage: TokenUsage
    retries: int
    finish_reason: str | None


class ChatClient:
    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        *,
        timeout: float = 60.0,
        max_retries: int = 3,
        backoff: float = 1.0,
        max_backoff: float = 30.0,
        max_tokens: int | None = None,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ConfigurationError(f"FEWSHOT_LLM_BASE_URL must be an http(s) URL, not {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.max_retries = max_retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.max_tokens = max_tokens
        # Set by cancel(): waits between retries end at once and no new attempt starts.
        self._cancelled = threading.Event()
        self._random = random.Random()
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        # httpx joins a relative path onto the base URL's path, so ".../v1" + "chat/completions" works.
        self._http = httpx.Client(base_url=self.base_url + "/", timeout=timeout, headers=headers)

    @classmethod
    def from_settings(cls, settings: Settings) -> ChatClient:
        base_url, model = endpoint(settings)
        return cls(
            base_url,
            model,
            settings.llm_api_key,
            timeout=settings.llm_timeout_seconds,
            max_retries=settings.llm_max_retries,
            backoff=settings.llm_backoff_seconds,
            max_backoff=settings.llm_max_backoff_seconds,
            max_tokens=settings.llm_max_tokens,
        )

    def complete(self, messages: Sequence[Message], temperature: float) -> ChatReply:
        """The assistant's answer to messages, as a JSON-object completion; LLMError when it cannot be had."""
        payload: dict[str, Any] = {
            "model": self.model,
            "messages": list(messages),
            "temperature": temperature,
            "response_format": {"type": "json_object"},
        }
        if self.max_tokens is not None:
            payload["max_tokens"] = self.max_tokens
        attempt = 0
        while True:
            if self._cancelled.is_set():
                raise LLMError("the LLM call was cancelled", retries=attempt)
            problem, wait = self._attempt(payload)
            if isinstance(problem, httpx.Response):
                return self._reply(problem, attempt)
            if attempt >= self.max_retries:
                raise LLMError(f"the LLM call failed after {attempt + 1} attempt(s): {problem}", retries=attempt)
            delay = wait if wait is not None else self._backoff(attempt)
            log.info("LLM call: %s; retry %d/%d in %.2fs", problem, attempt + 1, self.max_retries, delay)
            self._cancelled.wait(delay)
            attempt += 1

    def _attempt(self, payload: dict[str, Any]) -> tuple[httpx.Response | str, float | None]:
        """(the response, None) on success; (why, server-requested wait or None) for a retryable failure."""
        try:
            response = self._http.post("chat/completions", json=payload)
        except httpx.TimeoutException as exc:
            return f"timed out ({type(exc).__name__})", None
        except httpx.TransportError as exc:  # refused or dropped connection: the server may be restarting
            return f"connection failed ({exc})", None
        if response.is_success:
            return response, None
        if response.status_code in RETRYABLE_STATUS or response.status_code >= 500:
            return f"HTTP {response.status_code}", self._retry_after(response)
        raise LLMError(
            f"the LLM endpoint refused the call: HTTP {response.status_code} {_snippet(response.text)}".rstrip()
        )

    def _reply(self, response: httpx.Response, retries: int) -> ChatReply:
        try:
            body = response.json()
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise MalformedReply(f"the reply is not JSON: {_snippet(response.text)}", TokenUsage()) from exc
        usage = TokenUsage.from_body(body)
        try:
            choice = body["choices"][0]
            content = choice["message"]["content"]
        except (KeyError, IndexError, TypeError) as exc:
            raise MalformedReply(
                f"the reply has no choices[0].message.content: {_snippet(response.text)}", usage
            ) from exc
        if not isinstance(content, str):
            raise MalformedReply("choices[0].message.content is not a string", usage)
        finish = choice.get("finish_reason") if isinstance(choice, dict) else None
        return ChatReply(content, usage, retries, finish if isinstance(finish, str) else None)

    def _backoff(self, attempt: int) -> float:
        # "Equal jitter": at least half the exponential delay, so retries from many workers spread out
        # without any of them retrying at once.
        ceiling = min(self.max_backoff, self.backoff * 2.0**attempt)
        return ceiling / 2 + self._random.uniform(0, ceiling / 2)

    def _retry_after(self, response: httpx.Response) -> float | None:
        """The wait the server asked for (OpenAI's retry-after-ms, or Retry-After seconds or date), capped."""
        wait: float | None = None
        millis = response.headers.get("retry-after-ms")
        seconds = response.headers.get("retry-after")
        try:
            if millis is not None:
                wait = float(millis) / 1000
            elif seconds is not None:
                wait = float(seconds)
        except ValueError:
            try:
                wait = (parsedate_to_datetime(seconds or "") - datetime.now(UTC)).total_seconds()
            except (TypeError, ValueError):
                wait = None
        return None if wait is None else min(max(wait, 0.0), self.max_backoff)

    def cancel(self) -> None:
        """Stop retrying: calls waiting to retry fail at once (a request on the wire runs to its timeout)."""
        self._cancelled.set()

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ChatClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()


def endpoint(settings: Settings) -> tuple[str, str]:
    """(base URL, model) of the configured LLM; LLMNotConfigured (503) when either is missing."""
    if settings.llm_base_url and settings.llm_model:
        return settings.llm_base_url, settings.llm_model
    named = (("FEWSHOT_LLM_BASE_URL", settings.llm_base_url), ("FEWSHOT_LLM_MODEL", settings.llm_model))
    missing = " and ".join(name for name, value in named if not value)
    raise LLMNotConfigured(
        f"LLM expansion needs an OpenAI-compatible endpoint: set {missing} (e.g. http://localhost:11434/v1 for Ollama)"
    )


def _snippet(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "…"
