"""Public data sets turned into a bank of examples and a pool of labelled queries, deterministically.

| data set | bank | queries | topic | label | difficulty |
| --- | --- | --- | --- | --- | --- |
| mmlu | mmlu_test.jsonl, all but every 10th line | every 10th line (lines 10, 20, ...) | subject | subject | - |
| banking77 | train.csv | test.csv | intent | intent | - |
| arc | ARC-{Easy,Challenge}-Train | ARC-{Easy,Challenge}-Test | - | Easy / Challenge | Easy 2, Challenge 4 |
| gsm8k | train.jsonl | test.jsonl | - | - | - |

ARC's Easy/Challenge split is its only difficulty signal; it is mapped onto the bank's 1-5 scale as
Easy = 2 and Challenge = 4, two steps apart around the middle, so a wrong-set pick costs a gap of 2.
Inputs are question texts only (ARC: the stem, with the choices appended when ``arc_choices``); the
answer goes into ``output``. Every bank record gets a stable ``external_id``, so importing twice is a
no-op, and its label in ``metadata["label"]``. ``sample_queries`` draws a fixed number of queries from
the pool with a fixed seed (optionally skipping some, e.g. those with a near copy in the bank).
"""

from __future__ import annotations

import csv
import json
import random
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import InvalidInput
from ..models import MAX_INPUT_CHARS, ExampleImport
from .metrics import Labels

DATASETS = ("mmlu", "banking77", "arc", "gsm8k")
ARC_DIFFICULTY = {"Easy": 2, "Challenge": 4}
MMLU_QUERY_EVERY = 10
DEFAULT_QUERIES = 300
DEFAULT_SEED = 0


class DatasetError(InvalidInput):
    """A data set folder is missing a file or holds something unexpected."""


@dataclass(frozen=True)
class EvalQuery:
    id: str
    text: str
    labels: Labels


@dataclass(frozen=True)
class Dataset:
    name: str
    records: list[ExampleImport]  # the bank
    queries: list[EvalQuery]  # the whole query pool, in file order
    has_topic: bool
    has_label: bool
    has_difficulty: bool
    description: str

    @property
    def labelled(self) -> bool:
        return self.has_label


def _clip(text: str) -> str:
    return text if len(text) <= MAX_INPUT_CHARS else text[:MAX_INPUT_CHARS]


def _record(
    external_id: str,
    text: str,
    output: str,
    labels: Labels,
    metadata: dict[str, Any],
    steps: list[str] | None = None,
) -> ExampleImport:
    meta = dict(metadata)
    if labels.label is not None:
        meta["label"] = labels.label
    return ExampleImport(
        external_id=external_id,
        input=_clip(text),
        output=_clip(output),
        steps=steps,
        topic=labels.topic,
        difficulty=labels.difficulty,
        source="imported",
        status="approved",
        metadata=meta,
    )


