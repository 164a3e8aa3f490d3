"""The generation prompt: a versioned template file rendered with the seed examples of one cell.

A template is a JSON file with its own `id` and `version` (both recorded in every generated example's
provenance, so a change of wording can be traced in the bank) and a `system` and `user` message in
string.Template syntax with the placeholders $topic, $difficulty, $count and $seeds.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from string import Template

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ..errors import ConfigurationError
from ..models import Example
from .client import Message

DEFAULT_TEMPLATE = "expand_v1.json"
PLACEHOLDERS = frozenset({"topic", "difficulty", "count", "seeds"})


class PromptTemplate(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    id: str = Field(min_length=1, max_length=100)
    version: int = Field(ge=1)
    system: str = Field(min_length=1)
    user: str = Field(min_length=1)

    @field_validator("system", "user")
    @classmethod
    def _known_placeholders(cls, text: str) -> str:
        template = Template(text)
        if not template.is_valid():
            raise ValueError("has a '$' that is not a placeholder (write '$$' for a literal '$')")
        unknown = set(template.get_identifiers()) - PLACEHOLDERS
        if unknown:
            raise ValueError(f"unknown placeholder(s) {sorted(unknown)}; known: {sorted(PLACEHOLDERS)}")
        return text

    def messages(self, topic: str, difficulty: int, count: int, seeds: Sequence[Example]) -> list[Message]:
        values = {"topic": topic, "difficulty": str(difficulty), "count": str(count), "seeds": render_seeds(seeds)}
        return [
            {"role": "system", "content": Template(self.system).substitute(values)},
            {"role": "user", "content": Template(self.user).substitute(values)},
        ]


def render_seeds(seeds: Sequence[Example]) -> str:
    """Each seed in the very JSON shape the model is asked to answer in, so it can copy the form."""
    blocks = []
    for n, seed in enumerate(seeds, start=1):
        shown = {"input": seed.input, "output": seed.output, "steps": seed.steps or []}
        blocks.append(f"Example {n}:\n{json.dumps(shown, ensure_ascii=False)}")
    return "\n\n".join(blocks)


def load_template(path: Path | None = None) -> PromptTemplate:
    """The template at path, or the packaged default; ConfigurationError when it cannot be used."""
    try:
        if path is None:
            text = resources.files(__package__).joinpath("templates", DEFAULT_TEMPLATE).read_text(encoding="utf-8")
        else:
            text = path.read_text(encoding="utf-8")
        return PromptTemplate.model_validate_json(text)
    except OSError as exc:
        raise ConfigurationError(f"cannot read the expansion template {path}: {exc}") from exc
    except ValidationError as exc:
        problem = exc.errors()[0]
        where = ".".join(str(p) for p in problem["loc"]) or "file"
        raise ConfigurationError(
            f"the expansion template {path or DEFAULT_TEMPLATE} is invalid: {where}: {problem['msg']}"
        ) from exc
