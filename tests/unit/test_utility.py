"""The utility estimator (feedback/utility.py): evidence that is consistent moves an example's utility and
flags it; few or random outcomes leave it at 0; a hard neighbourhood is not blamed on its examples."""

from __future__ import annotations

import numpy as np

from fewshot_service.feedback.utility import Observation, estimate
from fewshot_service.selection.utility import UtilityBoard, adjust_scores, explain_move

BANK = [(f"e{n}", 1) for n in range(60)]


def _rounds(count: int, outcome_of: object, seed: int = 0, topics: int = 3) -> list[Observation]:
    """Selections of 4 random examples from the bank; outcome_of(served, topic, rng) -> 0/1."""
    rng = np.random.default_rng(seed)
    found = []
    for _ in range(count):
        served = [BANK[i] for i in rng.choice(len(BANK), 4, replace=False)]
        topic = f"t{rng.integers(topics)}"
        found.append(Observation(float(outcome_of(served, topic, rng)), (topic, None), served))  # type: ignore[operator]
    return found


def test_consistent_evidence_flags_the_harmful_example_and_only_it() -> None:
    def outcome(served: list[tuple[str, int]], _topic: str, rng: np.random.Generator) -> int:
        chance = 0.75 - (0.5 if ("e7", 1) in served else 0.0)
        return int(rng.random() < chance)

    utilities = estimate(_rounds(3000, outcome))
    bad = utilities[("e7", 1)]
    assert bad.confidently_negative and bad.value < -0.2
    assert bad.observed < bad.expected
    assert [key for key, u in utilities.items() if u.confidently_negative] == [("e7", 1)]
    assert "served" in bad.reason() and "expected for its neighbourhood" in bad.reason()


def test_a_handful_of_outcomes_moves_nothing() -> None:
    # Five failures in a row for one example, in a bank with no other evidence.
    observations = [Observation(0.0, ("t", None), [("lonely", 1)]) for _ in range(5)]
    observations += [Observation(1.0, ("t", None), [(f"x{n}", 1)]) for n in range(5)]
    utility = estimate(observations)[("lonely", 1)]
    assert not utility.confidently_negative and utility.low < 0 < utility.high


def test_random_outcomes_flag_nothing() -> None:
    flagged = 0
    for seed in range(3):
        utilities = estimate(_rounds(3000, lambda _s, _t, rng: rng.random() < 0.6, seed=seed))
        flagged += sum(u.confidently_negative or u.confidently_positive for u in utilities.values())
        assert max(abs(u.value) for u in utilities.values()) < 0.15
    assert flagged <= 1  # of 180 examples judged on pure noise


def test_an_example_served_to_hard_prompts_is_not_blamed_for_them() -> None:
    # e0..e9 are served only to topic "hard", where every prompt fails more often; none of them hurts.
    rng = np.random.default_rng(1)
    observations = []
    for _ in range(3000):
        hard = rng.random() < 0.5
        pool = BANK[:10] if hard else BANK[10:]
        served = [pool[i] for i in rng.choice(len(pool), 4, replace=False)]
        chance = 0.3 if hard else 0.8
        observations.append(Observation(float(rng.random() < chance), ("hard" if hard else "easy", None), served))
    utilities = estimate(observations)
    assert not any(utilities[key].confidently_negative for key in BANK[:10])


def test_a_new_version_starts_without_evidence() -> None:
    observations = [Observation(0.0, ("t", None), [("e", 1)]) for _ in range(50)]
    observations += [Observation(1.0, ("t", None), [("f", 1)]) for _ in range(50)]
    utilities = estimate(observations)
    board = UtilityBoard()
    board.replace({"e": (1, 10, utilities[("e", 1)])})
    assert board.of("e", 1) is not None and board.of("e", 2) is None


def test_only_confident_utilities_move_scores_and_the_reason_says_so() -> None:
    observations = [Observation(0.0, ("t", None), [("bad", 1)]) for _ in range(200)]
    observations += [Observation(1.0, ("t", None), [("good", 1)]) for _ in range(200)]
    observations += [Observation(float(n % 2), ("t", None), [("meh", 1)]) for n in range(6)]
    utilities = estimate(observations)
    board = UtilityBoard()
    board.replace({i: (1, 5, utilities[(i, 1)]) for i in ("bad", "good", "meh")})
    confident = board.for_pool(["bad", "good", "meh", "unknown"], [5, 5, 5, 5])
    assert confident[0] < 0 < confident[1] and confident[2] == 0 and confident[3] == 0
    # An example written since the refresh (another revision) is not moved until its version is checked.
    assert board.for_pool(["bad"], [6])[0] == 0
    score, moved = adjust_scores(np.array([0.5, 0.5, 0.5, 0.5]), confident, 1.0)
    assert score[0] < 0.5 < score[1] and score[2] == score[3] == 0.5
    assert "demoted" in explain_move("top", float(moved[0])) and explain_move("top", 0.0) == "top"
