"""Agreement figures against values worked out by hand (the arithmetic is in the comments).

Notation: p_o observed agreement, p_e chance agreement; categories in the order approve (ap), reject (rj),
needs_fix (nf). Every expected value is also written as the exact fraction it comes from.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from fewshot_service.curation.types import PreferenceLabel
from fewshot_service.models import Label
from fewshot_service.monitoring.agreement import AgreementReport, QuestionAgreement, agreement_report

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
_count = 0


def label(example: str, annotator: str, verdict: str = "approve", *, at: float | None = None, **extra: Any) -> Label:
    """A stored label; by default one minute after the previous one (never "fast")."""
    global _count
    _count += 1
    when = T0 + timedelta(seconds=at if at is not None else 60 * _count)
    fields = {"id": f"l{_count:04d}", "example_id": example, "annotator": annotator, "verdict": verdict}
    return Label.model_validate({**fields, "created_at": when, **extra})


def question(report: AgreementReport, name: str) -> QuestionAgreement:
    return next(q for q in report.questions if q.question == name)


def votes(table: dict[str, list[str]], annotators: str) -> list[Label]:
    return [
        label(example, a, verdict) for example, row in table.items() for a, verdict in zip(annotators, row, strict=True)
    ]


def test_two_raters_verdicts() -> None:
    labels = votes(
        {"e1": ["approve", "approve"], "e2": ["approve", "reject"], "e3": ["reject", "reject"],
         "e4": ["reject", "reject"], "e5": ["approve", "approve"], "e6": ["needs_fix", "approve"]},
        "AB",
    )  # fmt: skip
    # A changed her mind on e2 earlier: only the latest label of an annotator counts.
    labels.insert(0, label("e2", "A", "reject", at=0))
    verdict = question(agreement_report(labels), "verdict")
    assert verdict.units == 6 and verdict.ratings == 12
    # p_o: e1, e3, e4, e5 agree -> 4/6
    assert verdict.percent_agreement == pytest.approx(4 / 6, abs=1e-4)
    # Cohen: A = (ap 3, rj 2, nf 1), B = (ap 3, rj 3, nf 0); p_e = (3*3 + 2*3 + 1*0)/36 = 15/36
    # kappa = (4/6 - 15/36) / (1 - 15/36) = (9/36) / (21/36) = 3/7
    assert verdict.cohen_kappa == pytest.approx(3 / 7, abs=1e-4)
    assert [(p.annotators, p.items) for p in verdict.cohen_pairs] == [(("A", "B"), 6)]
    # Fleiss (2 raters, 6 units): category shares ap 6/12, rj 5/12, nf 1/12 -> P_e = (36 + 25 + 1)/144 = 62/144;
    # P_i is 1 on agreeing units, 0 otherwise -> P_bar = 4/6 = 96/144; kappa = (96 - 62)/(144 - 62) = 34/82 = 17/41
    assert verdict.fleiss_kappa is not None
    assert (verdict.fleiss_kappa.raters_per_item, verdict.fleiss_kappa.items) == (2, 6)
    assert verdict.fleiss_kappa.value == pytest.approx(17 / 41, abs=1e-4)
    # Krippendorff nominal: 12 pairable values, n_c = ap 6, rj 5, nf 1. Off-diagonal coincidences: e2 and e6
    # give 2 each -> D_o = 4/12. D_e = sum_{c != k} n_c n_k / (n (n - 1)) = 2 (30 + 6 + 5) / 132 = 82/132.
    # alpha = 1 - (4/12) / (82/132) = 1 - 132/246 = 19/41
    assert verdict.krippendorff_alpha == pytest.approx(19 / 41, abs=1e-4)


def test_three_raters_verdicts_and_consensus() -> None:
    labels = votes(
        {"u1": ["approve", "approve", "approve"], "u2": ["approve", "approve", "reject"],
         "u3": ["reject", "reject", "reject"], "u4": ["approve", "reject", "needs_fix"]},
        "ABC",
    )  # fmt: skip
    report = agreement_report(labels)
    verdict = question(report, "verdict")
    # Pairwise agreement per unit: u1 3/3, u2 1/3, u3 3/3, u4 0/3 -> mean (1 + 1/3 + 1 + 0)/4 = 7/12
    assert verdict.percent_agreement == pytest.approx(7 / 12, abs=1e-4)
    # Fleiss (3 raters): counts u1 [3,0,0], u2 [2,1,0], u3 [0,3,0], u4 [1,1,1]; shares 6/12, 5/12, 1/12 -> P_e = 62/144
    # P_i = (sum n_ij^2 - 3)/6: 1, 1/3, 1, 0 -> P_bar = 7/12 = 84/144; kappa = (84 - 62)/(144 - 62) = 22/82 = 11/41
    assert verdict.fleiss_kappa is not None and verdict.fleiss_kappa.raters_per_item == 3
    assert verdict.fleiss_kappa.value == pytest.approx(11 / 41, abs=1e-4)
    # Krippendorff: a unit of 3 values adds (ordered pairs)/(3 - 1). Off-diagonal: u2 has 4 ordered ap/rj pairs -> 2,
    # u4 has 6 -> 3; D_o = 5/12; D_e = 82/132 as before; alpha = 1 - (5/12)(132/82) = 1 - 660/984 = 27/82
    assert verdict.krippendorff_alpha == pytest.approx(27 / 82, abs=1e-4)
    # Cohen per pair: A-B p_o 3/4, p_e (3*2 + 1*2)/16 = 1/2 -> 1/2; A-C p_o 1/2, p_e (3*1 + 1*2)/16 = 5/16 -> 3/11;
    # B-C p_o 1/2, p_e (2*1 + 2*2)/16 = 3/8 -> 1/5; mean (1/2 + 3/11 + 1/5)/3
    kappas = {p.annotators: p.kappa for p in verdict.cohen_pairs}
    assert kappas[("A", "B")] == pytest.approx(1 / 2, abs=1e-4)
    assert kappas[("A", "C")] == pytest.approx(3 / 11, abs=1e-4)
    assert kappas[("B", "C")] == pytest.approx(1 / 5, abs=1e-4)
    assert verdict.cohen_kappa == pytest.approx((1 / 2 + 3 / 11 + 1 / 5) / 3, abs=1e-4)
    # Consensus = plurality of the *other* annotators' verdicts (ties skipped). A: u1 ap=ap, u3 rj=rj (u2, u4 tie)
    # -> 2/2; C: u1 yes, u2 others say ap but C rj -> no, u3 yes (u4 tie) -> 2/3.
    by_name = {a.annotator: a for a in report.per_annotator}
    assert (by_name["A"].consensus_items, by_name["A"].agreement_with_consensus) == (2, 1.0)
    assert (by_name["C"].consensus_items, by_name["C"].agreement_with_consensus) == (3, pytest.approx(2 / 3, abs=1e-4))


def test_scores_are_ordinal_and_steps_nominal() -> None:
    labels = [
        label("s1", "A", score=4), label("s1", "B", score=4),
        label("s2", "A", score=5), label("s2", "B", score=4),
        label("s3", "A", score=2), label("s3", "B", score=2),
        label("p1", "A", step_ratings=[1, 1, -1]), label("p1", "B", step_ratings=[1, -1, -1]),
        label("p2", "A", step_ratings=[1, 0]), label("p2", "B", step_ratings=[1, 0]),
    ]  # fmt: skip
    report = agreement_report(labels)
    score = question(report, "score")
    assert (score.level, score.units, score.percent_agreement) == ("ordinal", 3, pytest.approx(2 / 3, abs=1e-4))
    # Quadratic-weighted Cohen: w = (i - j)^2 (the 1/16 normalisation cancels). Observed pairs (4,4), (5,4), (2,2):
    # sum w*O = 1. Expected = A margin x B margin / 3 with A = {2,4,5}, B = {2,4,4}: cells (2,4) 2/3 w4, (4,2) 1/3 w4,
    # (5,2) 1/3 w9, (5,4) 2/3 w1 -> sum w*E = (8 + 4 + 9 + 2)/3 = 23/3; kappa_w = 1 - 1/(23/3) = 20/23
    assert score.cohen_kappa == pytest.approx(20 / 23, abs=1e-4)
    # Krippendorff ordinal: n = 6 values, n_2 = 2, n_4 = 3, n_5 = 1. delta^2(c,k) = (sum_{g=c..k} n_g - (n_c+n_k)/2)^2:
    # (4,5) = (4 - 2)^2 = 4, (2,4) = (5 - 2.5)^2 = 6.25, (2,5) = (6 - 1.5)^2 = 20.25.
    # D_o = (o_45 + o_54) * 4 / 6 = 8/6; D_e = 2 (2*3*6.25 + 2*1*20.25 + 3*1*4) / (6*5) = 180/30 = 6
    # alpha = 1 - (8/6)/6 = 7/9
    assert score.krippendorff_alpha == pytest.approx(7 / 9, abs=1e-4)
    # Fleiss on score categories: shares 2: 2/6, 4: 3/6, 5: 1/6 -> P_e = 14/36; P_bar = 2/3 = 24/36 -> 10/22 = 5/11
    assert score.fleiss_kappa is not None and score.fleiss_kappa.value == pytest.approx(5 / 11, abs=1e-4)

    steps = question(report, "steps")
    # Units are steps: (1,1), (1,-1), (-1,-1), (1,1), (0,0) -> p_o = 4/5.
    # Cohen: A = (+1: 3, -1: 1, 0: 1), B = (+1: 2, -1: 2, 0: 1); p_e = (6 + 2 + 1)/25 = 9/25
    # kappa = (4/5 - 9/25)/(1 - 9/25) = (11/25)/(16/25) = 11/16
    assert (steps.level, steps.units, steps.percent_agreement) == ("nominal", 5, pytest.approx(0.8, abs=1e-4))
    assert steps.cohen_kappa == pytest.approx(11 / 16, abs=1e-4)


def test_undefined_figures_are_null_not_nan() -> None:
    # Everyone approves everything: chance agreement is 1, so kappa and alpha are 0/0.
    report = agreement_report(votes({"x": ["approve", "approve"], "y": ["approve", "approve"]}, "AB"))
    verdict = question(report, "verdict")
    assert verdict.percent_agreement == 1.0
    assert verdict.cohen_kappa is None and verdict.krippendorff_alpha is None
    assert verdict.fleiss_kappa is not None and verdict.fleiss_kappa.value is None
    assert question(report, "steps").units == 0 and question(report, "steps").fleiss_kappa is None
    report.model_dump_json()  # and it serialises (NaN would not)


def test_gold_accuracy_fast_labels_and_position_bias() -> None:
    labels = [
        label("g1", "A", "approve", at=0), label("g1", "B", "approve", at=0, score=4),
        label("g2", "A", "approve", at=2, score=5), label("g2", "B", "reject", at=100, score=1),
        label("g3", "A", "reject", at=30), label("g4", "A", "approve", at=31),
    ]  # fmt: skip
    gold = {"g1": {"verdict": "approve"}, "g2": {"verdict": "reject", "score": 2}, "g9": {"verdict": "maybe"}}
    shown = [("a", "a"), ("b", "b")] * 4 + [("a", "b"), ("b", "a"), ("tie", "a")]
    preferences = [
        PreferenceLabel.model_validate(
            {"id": f"p{n}", "preference_id": "pair", "annotator": "A" if n % 2 else "B", "choice": choice,
             "shown_first": first, "created_at": T0}
        )
        for n, (choice, first) in enumerate(shown)
    ]  # fmt: skip
    report = agreement_report(labels, gold=gold, preference_labels=preferences, fast_label_seconds=5)
    by_name = {a.annotator: a for a in report.per_annotator}
    # A: g1 approve = gold, g2 approve != reject -> 1/2; scores vs gold: only g2 has both, |5 - 2| = 3
    assert (by_name["A"].gold_items, by_name["A"].gold_accuracy, by_name["A"].gold_score_mean_abs_error) == (2, 0.5, 3)
    assert (by_name["B"].gold_items, by_name["B"].gold_accuracy, by_name["B"].gold_score_mean_abs_error) == (2, 1.0, 1)
    assert report.gold_examples == 2 and report.invalid_gold == ["g9"]
    # A labels at 0, 2, 30, 31 s: gaps 2, 28, 1 -> two under 5 s (g2 and g4); share 2/4; median gap 2
    # B labels at 0 and 100 s: none.
    assert report.fast_labels.count == 2
    assert {f.example_id for f in report.fast_labels.flagged} == {"g2", "g4"}
    assert (by_name["A"].fast_labels, by_name["A"].fast_share, by_name["A"].median_gap_seconds) == (2, 0.5, 2.0)
    assert by_name["B"].fast_labels == 0
    # 10 decisive preference labels, 8 chose the response shown first (the tie carries no position):
    # share 0.8; two-sided binomial p = 2 * P(X >= 8 | n=10, 1/2) = 2 * (45 + 10 + 1)/1024 = 112/1024
    bias = report.position_bias
    assert (bias.decisive, bias.first_wins, bias.first_share) == (10, 8, 0.8)
    assert bias.p_value == pytest.approx(112 / 1024, abs=1e-4)
    assert {b.annotator: b.first_wins for b in report.position_bias_per_annotator} == {"A": 4, "B": 4}
