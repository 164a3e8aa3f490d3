"""Turning chosen examples into what goes into an LLM prompt: chat messages or templated text."""

from __future__ import annotations

from collections.abc import Sequence

from ..models import ChatMessage, Example


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


def as_text(examples: Sequence[Example], template: str, include_steps: bool) -> str:
    """Each example through the template ({input}, {output}, {steps}), separated by blank lines."""
    return "\n\n".join(
        template.format(
            input=example.input,
            output=example.output,
            steps="\n".join(example.steps or []) if include_steps else "",
        )
        for example in examples
    )
