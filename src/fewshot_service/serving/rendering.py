"""Turning chosen examples into what goes into an LLM prompt: chat messages or templated text."""

from __future__ import annotations

import string
from collections.abc import Sequence
from typing import Any

from ..errors import InvalidInput
from ..models import ChatMessage, Example

# The most a format=text answer's text may hold (UTF-8 bytes): a prompt's worth of examples, not a download.
MAX_TEXT_BYTES = 2 * 1024 * 1024


def answer_text(example: Example, include_steps: bool) -> str:
    """The assistant side: the worked steps (when asked for and present), then the final answer."""
    if include_steps and example.steps:
        return "\n".join([*example.steps, f"Answer: {example.output}"])
    return example.output


def cost_text(example: Example) -> str:
    """What an example costs in a prompt: its input, steps and answer (what every format can show)."""
    return "\n".join([example.input, *(example.steps or []), example.output])


def as_messages(examples: Sequence[Example], include_steps: bool) -> list[ChatMessage]:
    messages: list[ChatMessage] = []
    for example in examples:
        messages.append(ChatMessage(role="user", content=example.input))
        messages.append(ChatMessage(role="assistant", content=answer_text(example, include_steps)))
    return messages


def as_text(examples: Sequence[Example], template: str, include_steps: bool, limit: int = MAX_TEXT_BYTES) -> str:
    """Each example through the template ({input}, {output}, {steps}), separated by blank lines; refused
    (422, field template) when the text would exceed `limit` UTF-8 bytes, before it is all held."""
    formatter = _BoundedFormatter(limit)
    rendered: list[str] = []
    for example in examples:
        if rendered:
            formatter.spend(2)  # the blank line between examples
        rendered.append(
            formatter.render(
                template,
                input=example.input,
                output=example.output,
                steps="\n".join(example.steps or []) if include_steps else "",
            )
        )
    return "\n\n".join(rendered)


class _BoundedFormatter(string.Formatter):
    """str.format that stops once its output passes a byte budget, counted field by field: a template
    repeating a long field many times over up to 50 examples with steps could otherwise build hundreds of
    megabytes for one answer. At most one field past the budget is ever built."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.left = limit

    def spend(self, size: int) -> None:
        self.left -= size
        if self.left < 0:
            raise InvalidInput(
                f"the text this template renders would exceed {self.limit} bytes; use a shorter template, "
                "a smaller k, or format=examples",
                field="template",
            )

    def render(self, template: str, **fields: str) -> str:
        before = self.left
        text = self.format(template, **fields)  # spends each field as it is formatted
        self.spend(len(text.encode()) - (before - self.left))  # and then the template's own text
        return text

    def format_field(self, value: Any, format_spec: str) -> str:
        text: str = super().format_field(value, format_spec)
        self.spend(len(text.encode()))
        return text
