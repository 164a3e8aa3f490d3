"""How far curator labels can be trusted: inter-annotator agreement, gold accuracy, speed, position bias.

Pure functions over labels (no bank, no I/O). The statistics come from maintained libraries rather than
hand-rolled formulas: Cohen's κ from scikit-learn, Fleiss' κ from statsmodels, Krippendorff's α from
``krippendorff``. What is ours is only how labels become "ratings":

- each annotator's **latest** label on an example counts (as in the label policy);
- three questions are rated: the **verdict** (nominal: approve, reject, needs_fix), the **score**
  (ordinal 1-5; Cohen's κ with quadratic weights) and the **step labels** (each step of an example is a
  unit, rated −1/0/+1, nominal);
- a unit enters agreement figures once two annotators rated it.

Gold examples: an example whose metadata holds ``{"gold": {"verdict": "approve"|"reject"|"needs_fix",
"score": 1-5 (optional)}}`` has a known answer; each annotator's accuracy on them is reported.
"""

from __future__ import annotations

import itertools
import warnings
from collections import Counter, defaultdict
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from statistics import fmean
from typing import Any, Literal, get_args

import numpy as np
from pydantic import BaseModel, Field, ValidationError

from ..curation.types import PreferenceLabel
from ..models import IntegerOrNull, Label, Verdict

Level = Literal["nominal", "ordinal"]
Unit = Hashable
# unit -> annotator -> value
Ratings = dict[Unit, dict[str, Any]]

VERDICTS: tuple[str, ...] = get_args(Verdict)
SCORES: tuple[int, ...] = (1, 2, 3, 4, 5)
STEP_RATINGS: tuple[int, ...] = (-1, 0, 1)
MAX_FLAGGED = 200  # fast labels listed one by one; the counts cover all of them


class GoldLabel(BaseModel):
    """metadata["gold"] of a gold example."""

    verdict: Verdict
    score: IntegerOrNull = Field(None, ge=1, le=5)


class PairKappa(BaseModel):
    annotators: tuple[str, str]
    items: int = Field(description="Units both annotators rated.")
    kappa: float | None = Field(description="Cohen's κ; null when undefined (e.g. both used a single category).")


class FleissKappa(BaseModel):
    value: float | None
    raters_per_item: int = Field(description="Fleiss' κ needs a fixed count: the most common count among units.")
    items: int = Field(description="Units with exactly that many raters.")


class QuestionAgreement(BaseModel):
    question: Literal["verdict", "score", "steps"]
    level: Level
    units: int = Field(description="Units rated by at least two annotators (the ones agreement is measured on).")
    ratings: int = Field(description="Ratings on those units.")
    percent_agreement: float | None = Field(description="Mean over units of the share of rater pairs that agree.")
    cohen_kappa: float | None = Field(description="Mean of the pairwise Cohen's κ (the κ itself for two raters).")
    cohen_pairs: list[PairKappa]
    fleiss_kappa: FleissKappa | None
    krippendorff_alpha: float | None


class AnnotatorReport(BaseModel):
    annotator: str
    labels: int = Field(description="Labels given (every label, not only the latest per example).")
    consensus_items: int = Field(description="Examples where the other annotators' verdicts have one plurality.")
    agreement_with_consensus: float | None = Field(description="Share of those where this verdict matches it.")
    score_mean_abs_diff: float | None = Field(description="Mean |score - mean of the others' scores|.")
    gold_items: int
    gold_accuracy: float | None = Field(description="Share of gold examples given the gold verdict.")
    gold_score_mean_abs_error: float | None
    fast_labels: int
    fast_share: float | None
    median_gap_seconds: float | None = Field(description="Median time between this annotator's labels.")


class FastLabel(BaseModel):
    label_id: str
    example_id: str
    annotator: str
    seconds_since_previous: float
    created_at: datetime


class FastLabels(BaseModel):
    threshold_seconds: float
    count: int
    flagged: list[FastLabel] = Field(description=f"The most recent {MAX_FLAGGED} at most.")


class PositionBias(BaseModel):
    decisive: int = Field(description="Preference labels choosing a or b (ties and both_bad carry no position).")
    first_wins: int = Field(description="Of those, how many chose the response shown first.")
    first_share: float | None = Field(description="first_wins / decisive; 0.5 is unbiased.")
    p_value: float | None = Field(description="Two-sided binomial test against 0.5 (scipy).")


