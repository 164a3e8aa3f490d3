"""LangChain: FewshotExampleSelector, a drop-in for SemanticSimilarityExampleSelector and
MaxMarginalRelevanceExampleSelector that takes its examples from the service (langchain-core only).

    selector = FewshotExampleSelector(k=4, strategy="mmr", diversity=0.3, filters={"topics": ["arithmetic"]})
    prompt = FewShotPromptTemplate(example_selector=selector, example_prompt=..., suffix=..., input_variables=[...])
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from langchain_core.example_selectors import BaseExampleSelector

from ..models import Example, PartialSelectedExample, SelectableField, Status
from ._async import AsyncFewshotClient
from ._sync import FewshotClient


class FewshotExampleSelector(BaseExampleSelector):
    """Examples for a prompt from POST /v1/select, as dicts with the keys the example prompt expects.

    The prompt is the input variable `query_key` (default: `input_key` when given, else the only variable).
    Each example becomes {input_key: input, output_key: output}, plus the steps joined by newlines under
    `steps_key` and the example's id under `id_key` when those are set. Other /v1/select fields (order,
    difficulty, topic_preference, ...) go in `options`.
    """

    def __init__(
        self,
        client: FewshotClient | None = None,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        k: int = 4,
        strategy: str | None = None,
        diversity: float | None = None,
        filters: Mapping[str, Any] | None = None,
        max_tokens: int | None = None,
        input_key: str = "input",
        output_key: str = "output",
        steps_key: str | None = None,
        id_key: str | None = None,
        query_key: str | None = None,
        status: Status = "pending",
        options: Mapping[str, Any] | None = None,
        async_client: AsyncFewshotClient | None = None,
    ) -> None:
        self.client = client or FewshotClient(base_url, api_key)
        self.async_client = async_client
        self.request: dict[str, Any] = {"k": k, **(options or {})}
        chosen = {"strategy": strategy, "diversity": diversity, "filters": filters, "max_tokens": max_tokens}
        self.request.update({name: value for name, value in chosen.items() if value is not None})
        self.input_key, self.output_key, self.steps_key, self.id_key = input_key, output_key, steps_key, id_key
        # Only what the prompt shows is asked for: less for the service to send and for us to parse.
        self.fields: list[SelectableField] = ["input", "output", "steps"] if steps_key else ["input", "output"]
        self.fields = self.request.pop("fields", None) or self.fields
        self.query_key = query_key
        self.status = status  # what add_example stores: pending, for a curator to review
        # The last selection this selector made, for feedback(); with concurrent chains, pass the id instead.
        self.last_selection_id: str | None = None

    def select_examples(self, input_variables: dict[str, str]) -> list[dict[str, Any]]:
        answer = self.client.select(self._prompt_of(input_variables), fields=self.fields, **self.request)
        self.last_selection_id = answer.selection_id
        return [self._as_dict(example) for example in answer.examples]

    async def aselect_examples(self, input_variables: dict[str, str]) -> list[dict[str, Any]]:
        prompt = self._prompt_of(input_variables)
        if self.async_client is not None:
            answer = await self.async_client.select(prompt, fields=self.fields, **self.request)
        else:  # an httpx.AsyncClient belongs to one event loop: a short-lived one fits any caller's loop
            async with self.client.async_twin() as client:
                answer = await client.select(prompt, fields=self.fields, **self.request)
        self.last_selection_id = answer.selection_id
        return [self._as_dict(example) for example in answer.examples]

    def feedback(self, outcome: str | float, *, selection_id: str | None = None, note: str | None = None) -> None:
        """Report how the answer built on the last selection (or `selection_id`) turned out: "success",
        "failure" or a score in [0, 1]; the service turns outcomes into each example's measured utility."""
        chosen = selection_id or self.last_selection_id
        if chosen is None:
            raise ValueError("no selection to report on: select examples first, or pass selection_id")
        self.client.feedback(chosen, outcome, note=note)

    def add_example(self, example: dict[str, str]) -> str:
        """Add through the curation API (pending by default: selectable once a curator approves it); its id."""
        return self.client.add(self._as_create(example)).id

    async def aadd_example(self, example: dict[str, str]) -> str:
        if self.async_client is None:
            return await super().aadd_example(example)  # type: ignore[no-any-return]
        return (await self.async_client.add(self._as_create(example))).id

    def _prompt_of(self, input_variables: Mapping[str, Any]) -> str:
        key = self.query_key or (self.input_key if self.input_key in input_variables else None)
        if key is None and len(input_variables) == 1:
            key = next(iter(input_variables))
        if key is None or key not in input_variables:
            raise KeyError(f"set query_key to the input variable holding the prompt (given: {sorted(input_variables)})")
        return str(input_variables[key])

    def _as_dict(self, example: PartialSelectedExample | Example) -> dict[str, Any]:
        shown: dict[str, Any] = {self.input_key: example.input or "", self.output_key: example.output or ""}
        if self.steps_key is not None:
            shown[self.steps_key] = "\n".join(example.steps or [])
        if self.id_key is not None:
            shown[self.id_key] = example.id
        return shown

    def _as_create(self, example: Mapping[str, Any]) -> dict[str, Any]:
        record: dict[str, Any] = {
            "input": example[self.input_key],
            "output": example.get(self.output_key, ""),
            "status": self.status,
        }
        steps = example.get(self.steps_key) if self.steps_key else None
        if steps:
            record["steps"] = steps.splitlines() if isinstance(steps, str) else list(steps)
        return record
