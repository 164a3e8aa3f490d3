"""DSPy: demos from the curated bank per input (like KNNFewShot, with the service's strategies and filters),
and bootstrapped demos pushed back to the bank as pending `llm` examples for curators to review.

    program = FewshotKNN(k=4, strategy="mmr").compile(dspy.ChainOfThought("question -> answer"))
    program(question="...")  # each predictor's demos come from /v1/select for this question
"""

from __future__ import annotations

import types
from collections.abc import Iterable, Mapping
from typing import Any

import dspy
from dspy.teleprompt.teleprompt import Teleprompter

from ..curation.types import CreateResult
from ..models import SelectedExample
from ._sync import FewshotClient

MAX_BATCH = 500  # the curation API's batch limit


class FewshotDemos:
    """Per input, the demos /v1/select picks, shaped for a DSPy signature.

    The prompt is the signature's `input_field` (default its first input field); an example's input fills that
    field, its output `output_field` (default the last output field) and its steps, joined by newlines, the
    signature's `steps_field` (default "reasoning", which ChainOfThought adds) when the signature has it.
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
        options: Mapping[str, Any] | None = None,
        input_field: str | None = None,
        output_field: str | None = None,
        steps_field: str = "reasoning",
    ) -> None:
        self.client = client or FewshotClient(base_url, api_key)
        chosen = {"strategy": strategy, "diversity": diversity, "filters": filters, "max_tokens": max_tokens}
        self.request = {"k": k, **(options or {}), **{name: v for name, v in chosen.items() if v is not None}}
        self.input_field, self.output_field, self.steps_field = input_field, output_field, steps_field

    def for_input(self, inputs: Mapping[str, Any], signature: type[dspy.Signature]) -> list[dspy.Example]:
        source, target, steps = signature_fields(signature, self.input_field, self.output_field, self.steps_field)
        answer = self.client.select(str(inputs[source]), **self.request)
        return [_demo(example, source, target, steps) for example in answer.examples]


def signature_fields(
    signature: type[dspy.Signature], input_field: str | None, output_field: str | None, steps_field: str
) -> tuple[str, str, str | None]:
    """The signature's fields an example's input, output and steps go in (see FewshotDemos)."""
    inputs, outputs = list(signature.input_fields), list(signature.output_fields)
    source: str = input_field if input_field and input_field in inputs else inputs[0]
    target: str = output_field if output_field and output_field in outputs else outputs[-1]
    return source, target, steps_field if steps_field in outputs else None


def _demo(example: SelectedExample, source: str, target: str, steps: str | None) -> dspy.Example:
    fields = {source: example.input, target: example.output}
    if steps is not None and example.steps:
        fields[steps] = "\n".join(example.steps)
    return dspy.Example(**fields).with_inputs(source)


class FewshotKNN(Teleprompter):  # type: ignore[misc]  # DSPy's classes are untyped here
    """A teleprompter whose compiled program sets every predictor's demos from the service on each call."""

    def __init__(self, demos: FewshotDemos | None = None, **demo_settings: Any) -> None:
        super().__init__()
        self.demos = demos or FewshotDemos(**demo_settings)

    def compile(self, student: dspy.Module, *, trainset: list[dspy.Example] | None = None, **_: Any) -> dspy.Module:
        """`trainset` is not needed: the demos live in the bank."""
        compiled = student.reset_copy()
        demos = self.demos

        def forward(_: dspy.Module, **inputs: Any) -> Any:
            program = student.reset_copy()  # a copy per call: concurrent calls each keep their own demos
            for _name, predictor in program.named_predictors():
                predictor.demos = demos.for_input(inputs, predictor.signature)
            return program(**inputs)

        compiled.forward = types.MethodType(forward, compiled)
        return compiled


def push_demos(
    source: dspy.Module | Iterable[dspy.Example | Mapping[str, Any]],
    client: FewshotClient,
    *,
    input_field: str | None = None,
    output_field: str | None = None,
    steps_field: str = "reasoning",
    topic: str | None = None,
    tags: Iterable[str] = ("dspy",),
) -> CreateResult:
    """Add demos DSPy bootstrapped (a compiled program's, or given) as pending `llm` examples for review;
    ones already in the bank are skipped. A program's demos are read through its predictors' signatures (as
    FewshotDemos writes them); for plain demos the input field defaults to the demo's first input and the
    output field to its first other field."""
    records: list[dict[str, Any]] = []
    if isinstance(source, dspy.Module):
        for _name, predictor in source.named_predictors():
            fields = signature_fields(predictor.signature, input_field, output_field, steps_field)
            records += [_record(_plain(demo), *fields, topic, list(tags)) for demo in predictor.demos]
    else:
        for demo in source:
            plain = _plain(demo)
            declared = list(demo.inputs().keys()) if isinstance(demo, dspy.Example) and demo._input_keys else []
            given = input_field or (declared or list(plain))[0]
            target = output_field or next(name for name in plain if name not in (given, steps_field, *declared))
            records.append(_record(plain, given, target, steps_field, topic, list(tags)))
    result = CreateResult(examples=[])
    for start in range(0, len(records), MAX_BATCH):
        part = client.add_many(records[start : start + MAX_BATCH], on_duplicate="skip")
        result.examples += part.examples
        result.duplicates += part.duplicates
        result.skipped += [start + position for position in part.skipped]
    return result


def _plain(demo: dspy.Example | Mapping[str, Any]) -> dict[str, Any]:
    """A demo's fields without DSPy's bookkeeping (the `augmented` flag of bootstrapped traces, dspy_* ids)."""
    fields = dict(demo.toDict() if isinstance(demo, dspy.Example) else demo)
    return {name: value for name, value in fields.items() if name != "augmented" and not name.startswith("dspy_")}


def _record(
    fields: Mapping[str, Any], source: str, target: str, steps: str | None, topic: str | None, tags: list[str]
) -> dict[str, Any]:
    record: dict[str, Any] = {
        "input": str(fields[source]),
        "output": str(fields.get(target, "")),
        "source": "llm",
        "status": "pending",
        "tags": tags,
        "metadata": {"origin": "dspy"},
    }
    if steps is not None and fields.get(steps):
        record["steps"] = str(fields[steps]).splitlines()
    if topic is not None:
        record["topic"] = topic
    return record