class AnnotatorBias(PositionBias):
    annotator: str


class AgreementReport(BaseModel):
    annotators: list[str]
    examples_labelled: int
    questions: list[QuestionAgreement]
    per_annotator: list[AnnotatorReport]
    gold_examples: int
    invalid_gold: list[str] = Field(description="Examples whose metadata.gold is not {verdict, score?}.")
    fast_labels: FastLabels
    position_bias: PositionBias
    position_bias_per_annotator: list[AnnotatorBias]


# -- ratings from labels ------------------------------------------------------------------------
def latest_labels(labels: Sequence[Label]) -> dict[tuple[str, str], Label]:
    """(example_id, annotator) -> that annotator's latest label on the example."""
    latest: dict[tuple[str, str], Label] = {}
    for label in sorted(labels, key=lambda lab: (lab.created_at, lab.id)):
        latest[(label.example_id, label.annotator)] = label
    return latest


def ratings(latest: Mapping[tuple[str, str], Label], question: str) -> Ratings:
    """The ratings one question gets from the latest labels."""
    units: Ratings = defaultdict(dict)
    for (example_id, annotator), label in latest.items():
        if question == "verdict":
            units[example_id][annotator] = label.verdict
        elif question == "score" and label.score is not None:
            units[example_id][annotator] = label.score
        elif question == "steps" and label.step_ratings is not None:
            for step, rating in enumerate(label.step_ratings):
                units[(example_id, step)][annotator] = rating
    return dict(units)


# -- the statistics -----------------------------------------------------------------------------
def _clean(value: float) -> float | None:
    return None if value is None or not np.isfinite(value) else round(float(value), 4)


def percent_agreement(units: Ratings) -> float | None:
    """Mean over units (with ≥ 2 ratings) of the share of rater pairs giving the same value."""
    shares = []
    for by_rater in units.values():
        values = list(by_rater.values())
        pairs = list(itertools.combinations(values, 2))
        if pairs:
            shares.append(sum(a == b for a, b in pairs) / len(pairs))
    return _clean(fmean(shares)) if shares else None


def cohen_pairs(units: Ratings, domain: Sequence[Any], weights: str | None) -> list[PairKappa]:
    """Cohen's κ for every pair of annotators who rated at least two common units."""
    from sklearn.metrics import cohen_kappa_score

    raters = sorted({r for by_rater in units.values() for r in by_rater})
    found = []
    for a, b in itertools.combinations(raters, 2):
        shared = [u for u, by_rater in units.items() if a in by_rater and b in by_rater]
        if len(shared) < 2:
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # undefined κ (one category only) comes back as nan
            kappa = cohen_kappa_score(
                [units[u][a] for u in shared], [units[u][b] for u in shared], labels=list(domain), weights=weights
            )
        found.append(PairKappa(annotators=(a, b), items=len(shared), kappa=_clean(kappa)))
    return found


def fleiss(units: Ratings, domain: Sequence[Any]) -> FleissKappa | None:
    """Fleiss' κ over the units rated by the most common number of raters (it needs a fixed number)."""
    from statsmodels.stats.inter_rater import aggregate_raters, fleiss_kappa

    counts = Counter(len(by_rater) for by_rater in units.values() if len(by_rater) >= 2)
    if not counts:
        return None
    # Most common count; on a tie the larger one (more raters per unit, a sturdier estimate).
    raters = max(counts, key=lambda n: (counts[n], n))
    codes = {value: n for n, value in enumerate(domain)}
    rows = [[codes[v] for v in by_rater.values()] for by_rater in units.values() if len(by_rater) == raters]
    table, _ = aggregate_raters(np.array(rows), n_cat=len(domain))
    with np.errstate(divide="ignore", invalid="ignore"):
        value = fleiss_kappa(table, method="fleiss")
    return FleissKappa(value=_clean(value), raters_per_item=raters, items=len(rows))


