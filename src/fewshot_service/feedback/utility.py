"""The utility estimator: credit each reported outcome to the examples served, net of how hard the prompt's
neighbourhood is. Pure numpy.

The model, for a selection s that served the examples S(s) to a prompt in neighbourhood g(s) (its estimated
topic and difficulty, which the selector estimates from the prompt's neighbours before choosing, so the
neighbourhood does not depend on which examples were served)::

    outcome_s = mu + b_g(s) + sum_{e in S(s)} v_e + noise,    noise ~ N(0, sigma^2)
    b_g ~ N(0, sigma^2 / NEIGHBOURHOOD_PRIOR),                 v_e ~ N(0, sigma^2 / PRIOR_OUTCOMES)

v_e is the example's utility: the change in the outcome when it is in the prompt. The priors are ridge
penalties counted in outcomes: an example needs several times PRIOR_OUTCOMES outcomes before its estimate
leaves 0 by much, so a handful moves nothing. An example served mostly to hard prompts is compared with
its neighbourhood's baseline, not with the global mean, so it does not look harmful for it.

Fit: a few rounds of backfitting (baselines given the utilities; utilities given the baselines, the ridge
system solved by conjugate gradients over the sparse served-examples matrix). The interval is the
posterior mean ± INTERVAL_Z posterior sds, the sd approximated as sigma / sqrt(outcomes + PRIOR_OUTCOMES)
(the diagonal of the posterior precision; credit shared by examples always served together is less
certain than that). Examples are keyed by (id, version): a curator's fix starts fresh evidence.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from ..selection.utility import Utility

PRIOR_OUTCOMES = 10.0
NEIGHBOURHOOD_PRIOR = 5.0
# Wide on purpose: hundreds of examples are judged at once, and a 95% interval would flag dozens in a bank
# whose feedback is pure noise.
INTERVAL_Z = 3.0
ROUNDS = 6
MIN_SIGMA = 0.05

ExampleKey = tuple[str, int]  # (example id, version)
Product = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Observation:
    """One selection's latest outcome (0..1), its neighbourhood and the examples it served."""

    outcome: float
    neighbourhood: Hashable
    served: Sequence[ExampleKey]
    at: datetime | None = None


def neighbourhood_of(topic: str | None, difficulty_target: float | None) -> tuple[str | None, int | None]:
    """The neighbourhood key of a prompt: its estimated topic and, when estimated, its rounded difficulty."""
    return topic, None if difficulty_target is None else round(difficulty_target)


def estimate(
    observations: Sequence[Observation],
    served_counts: dict[ExampleKey, int] | None = None,
    *,
    prior_outcomes: float = PRIOR_OUTCOMES,
    interval_z: float = INTERVAL_Z,
) -> dict[ExampleKey, Utility]:
    """Utility of every example served in an observation (served_counts: servings including those without feedback)."""
    usable = [o for o in observations if o.served]
    if not usable:
        return {}
    y = np.array([o.outcome for o in usable], dtype=np.float64)
    group_ids: dict[Hashable, int] = {}
    group_of = np.array([group_ids.setdefault(o.neighbourhood, len(group_ids)) for o in usable])
    groups = len(group_ids)
    keys: dict[ExampleKey, int] = {}
    rows, cols = [], []
    for n, o in enumerate(usable):
        for key in dict.fromkeys(o.served):  # an example counted once per selection
            rows.append(n)
            cols.append(keys.setdefault(key, len(keys)))
    obs, ex = np.array(rows), np.array(cols)
    m, e = len(y), len(keys)

    def served_sum(v: np.ndarray) -> np.ndarray:  # X v
        return np.bincount(obs, weights=v[ex], minlength=m)

    def credit(r: np.ndarray) -> np.ndarray:  # X^T r
        return np.bincount(ex, weights=r[obs], minlength=e)

    counts = np.bincount(ex, minlength=e).astype(np.float64)
    group_sizes = np.bincount(group_of, minlength=groups).astype(np.float64)
    mu = float(y.mean())
    baseline = np.zeros(groups)
    v = np.zeros(e)
    for _ in range(ROUNDS):
        rest = y - mu - served_sum(v)
        baseline = np.bincount(group_of, weights=rest, minlength=groups) / (group_sizes + NEIGHBOURHOOD_PRIOR)
        target = y - mu - baseline[group_of]
        v = _ridge_cg(served_sum, credit, credit(target), prior_outcomes, v)
        mu = float(np.mean(y - baseline[group_of] - served_sum(v)))
    residual = y - mu - baseline[group_of] - served_sum(v)
    sigma = max(float(np.sqrt(np.sum(residual**2) / max(m - 1, 1))), MIN_SIGMA)
    sd = sigma / np.sqrt(counts + prior_outcomes)
    expected = mu + baseline[group_of]
    observed_mean = credit(y) / counts
    expected_mean = credit(expected) / counts
    first_at: dict[int, datetime] = {}
    for n, col in zip(rows, cols, strict=True):
        at = usable[n].at
        if at is not None and (col not in first_at or at < first_at[col]):
            first_at[col] = at
    served_counts = served_counts or {}
    return {
        key: Utility(
            value=round(float(v[col]), 4),
            low=round(float(v[col] - interval_z * sd[col]), 4),
            high=round(float(v[col] + interval_z * sd[col]), 4),
            served=max(served_counts.get(key, 0), int(counts[col])),
            outcomes=int(counts[col]),
            observed=round(float(observed_mean[col]), 4),
            expected=round(float(expected_mean[col]), 4),
            since=first_at.get(col),
        )
        for key, col in keys.items()
    }


def _ridge_cg(
    forward: Product, backward: Product, rhs: np.ndarray, ridge: float, start: np.ndarray, iterations: int = 50
) -> np.ndarray:
    """Solve (X^T X + ridge I) v = rhs by conjugate gradients, X given by its products."""

    def apply(v: np.ndarray) -> np.ndarray:
        return backward(forward(v)) + ridge * v

    v = start.copy()
    r = rhs - apply(v)
    p = r.copy()
    rs = float(r @ r)
    for _ in range(iterations):
        if rs < 1e-12:
            break
        ap = apply(p)
        alpha = rs / float(p @ ap)
        v += alpha * p
        r -= alpha * ap
        rs_new = float(r @ r)
        p = r + (rs_new / rs) * p
        rs = rs_new
    return v