def _read_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(1-based line number, object) for every non-blank line."""
    if not path.is_file():
        raise DatasetError(f"missing file {path}")
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if line.strip():
                yield number, json.loads(line)


def _need(row: dict[str, Any], *keys: str, where: str) -> None:
    missing = [key for key in keys if key not in row]
    if missing:
        raise DatasetError(f"{where}: missing field(s) {', '.join(missing)}")


# -- MMLU ---------------------------------------------------------------------------------------------
def load_mmlu(folder: Path) -> Dataset:
    records: list[ExampleImport] = []
    queries: list[EvalQuery] = []
    path = folder / "mmlu_test.jsonl"
    for number, row in _read_jsonl(path):
        _need(row, "subject", "question", "choices", "answer", where=f"{path.name} line {number}")
        labels = Labels(topic=row["subject"], label=row["subject"])
        choices = row["choices"]
        answer = row["answer"]
        output = choices[answer] if isinstance(answer, int) and 0 <= answer < len(choices) else str(answer)
        key = str(row.get("id") or f"line-{number}")
        if number % MMLU_QUERY_EVERY == 0:
            queries.append(EvalQuery(f"mmlu-test-{key}", _clip(row["question"]), labels))
        else:
            meta = {"dataset": "mmlu", "split": "test", "line": number}
            records.append(_record(f"mmlu-test-{key}", row["question"], output, labels, meta))
    return Dataset(
        "mmlu",
        records,
        queries,
        has_topic=True,
        has_label=True,
        has_difficulty=False,
        description=f"MMLU test split: every {MMLU_QUERY_EVERY}th line a query, the rest the bank; topic = label = "
        "subject",
    )


# -- BANKING77 ----------------------------------------------------------------------------------------
def _read_banking_csv(path: Path, categories: set[str] | None) -> list[tuple[int, str, str]]:
    if not path.is_file():
        raise DatasetError(f"missing file {path}")
    rows = []
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames is None or not {"text", "category"} <= set(reader.fieldnames):
            raise DatasetError(f"{path.name}: expected the header text,category")
        for number, row in enumerate(reader, start=2):  # line 1 is the header
            text, category = (row["text"] or "").strip(), (row["category"] or "").strip()
            if not text:
                continue
            if categories is not None and category not in categories:
                raise DatasetError(f"{path.name} line {number}: unknown category {category!r}")
            rows.append((number, text, category))
    return rows


def load_banking77(folder: Path) -> Dataset:
    listed = folder / "categories.json"
    categories = set(json.loads(listed.read_text(encoding="utf-8"))) if listed.is_file() else None
    records = [
        _record(
            f"banking77-train-{number:05d}",
            text,
            category,
            Labels(topic=category, label=category),
            {"dataset": "banking77", "split": "train", "line": number},
        )
        for number, text, category in _read_banking_csv(folder / "train.csv", categories)
    ]
    queries = [
        EvalQuery(f"banking77-test-{number:05d}", text, Labels(topic=category, label=category))
        for number, text, category in _read_banking_csv(folder / "test.csv", categories)
    ]
    return Dataset(
        "banking77",
        records,
        queries,
        has_topic=True,
        has_label=True,
        has_difficulty=False,
        description="BANKING77: train.csv the bank, test.csv the queries; topic = label = intent",
    )


# -- ARC ----------------------------------------------------------------------------------------------
def _arc_text(question: dict[str, Any], with_choices: bool) -> str:
    stem = str(question["stem"]).strip()
    if not with_choices:
        return stem
    choices = " ".join(f"({c['label']}) {c['text']}" for c in question.get("choices", []))
    return f"{stem} {choices}".strip()


def _arc_answer(row: dict[str, Any]) -> str:
    key = str(row.get("answerKey", ""))
    for choice in row["question"].get("choices", []):
        if str(choice.get("label")) == key:
            return f"{key}. {choice.get('text', '')}"
    return key


def load_arc(folder: Path, *, with_choices: bool = False) -> Dataset:
    records: list[ExampleImport] = []
    queries: list[EvalQuery] = []
    for level, difficulty in ARC_DIFFICULTY.items():
        labels = Labels(topic=None, label=level, difficulty=difficulty)
        for split in ("Train", "Test"):
            path = folder / f"ARC-{level}-{split}.jsonl"
            for number, row in _read_jsonl(path):
                _need(row, "id", "question", where=f"{path.name} line {number}")
                text = _arc_text(row["question"], with_choices)
                key = f"arc-{level.lower()}-{split.lower()}-{row['id']}"
                if split == "Test":
                    queries.append(EvalQuery(key, _clip(text), labels))
                else:
                    meta = {"dataset": "arc", "split": f"{level}-{split}", "line": number}
                    records.append(_record(key, text, _arc_answer(row), labels, meta))
    return Dataset(
        "arc",
        records,
        queries,
        has_topic=False,
        has_label=True,
        has_difficulty=True,
        description="ARC: Easy+Challenge Train the bank, Easy+Challenge Test the queries; label = Easy/Challenge, "
        f"difficulty Easy={ARC_DIFFICULTY['Easy']}, Challenge={ARC_DIFFICULTY['Challenge']}; inputs "
        + ("stem and choices" if with_choices else "the question stem"),
    )


# -- GSM8K --------------------------------------------------------------------------------------------
_CALCULATION = re.compile(r"<<[^>]*>>")


def _gsm8k_solution(answer: str) -> tuple[str, list[str]]:
    """(final answer, solution steps without the <<calculator>> annotations)."""
    body, _, final = answer.rpartition("####")
    steps = [_CALCULATION.sub("", line).strip() for line in body.splitlines() if line.strip()]
    return final.strip(), [_clip(step) for step in steps][:64]


def load_gsm8k(folder: Path) -> Dataset:
    records = []
    path = folder / "train.jsonl"
    for number, row in _read_jsonl(path):
        _need(row, "question", "answer", where=f"{path.name} line {number}")
        final, steps = _gsm8k_solution(row["answer"])
        meta = {"dataset": "gsm8k", "split": "train", "line": number}
        records.append(_record(f"gsm8k-train-{number:05d}", row["question"], final, Labels(), meta, steps or None))
    queries = [
        EvalQuery(f"gsm8k-test-{number:05d}", _clip(row["question"]), Labels())
        for number, row in _read_jsonl(folder / "test.jsonl")
    ]
    return Dataset(
        "gsm8k",
        records,
        queries,
        has_topic=False,
        has_label=False,
        has_difficulty=False,
        description="GSM8K: train.jsonl the bank, test.jsonl the queries; unlabelled (relevance and diversity only)",
    )


# -- entry points -------------------------------------------------------------------------------------
def dataset_folder(name: str, path: Path) -> Path:
    """PATH may be the data set's own folder or the folder that holds it (e.g. ../shared/datasets)."""
    nested = path / name
    return nested if nested.is_dir() else path


def load_dataset(name: str, path: Path, *, arc_choices: bool = False) -> Dataset:
    if name not in DATASETS:
        raise DatasetError(f"unknown data set {name!r}; choose one of {', '.join(DATASETS)}")
    folder = dataset_folder(name, path)
    if not folder.is_dir():
        raise DatasetError(f"no such folder: {folder}")
    if name == "mmlu":
        dataset = load_mmlu(folder)
    elif name == "banking77":
        dataset = load_banking77(folder)
    elif name == "arc":
        dataset = load_arc(folder, with_choices=arc_choices)
    else:
        dataset = load_gsm8k(folder)
    if not dataset.records or not dataset.queries:
        raise DatasetError(f"{name} in {folder}: {len(dataset.records)} bank records, {len(dataset.queries)} queries")
    return dataset


def sample_queries(
    queries: Sequence[EvalQuery],
    n: int,
    seed: int = DEFAULT_SEED,
    keep: Callable[[list[EvalQuery]], list[bool]] | None = None,
) -> list[EvalQuery]:
    """n queries, returned in pool order: the first n of a permutation of the pool fixed by the seed,
    skipping those keep() rejects (it is asked about a block of queries at a time, in permutation order)."""
    order = random.Random(seed).sample(range(len(queries)), len(queries))
    if keep is None:
        chosen = order[:n]
    else:
        chosen = []
        block = n + n // 4 + 16
        for start in range(0, len(order), block):
            part = order[start : start + block]
            chosen += [i for i, ok in zip(part, keep([queries[i] for i in part]), strict=True) if ok]
            if len(chosen) >= n:
                break
        chosen = chosen[:n]
    return [queries[i] for i in sorted(chosen)]