def krippendorff_alpha(units: Ratings, domain: Sequence[Any], level: Level) -> float | None:
    """Krippendorff's α over every unit with at least two ratings (missing ratings allowed)."""
    import krippendorff

    multi = [by_rater for by_rater in units.values() if len(by_rater) >= 2]
    if not multi:
        return None
    raters = sorted({r for by_rater in multi for r in by_rater})
    codes = {value: float(n) for n, value in enumerate(domain)}  # order-preserving, so "ordinal" holds
    data = np.full((len(raters), len(multi)), np.nan)
    for column, by_rater in enumerate(multi):
        for rater, value in by_rater.items():
            data[raters.index(rater), column] = codes[value]
    try:
        with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            value = krippendorff.alpha(
                reliability_data=data, value_domain=list(codes.values()), level_of_measurement=level
            )
    except (ValueError, ZeroDivisionError):
        return None  # e.g. a single value in the data: α is undefined
    return _clean(float(value))


def question_agreement(
    question: Literal["verdict", "score", "steps"],
    units: Ratings,
    domain: Sequence[Any],
    level: Level,
    weights: str | None = None,
) -> QuestionAgreement:
    multi = {u: by_rater for u, by_rater in units.items() if len(by_rater) >= 2}
    pairs = cohen_pairs(multi, domain, weights)
    kappas = [p.kappa for p in pairs if p.kappa is not None]
    return QuestionAgreement(
        question=question,
        level=level,
        units=len(multi),
        ratings=sum(len(by_rater) for by_rater in multi.values()),
        percent_agreement=percent_agreement(multi),
        cohen_kappa=_clean(fmean(kappas)) if kappas else None,
        cohen_pairs=pairs,
        fleiss_kappa=fleiss(multi, domain),
        krippendorff_alpha=krippendorff_alpha(multi, domain, level),
    )


# -- annotators ---------------------------------------------------------------------------------
def plurality(values: Sequence[Any]) -> Any | None:
    """The single most frequent value, or None on a tie."""
    ranked = Counter(values).most_common()
    if not ranked or (len(ranked) > 1 and ranked[0][1] == ranked[1][1]):
        return None
    return ranked[0][0]


@dataclass
class _Tally:
    compared: int = 0
    matched: int = 0
    score_diffs: list[float] = field(default_factory=list)
    gold: int = 0
    gold_right: int = 0
    gold_score_errors: list[float] = field(default_factory=list)


def consensus_and_gold(latest: Mapping[tuple[str, str], Label], gold: Mapping[str, GoldLabel]) -> dict[str, _Tally]:
    """Per annotator: agreement with the other annotators' plurality verdict (leave-one-out, so one's own
    vote never props up one's score), score distance from the others' mean, and gold accuracy."""
    by_example: dict[str, dict[str, Label]] = defaultdict(dict)
    for (example_id, annotator), label in latest.items():
        by_example[example_id][annotator] = label
    tallies: dict[str, _Tally] = defaultdict(_Tally)
    for example_id, by_annotator in by_example.items():
        for annotator, label in by_annotator.items():
            tally = tallies[annotator]
            others = [lab for name, lab in by_annotator.items() if name != annotator]
            consensus = plurality([lab.verdict for lab in others])
            if consensus is not None:
                tally.compared += 1
                tally.matched += label.verdict == consensus
            other_scores = [lab.score for lab in others if lab.score is not None]
            if label.score is not None and other_scores:
                tally.score_diffs.append(abs(label.score - fmean(other_scores)))
            known = gold.get(example_id)
            if known is not None:
                tally.gold += 1
                tally.gold_right += label.verdict == known.verdict
                if known.score is not None and label.score is not None:
                    tally.gold_score_errors.append(abs(label.score - known.score))
    return tallies


def fast_labels(
    labels: Sequence[Label], threshold_seconds: float
) -> tuple[FastLabels, dict[str, list[float]], Counter[str]]:
    """Labels given less than threshold_seconds after the same annotator's previous label (on any example),
    every annotator's gaps between labels, and how many fast labels each gave."""
    by_annotator: dict[str, list[Label]] = defaultdict(list)
    for label in labels:
        by_annotator[label.annotator].append(label)
    flagged: list[FastLabel] = []
    gaps: dict[str, list[float]] = {}
    for annotator, own in by_annotator.items():
        own.sort(key=lambda lab: (lab.created_at, lab.id))
        gaps[annotator] = []
        for previous, label in itertools.pairwise(own):
            gap = (label.created_at - previous.created_at).total_seconds()
            gaps[annotator].append(gap)
            if gap < threshold_seconds:
                flagged.append(
                    FastLabel(
                        label_id=label.id,
                        example_id=label.example_id,
                        annotator=annotator,
                        seconds_since_previous=round(gap, 3),
                        created_at=label.created_at,
                    )
                )
    per_annotator = Counter(f.annotator for f in flagged)
    flagged.sort(key=lambda f: f.created_at, reverse=True)
    report = FastLabels(threshold_seconds=threshold_seconds, count=len(flagged), flagged=flagged[:MAX_FLAGGED])
    return report, gaps, per_annotator


