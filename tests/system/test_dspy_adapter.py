"""DSPy programs taking their demos from a real `fewshot serve` per input, and pushing bootstrapped demos back;
the LM is a local OpenAI-compatible stub, which records the prompts (and so the demos) the program sent."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # litellm would otherwise fetch it from the web
dspy = pytest.importorskip("dspy", reason="DSPy is not installed (pip install 'fewshot-service[dspy]')")

from fewshot_service.client import FewshotClient  # noqa: E402
from fewshot_service.client.dspy import FewshotKNN, push_demos  # noqa: E402

from ..keyed import KEY_OF, bearer  # noqa: E402
from .llm_stub import StubLLM, stub_llm  # noqa: E402
from .served import fewshot_serve  # noqa: E402

QUESTION = "A recipe needs 250 g of flour per cake. How much flour do 6 cakes need?"
REPLY = "[[ ## reasoning ## ]]\n250 x 6 = 1500\n\n[[ ## answer ## ]]\n1500 g\n\n[[ ## completed ## ]]"


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with fewshot_serve(tmp_path_factory.mktemp("dspy")) as base_url:
        yield base_url


@pytest.fixture
def llm() -> Iterator[StubLLM]:
    with stub_llm(REPLY) as stub:
        lm = dspy.LM("openai/stub-model", api_base=stub.base_url, api_key="not-used", cache=False)
        with dspy.context(lm=lm, adapter=dspy.ChatAdapter()):
            yield stub


def selected(url: str, prompt: str, **settings: Any) -> list[dict[str, Any]]:
    answer = httpx.post(f"{url}/v1/select", json={"prompt": prompt, **settings}, headers=bearer("reader"))
    examples: list[dict[str, Any]] = answer.json()["examples"]
    return examples


def test_each_call_gets_the_demos_select_returns_for_its_input(url: str, llm: StubLLM) -> None:
    settings: dict[str, Any] = {"k": 3, "strategy": "mmr", "diversity": 0.3}
    with FewshotClient(url, KEY_OF["reader"]) as client:
        program = FewshotKNN(client=client, **settings).compile(dspy.ChainOfThought("question -> answer"))
        other = "Which is larger, 3/4 or 5/8?"
        for question in (QUESTION, other):
            assert program(question=question).answer == "1500 g"
    for request, question in zip(llm.requests, (QUESTION, other), strict=True):
        turns = [m["content"] for m in request["messages"] if m["role"] in ("user", "assistant")]
        expected = selected(url, question, **settings)
        assert len(turns) == 2 * len(expected) + 1  # a user/assistant pair per demo, then the question
        for (asked, answered), example in zip(zip(turns[0:-1:2], turns[1::2], strict=True), expected, strict=True):
            assert f"[[ ## question ## ]]\n{example['input']}" in asked
            assert f"[[ ## answer ## ]]\n{example['output']}" in answered
            assert f"[[ ## reasoning ## ]]\n{chr(10).join(example['steps'])}" in answered
        assert question in turns[-1]


def test_bootstrapped_demos_are_pushed_as_pending_llm_examples(url: str, llm: StubLLM) -> None:
    student = dspy.ChainOfThought("question -> answer")
    trainset = [dspy.Example(question=QUESTION, answer="1500 g").with_inputs("question")]
    compiled = dspy.BootstrapFewShot(metric=lambda gold, pred, trace=None: gold.answer == pred.answer).compile(
        student, trainset=trainset
    )
    assert compiled.predictors()[0].demos  # the stub's answer matched, so DSPy kept the trace as a demo
    with FewshotClient(url, KEY_OF["curator"]) as client:
        pushed = push_demos(compiled, client, topic="arithmetic")
        assert len(pushed.examples) == 1
        stored = client.get(pushed.examples[0].id)
        assert (stored.input, stored.output, stored.steps) == (QUESTION, "1500 g", ["250 x 6 = 1500"])
        assert (stored.status, stored.source, stored.topic) == ("pending", "llm", "arithmetic")
        again = push_demos(compiled, client)
        assert again.examples == [] and again.skipped == [0]  # pushed once, however often the run repeats
