"""Reading the model's answer: the JSON it was asked for, checked field by field.

Models are asked for {"examples": [{"input", "output", "steps"}]}, and small local ones get the shape a
little wrong often enough that the reader accepts the common near misses (a code fence around the JSON, a
bare object or list, a number as the answer, one string as the steps) and rejects the rest with a reason.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from ..errors import LLMError
from ..models import MAX_STEPS

_FENCE = re.compile(r"^\s*```(?:json)?\s*(.*?)\s*```\s*$", re.DOTALL | re.IGNORECASE)


class MalformedAnswer(LLMError):
    """The answer as a whole cannot be read: it is skipped and counted, and the run goes on."""


@dataclass(frozen=True)
class Candidate:
    input: str
    output: str
    steps: list[str] | None


@dataclass(frozen=True)
class Bounds:
    min_input_chars: int
    max_input_chars: int
    max_output_chars: int


def parse_answer(content: str) -> list[Any]:
    """The items of the answer (still unchecked); MalformedAnswer when there is no such list."""
    fenced = _FENCE.match(content)
    text = fenced.group(1) if fenced else content
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise MalformedAnswer(f"not JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from exc
    if isinstance(data, dict) and isinstance(data.get("examples"), list):
        return list(data["examples"])
    if isinstance(data, dict) and "input" in data:
        return [data]
    if isinstance(data, list):
        return data
    raise MalformedAnswer("JSON without an 'examples' list")


def check_item(item: Any, bounds: Bounds) -> Candidate | str:
    """The item as a Candidate, or the reason it is dropped (a key of the run's `dropped` counts)."""
    if not isinstance(item, dict):
        return "invalid_fields"
    text, answer, steps = item.get("input"), item.get("output"), item.get("steps")
    if _blank(text) or _blank(answer):
        return "missing_fields"
    if not isinstance(text, str) or not isinstance(answer, str | int | float) or isinstance(answer, bool):
        return "invalid_fields"
    answer = str(answer)
    if isinstance(steps, str):
        steps = [steps]
    if steps is not None:
        if not isinstance(steps, list) or not all(isinstance(s, str | int | float) for s in steps):
            return "invalid_fields"
        steps = [str(s).strip() for s in steps if str(s).strip()]
    if any("\x00" in part for part in (text, answer, *(steps or []))):
        # Refused in every body and import line (PostgreSQL cannot store it); a model's answer is no exception.
        return "invalid_fields"
    text, answer = text.strip(), answer.strip()
    if len(text) < bounds.min_input_chars:
        return "too_short"
    too_long = (
        len(text) > bounds.max_input_chars
        or len(answer) > bounds.max_output_chars
        or (steps is not None and (len(steps) > MAX_STEPS or any(len(s) > bounds.max_output_chars for s in steps)))
    )
    if too_long:
        return "too_long"
    return Candidate(text, answer, steps)


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())
