"""FewshotExampleSelector inside LangChain's few-shot templates, against a real `fewshot serve`."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from langchain_core.prompts import (
    ChatPromptTemplate,
    FewShotChatMessagePromptTemplate,
    FewShotPromptTemplate,
    PromptTemplate,
)

from fewshot_service.client import FewshotClient
from fewshot_service.client.langchain import FewshotExampleSelector

from ..keyed import KEY_OF, bearer
from .served import fewshot_serve

QUESTION = "A shop sells pens at $3 each. How much do 7 pens cost?"
SETTINGS: dict[str, Any] = {"k": 3, "strategy": "mmr", "diversity": 0.4, "filters": {"difficulty_max": 4}}


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with fewshot_serve(tmp_path_factory.mktemp("langchain")) as base_url:
        yield base_url


def selected(url: str, prompt: str) -> list[dict[str, Any]]:
    """What /v1/select answers for the prompt with the selector's settings, asked without the client."""
    answer = httpx.post(f"{url}/v1/select", json={"prompt": prompt, **SETTINGS}, headers=bearer("reader"))
    examples: list[dict[str, Any]] = answer.json()["examples"]
    assert len(examples) == 3
    return examples


def selector(url: str, **more: Any) -> FewshotExampleSelector:
    return FewshotExampleSelector(base_url=url, api_key=KEY_OF["curator"], **{**SETTINGS, **more})


def test_few_shot_prompt_template_renders_exactly_the_selected_examples(url: str) -> None:
    template = FewShotPromptTemplate(
        example_selector=selector(url, query_key="question", steps_key="steps"),
        example_prompt=PromptTemplate.from_template("Q: {input}\nSteps:\n{steps}\nA: {output}"),
        prefix="Solve the problem.",
        suffix="Q: {question}\nA:",
        input_variables=["question"],
    )
    shots = [
        f"Q: {e['input']}\nSteps:\n{chr(10).join(e['steps'] or [])}\nA: {e['output']}" for e in selected(url, QUESTION)
    ]
    expected = "\n\n".join(["Solve the problem.", *shots, f"Q: {QUESTION}\nA:"])
    assert template.format(question=QUESTION) == expected
    assert asyncio.run(template.aformat(question=QUESTION)) == expected


def test_few_shot_chat_template_puts_the_selected_pairs_between_system_and_user(url: str) -> None:
    few_shot = FewShotChatMessagePromptTemplate(
        example_selector=selector(url),
        example_prompt=ChatPromptTemplate.from_messages([("human", "{input}"), ("ai", "{output}")]),
        input_variables=["input"],
    )
    prompt = ChatPromptTemplate.from_messages([("system", "You solve maths problems."), few_shot, ("human", "{input}")])
    messages = prompt.format_messages(input=QUESTION)
    pairs = [m for e in selected(url, QUESTION) for m in (HumanMessage(e["input"]), AIMessage(e["output"]))]
    assert messages == [SystemMessage("You solve maths problems."), *pairs, HumanMessage(QUESTION)]
    assert asyncio.run(prompt.aformat_messages(input=QUESTION)) == messages


def test_add_example_lands_pending_and_is_not_selected_until_approved(url: str) -> None:
    chosen = selector(url, strategy="knn", diversity=None)
    question = "How many minutes are there in 3 and a half hours?"
    new_id = chosen.add_example({"input": question, "output": "210"})
    with FewshotClient(url, KEY_OF["curator"]) as client:
        stored = client.get(new_id)
        assert (stored.status, stored.input, stored.output) == ("pending", question, "210")
        paraphrase = "How many minutes make up three and a half hours?"  # the exact question is held out as a leak
        assert new_id not in {e["id"] for e in selected(url, paraphrase)}
        client.edit(new_id, {"status": "approved"})
    shown = FewshotExampleSelector(base_url=url, api_key=KEY_OF["reader"], k=3, strategy="knn", id_key="id")
    assert {"input": question, "output": "210", "id": new_id} in shown.select_examples({"input": paraphrase})


def test_the_selector_reports_the_outcome_of_its_last_selection(url: str) -> None:
    chosen = selector(url)
    with pytest.raises(ValueError, match="select examples first"):
        chosen.feedback("success")
    chosen.select_examples({"input": QUESTION})
    first = chosen.last_selection_id
    assert first is not None
    chosen.feedback("failure", note="the answer was wrong")
    stored = httpx.post(f"{url}/v1/feedback", json={"selection_id": first, "outcome": 0.5},
                        headers=bearer("curator"))  # fmt: skip
    assert stored.status_code == 200  # the selection was recorded under the selector's key, and reported on
    asyncio.run(chosen.aselect_examples({"input": QUESTION}))
    assert chosen.last_selection_id not in (None, first)