def position_bias(preference_labels: Sequence[PreferenceLabel]) -> PositionBias:
    """Share of decisive preference labels won by the response shown first; 0.5 means no position bias."""
    from scipy.stats import binomtest

    decisive = [lab for lab in preference_labels if lab.choice in ("a", "b")]
    first_wins = sum(lab.choice == lab.shown_first for lab in decisive)
    if not decisive:
        return PositionBias(decisive=0, first_wins=0, first_share=None, p_value=None)
    return PositionBias(
        decisive=len(decisive),
        first_wins=first_wins,
        first_share=_clean(first_wins / len(decisive)),
        p_value=_clean(binomtest(first_wins, len(decisive), 0.5).pvalue),
    )


def parse_gold(metadata_gold: Mapping[str, Any]) -> tuple[dict[str, GoldLabel], list[str]]:
    """example id -> GoldLabel, and the ids whose metadata.gold is malformed."""
    gold: dict[str, GoldLabel] = {}
    invalid: list[str] = []
    for example_id, value in metadata_gold.items():
        try:
            gold[example_id] = GoldLabel.model_validate(value)
        except ValidationError:
            invalid.append(example_id)
    return gold, sorted(invalid)


# -- the report ---------------------------------------------------------------------------------
def agreement_report(
    labels: Sequence[Label],
    *,
    gold: Mapping[str, Any] | None = None,
    preference_labels: Sequence[PreferenceLabel] = (),
    fast_label_seconds: float = 5.0,
    timing_labels: Sequence[Label] | None = None,
) -> AgreementReport:
    """Everything about label reliability. `labels` are those on live examples (agreement); `timing_labels`
    (default the same) are every label given, for the speed check; `gold` is example id -> metadata.gold."""
    latest = latest_labels(labels)
    golden, invalid = parse_gold(gold or {})
    questions = [
        question_agreement("verdict", ratings(latest, "verdict"), VERDICTS, "nominal"),
        question_agreement("score", ratings(latest, "score"), SCORES, "ordinal", weights="quadratic"),
        question_agreement("steps", ratings(latest, "steps"), STEP_RATINGS, "nominal"),
    ]
    tallies = consensus_and_gold(latest, golden)
    fast, gaps, fast_by_annotator = fast_labels(
        timing_labels if timing_labels is not None else labels, fast_label_seconds
    )
    given = Counter(label.annotator for label in labels)
    annotators = sorted(set(given) | set(gaps))
    per_annotator = []
    for name in annotators:
        tally = tallies.get(name, _Tally())
        own_gaps = gaps.get(name, [])
        per_annotator.append(
            AnnotatorReport(
                annotator=name,
                labels=given[name],
                consensus_items=tally.compared,
                agreement_with_consensus=_clean(tally.matched / tally.compared) if tally.compared else None,
                score_mean_abs_diff=_clean(fmean(tally.score_diffs)) if tally.score_diffs else None,
                gold_items=tally.gold,
                gold_accuracy=_clean(tally.gold_right / tally.gold) if tally.gold else None,
                gold_score_mean_abs_error=_clean(fmean(tally.gold_score_errors)) if tally.gold_score_errors else None,
                fast_labels=fast_by_annotator[name],
                fast_share=_clean(fast_by_annotator[name] / (len(own_gaps) + 1)),
                median_gap_seconds=_clean(float(np.median(own_gaps))) if own_gaps else None,
            )
        )
    by_annotator: dict[str, list[PreferenceLabel]] = defaultdict(list)
    for lab in preference_labels:
        by_annotator[lab.annotator].append(lab)
    return AgreementReport(
        annotators=annotators,
        examples_labelled=len({example_id for example_id, _ in latest}),
        questions=questions,
        per_annotator=per_annotator,
        gold_examples=len(golden),
        invalid_gold=invalid,
        fast_labels=fast,
        position_bias=position_bias(preference_labels),
        position_bias_per_annotator=[
            AnnotatorBias(annotator=name, **position_bias(own).model_dump())
            for name, own in sorted(by_annotator.items())
        ],
    )
