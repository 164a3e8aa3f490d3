"""Selection-quality evaluation (issue 5): metrics against figures worked out by hand, the data-set loaders
on tiny files in each data set's format, the verdict logic, and the runner end to end on a tiny bank.

Nothing here reads ../shared/datasets: every file is written by the test.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from fewshot_service.cli.main import app
from fewshot_service.embedding import SentenceTransformerEmbedder
from fewshot_service.evaluation import (
    Dataset,
    DatasetError,
    EvalQuery,
    Evaluation,
    Labels,
    RunSpec,
    aggregate,
    load_dataset,
    sample_queries,
    score_query,
)
from fewshot_service.evaluation.baselines import LC_MMR, LC_SIMILARITY
from fewshot_service.evaluation.metrics import (
    difficulty_gap,
    intra_list_similarity,
    label_hit,
    majority_correct,
    majority_label,
    mean_relevance,
    topic_precision,
)
from fewshot_service.evaluation.report import DatasetResults, table, verdicts
from fewshot_service.evaluation.runner import RunResult
from fewshot_service.models import ExampleImport

from ..helpers import write_jsonl

# -- metrics, by hand ---------------------------------------------------------------------------------
# Query 1 (MMLU-like): topic "algebra", label "A", difficulty 3, embedding q = (1, 0).
# Its four picks, most relevant first, with 2-d unit embeddings:
#   p1 algebra  A     3     (1, 0)
#   p2 geometry B     5     (0, 1)
#   p3 algebra  B     1     (0.6, 0.8)
#   p4 algebra  none  none  (0.8, 0.6)
Q1 = Labels("algebra", "A", 3)
Q1_PICKS = [
    Labels("algebra", "A", 3),
    Labels("geometry", "B", 5),
    Labels("algebra", "B", 1),
    Labels("algebra", None, None),
]
Q1_VECTORS = np.array([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8], [0.8, 0.6]])
Q1_QUERY = np.array([1.0, 0.0])


def test_metrics_of_one_query_match_the_hand_computed_figures() -> None:
    # topic precision: p1, p3, p4 are algebra -> 3/4
    assert topic_precision(Q1, Q1_PICKS) == pytest.approx(0.75)
    # label hit: p1 has label A -> 1
    assert label_hit(Q1, Q1_PICKS) == 1.0
    # majority vote: A once, B twice (p4 has no label, no vote) -> B, not A -> wrong
    assert majority_label(Q1_PICKS) == "B"
    assert majority_correct(Q1, Q1_PICKS) == 0.0
    # difficulty gap: |3-3|, |5-3|, |1-3| (p4 unknown, left out) = 0, 2, 2 -> 4/3
    assert difficulty_gap(Q1, Q1_PICKS) == pytest.approx(4 / 3)
    # intra-list similarity, the six pairs: p1p2 0, p1p3 0.6, p1p4 0.8, p2p3 0.8, p2p4 0.6,
    # p3p4 0.6*0.8 + 0.8*0.6 = 0.96; sum 3.76 / 6 = 0.626666...
    assert intra_list_similarity(Q1_VECTORS) == pytest.approx(3.76 / 6)
    # relevance: q.p = 1, 0, 0.6, 0.8 -> 2.4 / 4 = 0.6
    assert mean_relevance(Q1_QUERY, Q1_VECTORS) == pytest.approx(0.6)
    # scale does not matter: cosine, not the dot product
    assert intra_list_similarity(Q1_VECTORS * 3) == pytest.approx(3.76 / 6)
    assert mean_relevance(Q1_QUERY * 2, Q1_VECTORS) == pytest.approx(0.6)


def test_majority_vote_ties_go_to_the_label_ranked_first() -> None:
    # B, A, A, B: two each; B is held by the first-ranked pick -> B
    assert majority_label([Labels(label=x) for x in "BAAB"]) == "B"
    # none, A, B: one each; A ranks before B -> A
    assert majority_label([Labels(), Labels(label="A"), Labels(label="B")]) == "A"
    # a clear majority beats rank: C, D, D -> D
    assert majority_label([Labels(label=x) for x in "CDD"]) == "D"
    assert majority_label([Labels(), Labels()]) is None


def test_undefined_metrics_and_empty_lists() -> None:
    empty: list[Labels] = []
    assert topic_precision(Q1, empty) is None  # no picks: no share
    assert label_hit(Q1, empty) == 0.0  # nothing hit
    assert majority_correct(Q1, empty) == 0.0  # no vote counts as wrong
    assert difficulty_gap(Q1, empty) is None
    assert intra_list_similarity(np.zeros((1, 2))) is None  # one pick has no pairs
    assert mean_relevance(Q1_QUERY, np.zeros((0, 2))) is None
    unlabelled = Labels()
    assert topic_precision(unlabelled, Q1_PICKS) is None
    assert label_hit(unlabelled, Q1_PICKS) is None
    assert majority_correct(unlabelled, Q1_PICKS) is None
    assert difficulty_gap(unlabelled, Q1_PICKS) is None


def test_aggregation_over_queries_by_hand() -> None:
    q1 = score_query(Q1, Q1_PICKS, Q1_QUERY, Q1_VECTORS, latency_ms=10.0)
    # Query 2 (ARC-like: no topic, label Easy, difficulty 2), q = (1, 0), picks Easy/2 (1, 0) and
    # Challenge/4 (0, 1). Topic precision falls back to the label: 1/2. Label hit 1. Majority: a tie,
    # Easy ranks first -> right (1). Gap: (0 + 2) / 2 = 1. Intra-list: the one pair, 0. Relevance (1 + 0) / 2.
    q2 = score_query(
        Labels(None, "Easy", 2),
        [Labels(None, "Easy", 2), Labels(None, "Challenge", 4)],
        np.array([1.0, 0.0]),
        np.array([[1.0, 0.0], [0.0, 1.0]]),
        latency_ms=30.0,
    )
    assert (q2.topic_precision, q2.label_hit, q2.majority_correct, q2.difficulty_gap) == (0.5, 1.0, 1.0, 1.0)
    assert (q2.intra_list_similarity, q2.relevance) == (0.0, 0.5)
    # Query 3 (GSM8K-like, unlabelled), one pick at cosine 0.8: only relevance is defined.
    q3 = score_query(Labels(), [Labels()], np.array([1.0, 0.0]), np.array([[0.8, 0.6]]), latency_ms=20.0)
    assert q3.topic_precision is None and q3.intra_list_similarity is None and q3.relevance == pytest.approx(0.8)

    summary = aggregate([q1, q2, q3])
    assert summary.queries == 3
    assert summary.short_lists == 2  # q2 and q3 got fewer picks than q1's four
    assert summary.topic_precision == pytest.approx((0.75 + 0.5) / 2)  # 0.625, q3 undefined
    assert summary.label_hit == pytest.approx(1.0)  # (1 + 1) / 2
    assert summary.majority_accuracy == pytest.approx(0.5)  # (0 + 1) / 2
    assert summary.difficulty_gap == pytest.approx((4 / 3 + 1) / 2)  # 7/6
    assert summary.intra_list_similarity == pytest.approx((3.76 / 6 + 0) / 2)  # 0.31333
    assert summary.relevance == pytest.approx((0.6 + 0.5 + 0.8) / 3)  # 0.63333
    assert summary.latency_p50_ms == pytest.approx(20.0)  # median of 10, 30, 20


def test_score_query_refuses_mismatched_vectors() -> None:
    with pytest.raises(ValueError):
        score_query(Q1, Q1_PICKS, Q1_QUERY, Q1_VECTORS[:2], latency_ms=1.0)


# -- the verdict ------------------------------------------------------------------------------------
def _result(strategy: str, diversity: float | None, preference: float | None, **figures: float) -> RunResult:
    from fewshot_service.evaluation.metrics import Summary

    values: dict[str, float | None] = dict.fromkeys(
        ["topic_precision", "label_hit", "majority_accuracy", "difficulty_gap", "intra_list_similarity", "relevance"]
    )
    difficulty = "match" if figures.pop("match", 0) else None
    values.update(figures)
    summary = Summary(queries=10, short_lists=0, latency_p50_ms=1.0, **values)  # type: ignore[arg-type]
    spec = RunSpec(strategy, diversity, preference, difficulty)
    return RunResult(spec, summary, diversity=diversity, topic_preference=preference)


def test_verdict_needs_every_criterion_on_every_labelled_data_set() -> None:
    topics = DatasetResults(
        "topics",
        has_topic=True,
        has_label=True,
        has_difficulty=False,
        results=[
            _result(LC_SIMILARITY, None, None, topic_precision=0.80, label_hit=0.90, intra_list_similarity=0.60),
            _result(LC_MMR, None, None, topic_precision=0.70, label_hit=0.90, intra_list_similarity=0.40),
            # passes: as on-topic as similarity, as diverse as MMR, same label hit
            _result("good", 0.5, 0.5, topic_precision=0.80, label_hit=0.90, intra_list_similarity=0.40),
            # fails topic precision by 0.05 (and, below, the difficulty gap by 0.1)
            _result("mmr", 0.6, 0.0, topic_precision=0.75, label_hit=0.95, intra_list_similarity=0.35),
            # both fail by 0.05 at worst; "twice" also misses intra-list similarity by 0.05, so ranks after
            _result("once", None, 0.0, topic_precision=0.75, label_hit=0.90, intra_list_similarity=0.40),
            _result("twice", None, 0.0, topic_precision=0.75, label_hit=0.90, intra_list_similarity=0.45),
        ],
    )
    difficulty = DatasetResults(
        "levels",
        has_topic=False,
        has_label=True,
        has_difficulty=True,
        results=[
            _result(
                LC_SIMILARITY,
                None,
                None,
                topic_precision=0.6,
                label_hit=0.9,
                difficulty_gap=0.8,
                intra_list_similarity=0.55,
            ),
            _result(LC_MMR, None, None, topic_precision=0.6, label_hit=0.9, intra_list_similarity=0.45),
            # without topics the preference plays no part: the runs are keyed without it
            _result("good", 0.5, None, topic_precision=0.7, label_hit=0.9, intra_list_similarity=0.45),
            _result("good", 0.5, None, difficulty_gap=0.7, match=1),
            _result("mmr", 0.6, None, topic_precision=0.7, label_hit=0.9, intra_list_similarity=0.4),
            _result("mmr", 0.6, None, difficulty_gap=0.9, match=1),
            *[
                run
                for name in ("once", "twice")
                for run in (
                    _result(name, None, None, topic_precision=0.6, label_hit=0.9, intra_list_similarity=0.45),
                    _result(name, None, None, difficulty_gap=0.8, match=1),
                )
            ],
        ],
    )
    unlabelled = DatasetResults("plain", False, False, False, [_result("mmr", 0.6, None, relevance=0.5)])
    found = verdicts([topics, difficulty, unlabelled])
    assert [(v.candidate, v.passed) for v in found] == [
        (("good", 0.5, 0.5), True),
        (("once", None, 0.0), False),  # worst margin -0.05, shortfall -0.05
        (("twice", None, 0.0), False),  # worst margin -0.05, shortfall -0.10
        (("mmr", 0.6, 0.0), False),  # worst margin -0.1
    ]
    assert found[2].shortfall == pytest.approx(-0.10)
    failed = {(c.dataset, c.criterion): round(c.margin, 6) for c in found[3].checks if not c.ok}
    assert failed == {("topics", "topic P ≥ LC sim"): -0.05, ("levels", "gap (match) ≤ LC sim"): -0.1}
    rendered = table(unlabelled.results)
    assert rendered.splitlines()[2].startswith("| mmr d=0.6 | 0.6 | – | – |")  # undefined figures show as –


# -- loaders on tiny files in the data sets' formats ------------------------------------------------
def _write_datasets(root: Path) -> Path:
    subjects = ["astronomy", "virology"]
    write_jsonl(
        root / "mmlu" / "mmlu_test.jsonl",
        [
            {
                "id": f"{subjects[n // 10]}/test/{n % 10}",
                "subject": subjects[n // 10],
                "question": f"Question {n} about {subjects[n // 10]}?",
                "choices": ["w", "x", "y", "z"],
                "answer": n % 4,
                "answer_letter": "ABCD"[n % 4],
            }
            for n in range(20)
        ],
    )
    banking = root / "banking77"
    banking.mkdir(parents=True)
    (banking / "categories.json").write_text(json.dumps(["card_arrival", "lost_or_stolen_card"]))
    for name, rows in {
        "train.csv": [
            ("Where is my card? It has not arrived, still waiting", "card_arrival"),
            ("How long until my new card arrives?", "card_arrival"),
            ("My card was stolen yesterday, what do I do?", "lost_or_stolen_card"),
            ("I lost my card, please block it", "lost_or_stolen_card"),
        ],
        "test.csv": [
            ("When will the card I ordered get here?", "card_arrival"),
            ("Someone stole my card", "lost_or_stolen_card"),
        ],
    }.items():
        with (banking / name).open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["text", "category"])
            writer.writerows(rows)

    def arc_row(key: str, stem: str, answer: str) -> dict[str, object]:
        choices = [{"text": t, "label": label} for t, label in (("heat", "A"), ("light", "B"), ("sound", "C"))]
        return {"id": key, "question": {"stem": stem, "choices": choices}, "answerKey": answer}

    arc = root / "arc"
    write_jsonl(arc / "ARC-Easy-Train.jsonl", [arc_row("E1", "What does the Sun give off that we see?", "B")])
    write_jsonl(arc / "ARC-Easy-Test.jsonl", [arc_row("E2", "Which form of energy lets us see?", "B")])
    write_jsonl(arc / "ARC-Challenge-Train.jsonl", [arc_row("C1", "Which energy travels as a wave in air?", "C")])
    write_jsonl(arc / "ARC-Challenge-Test.jsonl", [arc_row("C2", "A drum makes which energy?", "C")])
    gsm = [
        {"question": "Ann has 3 apples and buys 2 more. How many?", "answer": "3 + 2 = <<3+2=5>>5\n#### 5"},
        {"question": "Bo reads 4 pages a day for 3 days. How many pages?", "answer": "4 * 3 = <<4*3=12>>12\n#### 12"},
    ]
    write_jsonl(root / "gsm8k" / "train.jsonl", gsm)
    write_jsonl(root / "gsm8k" / "test.jsonl", gsm[:1])
    return root


def test_loaders_split_and_label_each_data_set(tmp_path: Path) -> None:
    root = _write_datasets(tmp_path / "datasets")

    mmlu = load_dataset("mmlu", root)
    # lines 10 and 20 (every 10th, 1-based) are the queries; the other 18 the bank
    assert [q.text for q in mmlu.queries] == ["Question 9 about astronomy?", "Question 19 about virology?"]
    assert len(mmlu.records) == 18 and mmlu.has_topic and not mmlu.has_difficulty
    first = mmlu.records[0]
    assert (first.external_id, first.topic, first.metadata["label"], first.output) == (
        "mmlu-test-astronomy/test/0", "astronomy", "astronomy", "w"
    )  # fmt: skip
    assert mmlu.queries[1].labels == Labels("virology", "virology", None)

    banking = load_dataset("banking77", root / "banking77")  # the data set's own folder works too
    assert len(banking.records) == 4 and len(banking.queries) == 2
    assert banking.records[0].input == "Where is my card? It has not arrived, still waiting"  # quoted comma
    assert banking.records[2].topic == "lost_or_stolen_card" and banking.records[2].output == "lost_or_stolen_card"
    assert banking.queries[0].labels == Labels("card_arrival", "card_arrival", None)

    arc = load_dataset("arc", root)
    assert [(r.input, r.difficulty, r.metadata["label"], r.topic) for r in arc.records] == [
        ("What does the Sun give off that we see?", 2, "Easy", None),
        ("Which energy travels as a wave in air?", 4, "Challenge", None),
    ]
    assert arc.records[0].output == "B. light"
    assert [(q.labels.label, q.labels.difficulty) for q in arc.queries] == [("Easy", 2), ("Challenge", 4)]
    with_choices = load_dataset("arc", root, arc_choices=True)
    assert with_choices.records[0].input == "What does the Sun give off that we see? (A) heat (B) light (C) sound"

    gsm8k = load_dataset("gsm8k", root)
    assert (len(gsm8k.records), len(gsm8k.queries), gsm8k.has_label) == (2, 1, False)
    assert gsm8k.records[1].output == "12" and gsm8k.records[1].steps == ["4 * 3 = 12"]
    assert gsm8k.queries[0].labels == Labels()

    # deterministic: the same records (and ids) on every load; samples fixed by the seed
    assert [r.model_dump() for r in load_dataset("mmlu", root).records] == [r.model_dump() for r in mmlu.records]
    pool = [EvalQuery(f"q{n}", f"text {n}", Labels()) for n in range(50)]
    assert sample_queries(pool, 10, seed=3) == sample_queries(pool, 10, seed=3)
    assert sample_queries(pool, 10, seed=3) != sample_queries(pool, 10, seed=4)
    assert len(sample_queries(pool, 10)) == 10 and sample_queries(pool, 80) == pool
    # keep() skips queries (those with a near copy in the bank, in the runner) and the sample stays full
    drawn = sample_queries(pool, 10, seed=3)
    skipped = sample_queries(pool, 10, seed=3, keep=lambda block: [q.id != drawn[0].id for q in block])
    assert len(skipped) == 10 and drawn[0] not in skipped and set(drawn[1:]) < set(skipped)


def test_loaders_reject_bad_folders(tmp_path: Path) -> None:
    root = _write_datasets(tmp_path / "datasets")
    with pytest.raises(DatasetError, match="unknown data set"):
        load_dataset("squad", root)
    with pytest.raises(DatasetError, match="missing file"):
        load_dataset("gsm8k", tmp_path)
    (root / "banking77" / "test.csv").write_text("text,category\nhello,not_an_intent\n")
    with pytest.raises(DatasetError, match="unknown category 'not_an_intent'"):
        load_dataset("banking77", root)


# -- the runner on a tiny bank --------------------------------------------------------------------------
TOPICS = {
    "cooking": [
        "How long should I boil an egg for a soft yolk?",
        "What temperature do I bake bread at?",
        "How do I stop pasta from sticking together?",
        "Can I replace butter with oil in a cake recipe?",
        "How do I caramelise onions without burning them?",
        "What is the best way to season a cast iron pan?",
    ],
    "astronomy": [
        "Why does the Moon have phases?",
        "How far away is the nearest star to the Sun?",
        "What makes Saturn's rings?",
        "Why is Mars red?",
        "What is a light year?",
        "How do black holes form?",
    ],
    "football": [
        "What is the offside rule in football?",
        "How long is a football match?",
        "How many players are on a football team?",
        "What happens when a match ends in a draw in a knockout round?",
        "What is a hat trick in football?",
        "Who decides a penalty kick?",
    ],
}
QUERIES = [
    ("How many minutes should I boil pasta?", "cooking"),
    ("Why do we only see one side of the Moon?", "astronomy"),
    ("What is a yellow card in football?", "football"),
    ("How do I make a cake rise?", "cooking"),
]


def _tiny_dataset() -> Dataset:
    records = [
        ExampleImport(
            external_id=f"tiny-{topic}-{n}",
            input=text,
            topic=topic,
            difficulty=1 + n % 5,
            source="imported",
            status="approved",
            metadata={"label": topic},
        )
        for topic, texts in TOPICS.items()
        for n, text in enumerate(texts)
    ]
    queries = [EvalQuery(f"query-{n}", text, Labels(topic, topic, 3)) for n, (text, topic) in enumerate(QUERIES)]
    return Dataset("tiny", records, queries, True, True, True, "a tiny hand-written bank")


def test_runner_scores_strategies_on_a_tiny_bank(tmp_path: Path, embedder: SentenceTransformerEmbedder) -> None:
    dataset = _tiny_dataset()
    messages: list[str] = []
    with Evaluation(dataset, tmp_path / "work", embedder=embedder, log=messages.append) as evaluation:
        evaluation.prepare()
        assert evaluation.bank_size == 18
        queries = dataset.queries
        knn = evaluation.run(RunSpec("knn"), queries, k=4, warmup=0)
        spread = evaluation.run(RunSpec("mmr", diversity=0.9), queries, k=4, warmup=0)
        missing = evaluation.run(RunSpec("no-such-strategy"), queries, k=4, warmup=0)
        matched = evaluation.run(RunSpec("knn", difficulty="match"), queries, k=4, warmup=0)
    assert knn.summary is not None and spread.summary is not None and matched.summary is not None
    assert knn.summary.queries == 4 and knn.summary.short_lists == 0
    # three well-separated topics: the nearest examples are on the query's topic
    assert knn.summary.topic_precision is not None and knn.summary.topic_precision >= 0.75
    assert knn.summary.label_hit == 1.0 and knn.summary.majority_accuracy == 1.0
    assert knn.diversity is None  # knn ignores diversity, so none is reported
    assert spread.diversity == pytest.approx(0.9)
    # spreading out costs relevance and buys diversity
    assert spread.summary.intra_list_similarity is not None and knn.summary.intra_list_similarity is not None
    assert spread.summary.intra_list_similarity <= knn.summary.intra_list_similarity + 1e-9
    assert spread.summary.relevance is not None and knn.summary.relevance is not None
    assert spread.summary.relevance <= knn.summary.relevance + 1e-9
    assert knn.summary.latency_p50_ms is not None and knn.summary.latency_p50_ms > 0
    assert knn.summary.difficulty_gap is not None and 0 <= knn.summary.difficulty_gap <= 4
    # scores per query agree with the summary
    assert knn.summary.relevance == pytest.approx(np.mean([s.relevance for s in knn.scores]))
    assert missing.summary is None and missing.error and "not available" in missing.error

    # a rerun over the same work dir neither re-imports nor re-embeds: the saved index is loaded
    with Evaluation(dataset, tmp_path / "work", embedder=embedder, log=messages.append) as again:
        again.prepare()
        report = again.service.start_report
        rerun = again.run(RunSpec("knn"), dataset.queries, k=4, warmup=0)
    assert report is not None and (report.embedded, report.index_action) == (0, "loaded")
    assert sum("imported" in m for m in messages) == 1  # the first prepare only
    assert rerun.summary is not None and rerun.summary.topic_precision == knn.summary.topic_precision


def test_cli_eval_with_langchain_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, embedder: SentenceTransformerEmbedder
) -> None:
    # the command builds its service with build_service(); hand it the already loaded model
    monkeypatch.setattr("fewshot_service.api.app.load_embedder", lambda *_, **__: embedder)
    monkeypatch.setenv("FEWSHOT_SEED_ON_EMPTY", "true")  # the evaluation bank is never seeded anyway
    try:
        import langchain_community.vectorstores  # noqa: F401

        langchain = True
    except ImportError:  # a clone without the bench extra
        langchain = False
    root = _write_datasets(tmp_path / "datasets")
    args = ["eval", "--dataset", "banking77", "--data", str(root), "--queries", "2", "-k", "2"]
    args += ["--work-dir", str(tmp_path / "work"), "--langchain" if langchain else "--no-langchain"]
    result = CliRunner().invoke(app, [*args, "--strategy", "knn", "--strategy", "gone", "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert (payload["bank"], payload["queries"], payload["missing_strategies"]) == (4, 2, ["gone"])
    rows = {r["strategy"]: r for r in payload["results"]}
    assert set(rows) == {"knn", LC_SIMILARITY, LC_MMR} if langchain else {"knn"}
    assert rows["knn"]["topic_precision"] is not None and rows["knn"]["latency_p50_ms"] > 0
    if langchain:
        # the same vectors and the same exact search: LangChain's similarity selector picks what knn picks
        assert rows[LC_SIMILARITY]["topic_precision"] == rows["knn"]["topic_precision"]
        assert rows[LC_SIMILARITY]["relevance"] == pytest.approx(rows["knn"]["relevance"], abs=1e-5)
    text = CliRunner().invoke(app, [*args, "--strategy", "knn"])  # the cached bank: quick
    assert text.exit_code == 0 and "| knn |" in text.stdout and "topic P@k" in text.stdout
    bad = CliRunner().invoke(app, ["eval", "--dataset", "squad", "--data", str(root)])
    assert bad.exit_code == 1 and "unknown data set" in bad.output
