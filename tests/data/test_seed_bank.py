"""Integrity tests for the curated seed example bank in ``seed_examples/``.

Each ``seed_examples/<topic>.jsonl`` file holds one JSON object per line.
These tests check the schema, uniqueness and coverage of the bank and, most
importantly, *recompute* every answer that code can check:

* ``CHECKS`` maps an ``external_id`` to a callable taking the example dict.
  The callable recomputes the answer independently from the problem's own
  quantities (or runs the code in the problem, or brute-forces a puzzle) and
  returns the expected value, which is compared with the example's ``output``
  (see ``assert_answer_matches`` for the comparison rules).  A callable may
  instead do its own assertions and return ``VERIFIED``.
* ``EXEMPT`` lists the few examples whose answers are judgements rather than
  values (fallacy names, tone, main idea, ...).  Exemptions are only allowed
  for the topics in ``EXEMPTABLE_TOPICS`` and each needs a reason.

Adding an example without a ``CHECKS`` entry (or a documented exemption)
makes ``test_every_example_is_checked_or_exempt`` fail.

Only the standard library and pytest are used; no project imports.
"""

from __future__ import annotations

import contextlib
import copy
import datetime
import io
import itertools
import json
import math
import random
import re
from collections import Counter, deque
from fractions import Fraction
from pathlib import Path

import pytest

SEED_DIR = Path(__file__).resolve().parents[2] / "seed_examples"

TOPICS = (
    "arithmetic",
    "algebra",
    "geometry",
    "probability",
    "physics",
    "chemistry",
    "programming",
    "logic",
    "unit_conversion",
    "reading_comprehension",
)
ALLOWED_KEYS = {
    "external_id",
    "input",
    "output",
    "steps",
    "topic",
    "difficulty",
    "tags",
    "source",
    "status",
    "metadata",
}
# Topics where some answers are judgements; everything else must be recomputed.
EXEMPTABLE_TOPICS = {"reading_comprehension", "logic"}

MIN_TOTAL = 240
MIN_TOPICS = 8
MIN_PER_DIFFICULTY = 3
MAX_INPUT_CHARS = 8000


# ---------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------


def _load_lines():
    """Return (path, line number, raw line) for every line of every file."""
    rows = []
    for path in sorted(SEED_DIR.glob("*.jsonl")):
        text = path.read_text(encoding="utf-8")
        for lineno, line in enumerate(text.splitlines(), start=1):
            rows.append((path, lineno, line))
    return rows


RAW_LINES = _load_lines()


def _parse_examples():
    examples = []
    for path, _lineno, line in RAW_LINES:
        try:
            obj = json.loads(line)
        except ValueError:
            continue  # reported by test_line_schema
        if isinstance(obj, dict):
            examples.append((path.stem, obj))
    return examples


EXAMPLES_WITH_FILE = _parse_examples()
EXAMPLES = [ex for _, ex in EXAMPLES_WITH_FILE]
BY_ID = {ex.get("external_id"): ex for ex in EXAMPLES}


def _normalize_input(text):
    return " ".join(text.lower().split())


# ---------------------------------------------------------------------------
# Answer comparison
# ---------------------------------------------------------------------------


class _Verified:
    """Returned by checks that make their own assertions."""

    def __repr__(self):
        return "VERIFIED"


VERIFIED = _Verified()


class Exact(str):
    """Expected value that must equal the output string exactly."""


_NUM_RE = re.compile(
    r"""
    (?<![A-Za-z0-9.^])                  # not part of a word/formula (H2O, Cl2) or another number
    (?P<num>-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.(?P<dec>\d+))?)
    (?:\s*/\s*(?P<den>\d+)(?![\d.]))?    # optional fraction  31/24
    (?:\s*×\s*10\^(?P<exp>-?\d+))?       # optional scientific notation  9.461 × 10^12
    """,
    re.VERBOSE,
)


def parse_numbers(text):
    """Numbers in ``text`` as (value, tolerance) pairs, in order.

    The tolerance is half a unit in the last displayed digit, so a rounded
    answer such as "68.57" must agree with the recomputed value to +-0.005.
    Fractions ("31/24") must match exactly.
    """
    text = text.replace("\u2212", "-").replace("$", "")
    found = []
    for m in _NUM_RE.finditer(text):
        raw = m.group("num").replace(",", "")
        decimals = len(m.group("dec") or "")
        if m.group("den"):
            found.append((Fraction(int(raw), int(m.group("den"))), Fraction(0)))
            continue
        value = float(raw)
        tol = 0.5 * 10 ** (-decimals)
        if m.group("exp"):
            scale = 10.0 ** int(m.group("exp"))
            value *= scale
            tol *= scale
        found.append((value, tol))
    return found


def _close(got, tol, expected):
    if isinstance(got, Fraction) and isinstance(expected, (int, Fraction)):
        return got == expected
    slack = tol * 1.0001 + 1e-9 * max(1.0, abs(float(expected)))
    return abs(float(got) - float(expected)) <= slack


def _startswith_token(output, expected):
    out = " ".join(output.split())
    exp = " ".join(expected.split())
    if not out.startswith(exp):
        return False
    rest = out[len(exp) :]
    return rest == "" or not rest[0].isalnum()


def assert_answer_matches(output, expected):
    """Compare an example's ``output`` with a recomputed ``expected`` value.

    * ``VERIFIED``: the check already asserted everything.
    * ``Exact``: output must equal it character for character.
    * ``bool``: output must start with "True"/"False".
    * ``str``: output must start with it (followed by a non-alphanumeric char).
    * number: the first number in the output must match within the rounding
      shown (see ``parse_numbers``).
    * tuple: string items must occur in the output; number items are compared,
      in order, with the leading numbers of the output.
    """
    if expected is VERIFIED:
        return
    if isinstance(expected, Exact):
        assert output == str(expected), f"expected exactly {str(expected)!r}, output is {output!r}"
        return
    if isinstance(expected, bool):
        first = re.split(r"[^A-Za-z]", output.strip(), maxsplit=1)[0]
        assert first == str(expected), f"expected {expected}, output is {output!r}"
        return
    if isinstance(expected, str):
        assert _startswith_token(output, expected), f"expected answer {expected!r}, output is {output!r}"
        return
    if isinstance(expected, (int, float, Fraction)):
        expected = (expected,)
    assert isinstance(expected, tuple), f"unsupported expected value {expected!r}"
    numbers = parse_numbers(output)
    position = 0
    for item in expected:
        if isinstance(item, str):
            assert item in output, f"expected {item!r} in output {output!r}"
            continue
        assert position < len(numbers), f"output {output!r} has too few numbers for {expected!r}"
        got, tol = numbers[position]
        assert _close(got, tol, item), f"number #{position + 1} in {output!r} is {got}, recomputed {item!r}"
        position += 1


# ---------------------------------------------------------------------------
# Helpers: algebra / geometry
# ---------------------------------------------------------------------------


def solve2(a1, b1, c1, a2, b2, c2):
    """Solve a1*x + b1*y = c1, a2*x + b2*y = c2 by Cramer's rule."""
    det = Fraction(a1 * b2 - a2 * b1)
    assert det != 0
    return ((c1 * b2 - c2 * b1) / det, (a1 * c2 - a2 * c1) / det)


def quad_roots(a, b, c):
    """Real roots of a*x^2 + b*x + c = 0, ascending."""
    disc = b * b - 4 * a * c
    assert disc >= 0
    r = math.sqrt(disc)
    return tuple(sorted(((-b - r) / (2 * a), (-b + r) / (2 * a))))


def heron(a, b, c):
    s = (a + b + c) / 2
    return math.sqrt(s * (s - a) * (s - b) * (s - c))


def shoelace(points):
    total = 0
    for (x1, y1), (x2, y2) in zip(points, points[1:] + points[:1], strict=True):
        total += x1 * y2 - x2 * y1
    return abs(total) / 2


def circle_y_axis(centre, point):
    """Points where the circle with this centre through ``point`` meets x = 0."""
    (h, k), (px, py) = centre, point
    r2 = (px - h) ** 2 + (py - k) ** 2
    rest = r2 - h * h
    assert rest >= 0
    ys = sorted((k - math.sqrt(rest), k + math.sqrt(rest)))
    return (0, ys[0], 0, ys[1])


# ---------------------------------------------------------------------------
# Helpers: probability
# ---------------------------------------------------------------------------

DIE = range(1, 7)
DECK = [(rank, suit) for rank in "A23456789TJQK" for suit in "SHDC"]


def is_prime(n):
    return n > 1 and all(n % d for d in range(2, int(n**0.5) + 1))


def bag_posterior(bag_a, bag_b):
    """P(bag A | two reds drawn without replacement), bags chosen 50/50."""

    def p_two_red(bag):
        pairs = list(itertools.permutations(bag, 2))
        return Fraction(sum(1 for x, y in pairs if x == y == "R"), len(pairs))

    pa, pb = p_two_red(bag_a), p_two_red(bag_b)
    return pa / (pa + pb)


# ---------------------------------------------------------------------------
# Helpers: physics
# ---------------------------------------------------------------------------


def elastic_1d(m1, u1, m2, u2):
    """Final velocities of a 1-D perfectly elastic collision."""
    v1 = ((m1 - m2) * u1 + 2 * m2 * u2) / (m1 + m2)
    v2 = ((m2 - m1) * u2 + 2 * m1 * u1) / (m1 + m2)
    assert math.isclose(m1 * u1 + m2 * u2, m1 * v1 + m2 * v2)
    assert math.isclose(m1 * u1**2 + m2 * u2**2, m1 * v1**2 + m2 * v2**2)
    return (v1, v2)


# ---------------------------------------------------------------------------
# Helpers: chemistry
# ---------------------------------------------------------------------------

ATOMIC_MASS = {
    "H": 1.008,
    "C": 12.011,
    "N": 14.007,
    "O": 15.999,
    "Na": 22.990,
    "Mg": 24.305,
    "Al": 26.982,
    "S": 32.06,
    "Cl": 35.45,
    "K": 39.098,
    "Ca": 40.078,
    "Fe": 55.845,
}


def parse_formula(formula):
    """Element counts of a formula such as 'C6H12O6' or 'Ca(OH)2'."""
    stack = [Counter()]
    for token in re.findall(r"[A-Z][a-z]?\d*|\(|\)\d*", formula):
        if token == "(":
            stack.append(Counter())
        elif token.startswith(")"):
            group = stack.pop()
            mult = int(token[1:] or 1)
            for el, n in group.items():
                stack[-1][el] += n * mult
        else:
            el, n = re.fullmatch(r"([A-Z][a-z]?)(\d*)", token).groups()
            stack[-1][el] += int(n or 1)
    assert len(stack) == 1, f"unbalanced parentheses in {formula}"
    assert "".join(re.findall(r"[A-Z][a-z]?\d*|\(|\)\d*", formula)) == formula, formula
    return stack[0]


def mm(formula):
    """Molar mass in g/mol."""
    return sum(ATOMIC_MASS[el] * n for el, n in parse_formula(formula).items())


def empirical(percent_by_mass):
    """Empirical formula string from mass percentages (elements in given order)."""
    moles = {el: pct / ATOMIC_MASS[el] for el, pct in percent_by_mass.items()}
    smallest = min(moles.values())
    for mult in range(1, 7):
        scaled = {el: n / smallest * mult for el, n in moles.items()}
        if all(abs(v - round(v)) < 0.1 for v in scaled.values()):
            return "".join(el + (str(round(v)) if round(v) > 1 else "") for el, v in scaled.items())
    raise AssertionError("no small whole-number ratio found")


def balanced(ex, reactants, products):
    """Assert the output is a correctly balanced equation with lowest coefficients."""
    sides = re.split(r"→|->", ex["output"])
    assert len(sides) == 2, ex["output"]

    def parse_side(text):
        terms = []
        for term in text.split("+"):
            m = re.fullmatch(r"\s*(\d*)\s*([A-Za-z0-9()]+)\s*", term)
            assert m, f"cannot parse term {term!r}"
            terms.append((int(m.group(1) or 1), m.group(2)))
        return terms

    left, right = parse_side(sides[0]), parse_side(sides[1])
    assert [f for _, f in left] == reactants and [f for _, f in right] == products, ex["output"]
    totals = []
    for terms in (left, right):
        total = Counter()
        for coef, formula in terms:
            for el, n in parse_formula(formula).items():
                total[el] += coef * n
        totals.append(total)
    assert totals[0] == totals[1], f"atoms do not balance: {totals}"
    assert math.gcd(*[c for c, _ in left + right]) == 1, "coefficients are not in lowest terms"
    return VERIFIED


# ---------------------------------------------------------------------------
# Helpers: programming
# ---------------------------------------------------------------------------


def code_block(text):
    m = re.search(r"```(?:python)?\n(.*?)```", text, re.DOTALL)
    return m.group(1) if m else None


def _exec_fresh(code):
    namespace = {"__name__": "seed_example"}
    exec(compile(code, "<seed-example>", "exec"), namespace)
    return namespace


def run_printed(ex):
    """Run the code block in the input; the output must be exactly what it prints."""
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        _exec_fresh(code_block(ex["input"]))
    return Exact(buffer.getvalue().rstrip("\n"))


def eval_inline(ex):
    """Evaluate the first `inline expression` in the input; output is its repr."""
    expr = re.search(r"`([^`]+)`", ex["input"]).group(1)
    return Exact(repr(eval(expr, {})))


def run_function(ex, name, *args):
    """Call function ``name`` defined by the input's code block."""
    return _exec_fresh(code_block(ex["input"]))[name](*args)


def growth_class(ex, name):
    """Classify the growth of a step-counting function from the input.

    The complexity questions are written so the function returns (or is) its
    own operation count; we measure it at n = 2^10, 2^12, 2^14.
    """
    fn = _exec_fresh(code_block(ex["input"]))[name]
    a, b, c = (fn(2**k) for k in (10, 12, 14))
    if a == b == c:
        return "O(1)"
    if c - b == b - a and c <= 4 * 14:
        return "O(log n)"
    ratio = c / b
    candidates = {"O(n)": 4.0, "O(n log n)": 4.0 * 14 / 12, "O(n^2)": 16.0}
    label, target = min(candidates.items(), key=lambda kv: abs(kv[1] - ratio))
    assert abs(target - ratio) < 0.1 * target, f"unclear growth ratio {ratio}"
    return label


def lis_reference(nums):
    """Brute-force longest strictly increasing subsequence length."""
    best = 0
    for mask in range(1 << len(nums)):
        chosen = [x for i, x in enumerate(nums) if mask >> i & 1]
        if all(p < q for p, q in itertools.pairwise(chosen)):
            best = max(best, len(chosen))
    return best


def verify_function(ex, name, cases, no_mutation=False, reference=None):
    """Exec the solution in ``output`` and test function ``name`` on ``cases``."""
    code = code_block(ex["output"]) or ex["output"]
    fn = _exec_fresh(code)[name]
    for args, expected in cases:
        before = copy.deepcopy(args)
        got = fn(*copy.deepcopy(args)) if not no_mutation else fn(*args)
        assert got == expected, f"{name}{args!r} returned {got!r}, expected {expected!r}"
        if isinstance(expected, bool):
            assert isinstance(got, bool), f"{name}{args!r} should return a bool"
        if no_mutation:
            assert args == before, f"{name} mutated its arguments"
    if reference is not None:
        rng = random.Random(20240501)
        for _ in range(300):
            nums = [rng.randint(-5, 5) for _ in range(rng.randint(0, 9))]
            assert fn(list(nums)) == reference(nums), f"{name}({nums}) disagrees with reference"
    return VERIFIED


# ---------------------------------------------------------------------------
# Helpers: logic
# ---------------------------------------------------------------------------

DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
BOOLS = (True, False)


def imp(a, b):
    return (not a) or b


def equivalent(f, g, n):
    return all(bool(f(*v)) == bool(g(*v)) for v in itertools.product(BOOLS, repeat=n))


def entails(premises, conclusion, n):
    return all(conclusion(*v) for v in itertools.product(BOOLS, repeat=n) if all(p(*v) for p in premises))


def equivalent_option(options, target, n):
    matches = [label for label, f in options.items() if equivalent(f, target, n)]
    assert len(matches) == 1, f"expected exactly one equivalent option, got {matches}"
    return matches[0]


# Categorical logic by brute force over Venn-diagram models: a model says
# which of the 2^k regions of k sets are non-empty (plus where named
# individuals sit).  An argument is valid if no model satisfies the premises
# but not the conclusion.
def all_(i, j):
    return lambda m: all(r[j] for r in m[0] if r[i])


def some_(i, j):
    return lambda m: any(r[i] and r[j] for r in m[0])


def no_(i, j):
    return lambda m: not any(r[i] and r[j] for r in m[0])


def some_not(i, j):
    return lambda m: any(r[i] and not r[j] for r in m[0])


def is_(individual, i):
    return lambda m: m[1][individual][i]


def valid(premises, conclusion, k, individuals=0):
    regions = list(itertools.product(BOOLS, repeat=k))
    for occupied in itertools.product(BOOLS, repeat=len(regions)):
        nonempty = [r for r, o in zip(regions, occupied, strict=True) if o]
        for placed in itertools.product(nonempty, repeat=individuals):
            model = (nonempty, placed)
            if all(p(model) for p in premises) and not conclusion(model):
                return False
    return True


def extend(seq, rule, warmup):
    """Check ``rule`` reproduces every given term after ``warmup``; return the next term."""
    for i in range(warmup, len(seq)):
        assert rule(seq[:i]) == seq[i], f"rule does not produce term {i + 1} of {seq}"
    return rule(seq)


def only(items):
    items = list(items)
    assert len(items) == 1, f"expected a unique solution, found {items}"
    return items[0]


def knights_knaves(names, claims):
    """Unique knight/knave assignment; ``claims`` maps types to statement truth (None = silent)."""
    solutions = []
    for types in itertools.product(BOOLS, repeat=len(names)):
        truths = claims(*types)
        if all(t is None or bool(t) == is_knight for is_knight, t in zip(types, truths, strict=True)):
            solutions.append(types)
    types = only(solutions)
    return tuple(f"{n} is a {'knight' if k else 'knave'}" for n, k in zip(names, types, strict=True))


def unique_order(names, predicate):
    return ", ".join(only(p for p in itertools.permutations(names) if predicate(p)))


def grid_solve(names, attributes, predicate):
    keys = list(attributes)
    solutions = []
    for perms in itertools.product(*(itertools.permutations(attributes[k]) for k in keys)):
        sol = {n: {k: perm[i] for k, perm in zip(keys, perms, strict=True)} for i, n in enumerate(names)}
        if predicate(sol):
            solutions.append(sol)
    return only(solutions)


def who_has(solution, attribute, value):
    return only(n for n in solution if solution[n][attribute] == value)


def jug_steps(cap_a, cap_b, goal):
    """Fewest fill/empty/pour steps until either jug holds ``goal`` (BFS)."""
    start = (0, 0)
    dist = {start: 0}
    queue = deque([start])
    while queue:
        a, b = queue.popleft()
        if goal in (a, b):
            return dist[(a, b)]
        ab = min(a, cap_b - b)
        ba = min(b, cap_a - a)
        for nxt in ((cap_a, b), (a, cap_b), (0, b), (a, 0), (a - ab, b + ab), (a + ba, b - ba)):
            if nxt not in dist:
                dist[nxt] = dist[(a, b)] + 1
                queue.append(nxt)
    raise AssertionError("goal unreachable")


# ---------------------------------------------------------------------------
# Helpers: unit conversion
# ---------------------------------------------------------------------------

MILE_KM = 1.609344
LB_KG = 0.45359237
INCH_M = 0.0254
FOOT_M = 0.3048
GAL_L = 3.785411784  # US gallon


def c_to_f(c):
    return c * 9 / 5 + 32


def f_to_c(f):
    return (f - 32) * 5 / 9


def split_seconds(total):
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    return (days, hours, minutes, seconds)


# ---------------------------------------------------------------------------
# Helpers: reading comprehension
# ---------------------------------------------------------------------------


def passage(ex):
    m = re.search(r"Passage:\s*(.*?)\s*\n\s*Question:", ex["input"], re.DOTALL)
    assert m, "reading_comprehension input needs 'Passage:' and 'Question:' sections"
    return m.group(1)


def _norm_text(text):
    return " ".join(text.lower().split()).strip(" .")


def span(ex, *phrases):
    """Assert the answer phrase(s) occur in the passage and in the output.

    With no phrases, the whole output must be a span of the passage.
    """
    text = _norm_text(passage(ex))
    out = _norm_text(ex["output"])
    for phrase in phrases or (ex["output"],):
        p = _norm_text(phrase)
        assert p in text, f"answer phrase {phrase!r} not found in the passage"
        assert p in out, f"answer phrase {phrase!r} not in the output"
    return VERIFIED


def club_guest_allowed(day, guests, age, parent_present):
    """The three guest rules of the Linden Climbing Club passage."""
    return day != "Tuesday" and guests <= 1 and (age >= 16 or parent_present)


# ---------------------------------------------------------------------------
# Recomputation table and exemptions
# ---------------------------------------------------------------------------

CHECKS = {
    # arithmetic
    "seed-arithmetic-001": lambda ex: 54 / 2,
    "seed-arithmetic-002": lambda ex: 64 * 45 / 60,
    "seed-arithmetic-003": lambda ex: 240 / (120 / 80 + 120 / 60),
    "seed-arithmetic-004": lambda ex: (9 + int(390 / (70 + 60)), round((390 / (70 + 60)) % 1 * 60)),
    "seed-arithmetic-005": lambda ex: 80 * (1 - 0.25),
    "seed-arithmetic-006": lambda ex: (13750 - 12500) / 12500 * 100,
    "seed-arithmetic-007": lambda ex: (150 * 1.2 * 0.8, (150 - 150 * 1.2 * 0.8) / 150 * 100),
    "seed-arithmetic-008": lambda ex: 110.16 / (0.85 * 1.08),
    "seed-arithmetic-009": lambda ex: 1 / (1 / 6 + 1 / 3),
    "seed-arithmetic-010": lambda ex: 2 + (1 - 2 * (1 / 10 + 1 / 15)) / (1 / 10 + 1 / 15 - 1 / 12),
    "seed-arithmetic-011": lambda ex: (
        5 + (8 * 15 - 8 * 5) / 12,
        int(5 + (8 * 15 - 8 * 5) / 12),
        round((5 + (8 * 15 - 8 * 5) / 12) % 1 * 24),
    ),
    "seed-arithmetic-012": lambda ex: 4.20 / 6,
    "seed-arithmetic-013": lambda ex: 750 * 2 / 5,
    "seed-arithmetic-014": lambda ex: ("Brand Y" if 9.20 / 2 < 3.60 / 0.75 else "Brand X", abs(3.60 / 0.75 - 9.20 / 2)),
    "seed-arithmetic-015": lambda ex: 56 / (1 / 3 - 1.20 / 5),
    "seed-arithmetic-016": lambda ex: sum([72, 85, 90, 68, 95]) / 5,
    "seed-arithmetic-017": lambda ex: 6 * 20 - 5 * 18,
    "seed-arithmetic-018": lambda ex: (24 * 78 - 10 * 84) / 14,
    "seed-arithmetic-019": lambda ex: 64 * 3 / 4,
    "seed-arithmetic-020": lambda ex: Fraction(2, 3) + Fraction(5, 8),
    "seed-arithmetic-021": lambda ex: 27 / ((1 - Fraction(1, 3)) * (1 - Fraction(1, 4))),
    "seed-arithmetic-022": lambda ex: 18 + (740 - 200) * 0.05,
    "seed-arithmetic-023": lambda ex: 1200 * 0.06 * 2.5,
    "seed-arithmetic-024": lambda ex: (next(n for n in itertools.count(1) if 2000 * 1.05**n > 3000), 2000 * 1.05**9),
    "seed-arithmetic-025": lambda ex: sum(1 for n in range(1, 501) if (n % 4 == 0) != (n % 6 == 0)),
    "seed-arithmetic-026": lambda ex: (8 + int(600 * 60 / 63 // 60) - 12, int(600 * 60 / 63 % 60)),
    # algebra
    "seed-algebra-001": lambda ex: (28 + 7) / 5,
    "seed-algebra-002": lambda ex: 45 / 3 - 4,
    "seed-algebra-003": lambda ex: next(x for x in range(-100, 101) if Fraction(2 * x + 1, 3) == Fraction(x + 8, 4)),
    "seed-algebra-004": lambda ex: solve2(1, 1, 19, 1, -1, 5),
    "seed-algebra-005": lambda ex: solve2(3, 2, 16, 5, -4, 34),
    "seed-algebra-006": lambda ex: next(
        (x, y, z)
        for x, y, z in itertools.product(range(-20, 21), repeat=3)
        if x + y + z == 6 and 2 * x - y + z == 3 and x + 2 * y - z == 2
    ),
    "seed-algebra-007": lambda ex: quad_roots(1, -9, 20),
    "seed-algebra-008": lambda ex: max(quad_roots(1, 3, -70)),
    "seed-algebra-009": lambda ex: math.sqrt(4 * 1 * 49),
    "seed-algebra-010": lambda ex: sum(r**2 for r in quad_roots(1, -7, 3)),
    "seed-algebra-011": lambda ex: next((n, 4 * n) for n in range(1, 200) if 4 * n + 6 == 3 * (n + 6)),
    "seed-algebra-012": lambda ex: next(m + 4 for m in range(-301, 301, 2) if m + (m + 2) + (m + 4) == 147),
    "seed-algebra-013": lambda ex: (0.25 * 6 - 0.10 * 6) / (0.40 - 0.25),
    "seed-algebra-014": lambda ex: next(q for q in range(49) if 10 * (48 - q) + 25 * q == 825),
    "seed-algebra-015": lambda ex: next(t for t in range(1, 200) if abs(1 / t + 1 / (t + 5) - 1 / 6) < 1e-12),
    "seed-algebra-016": lambda ex: 2**5 * 2**3,
    "seed-algebra-017": lambda ex: (math.log(243, 3) + 1) / 2,
    "seed-algebra-018": lambda ex: next(
        x for x in quad_roots(1, -2, -8) if x > 2 and abs(math.log2(x) + math.log2(x - 2) - 3) < 1e-9
    ),
    "seed-algebra-019": lambda ex: 4 * math.log(121500 / 500, 3),
    "seed-algebra-020": lambda ex: [7 + 4 * k for k in range(30)][-1],
    "seed-algebra-021": lambda ex: (12 / round((324 / 12) ** (1 / 3)), round((324 / 12) ** (1 / 3))),
    "seed-algebra-022": lambda ex: next(n for n in itertools.count(1) if n * (n + 1) // 2 > 1000),
    "seed-algebra-023": lambda ex: max(n for n in range(-100, 101) if 9 - 2 * n >= 1),
    "seed-algebra-024": lambda ex: (*(n for n in range(-100, 101) if -3 < 2 * n + 5 <= 11), 7),
    "seed-algebra-025": lambda ex: (lambda x: 4 * x**2 - 3)(-2),
    "seed-algebra-026": lambda ex: (lambda f, g: f(g(3)) - g(f(1)))(lambda x: 2 * x + 3, lambda x: x**2 - 1),
    # geometry
    "seed-geometry-001": lambda ex: 12 * 7.5,
    "seed-geometry-002": lambda ex: 46 / 2 - 15,
    "seed-geometry-003": lambda ex: 2 * math.pi * 5,
    "seed-geometry-004": lambda ex: math.pi * (14 / 2) ** 2,
    "seed-geometry-005": lambda ex: 80 / 360 * math.pi * 9**2,
    "seed-geometry-006": lambda ex: math.pi * 6**2 - 12**2 / 2,
    "seed-geometry-007": lambda ex: 180 - 48 - 67,
    "seed-geometry-008": lambda ex: math.hypot(9, 12),
    "seed-geometry-009": lambda ex: math.sqrt(6.5**2 - 2.5**2),
    "seed-geometry-010": lambda ex: 2 * next(q / 2 for q in range(1, 721) if q / 2 + 2 * (q / 2) + (q / 2 + 30) == 180),
    "seed-geometry-011": lambda ex: (heron(10, 17, 21), 2 * heron(10, 17, 21) / 21),
    "seed-geometry-012": lambda ex: 1.8 / 2.4 * 14,
    "seed-geometry-013": lambda ex: 4.2 * math.sqrt(50 / 18),
    "seed-geometry-014": lambda ex: (6 - 2) * 180,
    "seed-geometry-015": lambda ex: 360 / (180 - 156),
    "seed-geometry-016": lambda ex: 3 * math.sqrt(3) / 2 * 4**2 - math.pi * (4 * math.sqrt(3) / 2) ** 2,
    "seed-geometry-017": lambda ex: 4**3,
    "seed-geometry-018": lambda ex: math.pi * 0.5**2 * 2 * 1000,
    "seed-geometry-019": lambda ex: math.pi * 3**2 * math.sqrt(5**2 - 3**2) / 3,
    "seed-geometry-020": lambda ex: (4 / 3 * math.pi * 3**3) / (math.pi * 2**2),
    "seed-geometry-021": lambda ex: (
        math.sqrt(6**2 + 4**2 + 3**2),
        round(math.degrees(math.atan2(3, math.hypot(6, 4)))),
    ),
    "seed-geometry-022": lambda ex: math.dist((-2, 3), (4, 11)),
    "seed-geometry-023": lambda ex: ((1 + 7) / 2, (-4 + 8) / 2, (8 - -4) / (7 - 1)),
    "seed-geometry-024": lambda ex: shoelace([(0, 0), (8, 2), (3, 7)]),
    "seed-geometry-025": lambda ex: (-1 / 2, 5 - (-1 / 2) * 2),
    "seed-geometry-026": lambda ex: circle_y_axis((3, -2), (7, 1)),
    # probability
    "seed-probability-001": lambda ex: Fraction(sum(1 for f in DIE if f > 4), 6),
    "seed-probability-002": lambda ex: Fraction(sum(1 for a, b in itertools.product(DIE, repeat=2) if a + b == 9), 36),
    "seed-probability-003": lambda ex: Fraction(sum(1 for a, b in itertools.product(DIE, repeat=2) if 6 in (a, b)), 36),
    "seed-probability-004": lambda ex: Fraction(sum(1 for r in itertools.product(DIE, repeat=3) if sum(r) == 10), 216),
    "seed-probability-005": lambda ex: Fraction(sum(max(a, b) for a, b in itertools.product(DIE, repeat=2)), 36),
    "seed-probability-006": lambda ex: Fraction(
        sum(1 for r in itertools.product(DIE, repeat=4) if len(set(r)) < 4), 6**4
    ),
    "seed-probability-007": lambda ex: Fraction(sum(1 for c in DECK if c[1] == "H"), len(DECK)),
    "seed-probability-008": lambda ex: Fraction(
        sum(1 for a, b in itertools.permutations(DECK, 2) if a[0] == "A" and b[0] == "A"), 52 * 51
    ),
    "seed-probability-009": lambda ex: math.comb(13, 5) / math.comb(52, 5),
    "seed-probability-010": lambda ex: Fraction(
        sum(1 for a, b in itertools.permutations(DECK, 2) if a[0] in "JQK" and b[0] == "K"),
        sum(1 for a, b in itertools.permutations(DECK, 2) if a[0] in "JQK"),
    ),
    "seed-probability-011": lambda ex: (
        sum((-1) ** k * math.comb(4, k) * math.comb(52 - 13 * k, 5) for k in range(5)) / math.comb(52, 5)
    ),
    "seed-probability-012": lambda ex: Fraction(
        sum(1 for r in itertools.product("HT", repeat=2) if r == ("H", "H")), 4
    ),
    "seed-probability-013": lambda ex: Fraction(sum(1 for n in range(1, 9) if is_prime(n)), 8),
    "seed-probability-014": lambda ex: Fraction(
        sum(1 for r in itertools.product("HT", repeat=3) if r.count("H") == 2), 8
    ),
    "seed-probability-015": lambda ex: Fraction(
        sum(1 for r in itertools.product("HT", repeat=6) if len(set(r)) == 2), 2**6
    ),
    "seed-probability-016": lambda ex: Fraction(
        sum(1 for r in itertools.product("HT", repeat=10) if "HH" not in "".join(r)), 2**10
    ),
    "seed-probability-017": lambda ex: Fraction(3, 5 + 3 + 2),
    "seed-probability-018": lambda ex: Fraction(
        sum(1 for a, b in itertools.combinations("B" * 4 + "W" * 6, 2) if a == b), math.comb(10, 2)
    ),
    "seed-probability-019": lambda ex: Fraction(3, 5) * Fraction(4, 6) + Fraction(2, 5) * Fraction(3, 4),
    "seed-probability-020": lambda ex: bag_posterior("RRRRG", "RRGGG"),
    "seed-probability-021": lambda ex: Fraction(
        sum(
            1
            for hand in itertools.combinations([(c, s) for c in range(5) for s in range(2)], 4)
            if len({c for c, s in hand}) < 4
        ),
        math.comb(10, 4),
    ),
    "seed-probability-022": lambda ex: (0.4 * 0.05) / (0.6 * 0.02 + 0.4 * 0.05),
    "seed-probability-023": lambda ex: (1 / 200 * 0.98) / (1 / 200 * 0.98 + (1 - 1 / 200) * 0.03),
    "seed-probability-024": lambda ex: len(set(itertools.permutations("PLANET", 4))),
    "seed-probability-025": lambda ex: sum(
        1 for team in itertools.combinations(["E"] * 7 + ["D"] * 5, 4) if team.count("D") == 2
    ),
    "seed-probability-026": lambda ex: Fraction(10, 6) - 2,
    # physics
    "seed-physics-001": lambda ex: 0 + 3 * 5,
    "seed-physics-002": lambda ex: 0.5 * 9.8 * 2.5**2,
    "seed-physics-003": lambda ex: (8**2 / (2 * 16), 8 / (8**2 / (2 * 16))),
    "seed-physics-004": lambda ex: 12 * math.sqrt(2 * 19.6 / 9.8),
    "seed-physics-005": lambda ex: (
        (25 * math.sin(math.radians(53))) ** 2 / (2 * 9.8),
        25**2 * math.sin(math.radians(2 * 53)) / 9.8,
    ),
    "seed-physics-006": lambda ex: 12 * 2.5,
    "seed-physics-007": lambda ex: 9.8 * math.sin(math.radians(30)),
    "seed-physics-008": lambda ex: (60 - 0.4 * 10 * 9.8) / 10,
    "seed-physics-009": lambda ex: (math.sqrt(0.8 * 9.8 * 50), math.sqrt(0.8 * 9.8 * 50) * 3.6),
    "seed-physics-010": lambda ex: 0.5 * 1200 * 20**2,
    "seed-physics-011": lambda ex: 80 * 9.8 * 15 / 20,
    "seed-physics-012": lambda ex: math.sqrt(2 * 9.8 * 20),
    "seed-physics-013": lambda ex: (4 * 9.8 * 10 - 0.5 * 4 * 12**2, (4 * 9.8 * 10 - 0.5 * 4 * 12**2) / 25),
    "seed-physics-014": lambda ex: 0.15 * (50 - (-40)),
    "seed-physics-015": lambda ex: (2 * 3 + 1 * 0) / (2 + 1),
    "seed-physics-016": lambda ex: elastic_1d(3, 4, 1, 0),
    "seed-physics-017": lambda ex: 9 / 45,
    "seed-physics-018": lambda ex: 1 / (1 / 6 + 1 / 3),
    "seed-physics-019": lambda ex: (1500 / 1000 * 4 / 60 * 30, 1500 / 1000 * 4 / 60 * 30 * 0.20),
    "seed-physics-020": lambda ex: (12 / (4 + 1 / (1 / 6 + 1 / 12)), (12 / (4 + 1 / (1 / 6 + 1 / 12))) ** 2 * 4),
    "seed-physics-021": lambda ex: 50 * 6.8,
    "seed-physics-022": lambda ex: (1 / (1 / 10 - 1 / 30), -(1 / (1 / 10 - 1 / 30)) / 30),
    "seed-physics-023": lambda ex: 250 / 100,
    "seed-physics-024": lambda ex: 1000 * 9.8 * 12,
    "seed-physics-025": lambda ex: (600 / 1000, 1000 * 9.8 * (2.0 / 600) - 2.0 * 9.8),
    "seed-physics-026": lambda ex: 0.5 * 2100 * 10 + 0.5 * 334000 + 0.5 * 4186 * 40,
    # chemistry
    "seed-chemistry-001": lambda ex: mm("H2O"),
    "seed-chemistry-002": lambda ex: mm("CaCO3"),
    "seed-chemistry-003": lambda ex: 4 * ATOMIC_MASS["O"] / mm("H2SO4") * 100,
    "seed-chemistry-004": lambda ex: empirical({"C": 52.2, "H": 13.0, "O": 34.8}),
    "seed-chemistry-005": lambda ex: 88 / mm("CO2"),
    "seed-chemistry-006": lambda ex: 0.5 * 6.022e23,
    "seed-chemistry-007": lambda ex: balanced(ex, ["H2", "O2"], ["H2O"]),
    "seed-chemistry-008": lambda ex: balanced(ex, ["Fe", "O2"], ["Fe2O3"]),
    "seed-chemistry-009": lambda ex: balanced(ex, ["C4H10", "O2"], ["CO2", "H2O"]),
    "seed-chemistry-010": lambda ex: 8.0 / mm("H2") * 2 / 2 * mm("H2O"),
    "seed-chemistry-011": lambda ex: (
        ("Cl2" if 10.0 / mm("Cl2") / 3 < 10.0 / mm("Al") / 2 else "Al") + " is limiting",
        min(10.0 / mm("Cl2") / 3, 10.0 / mm("Al") / 2) * 2 * mm("AlCl3"),
    ),
    "seed-chemistry-012": lambda ex: 11.0 / mm("C3H8") * 5 * 22.4,
    "seed-chemistry-013": lambda ex: 12.6 / (25.0 / mm("CaCO3") * mm("CaO")) * 100,
    "seed-chemistry-014": lambda ex: 50.0 / mm("C6H12O6") * 6 * mm("CO2"),
    "seed-chemistry-015": lambda ex: 0.25 / (500 / 1000),
    "seed-chemistry-016": lambda ex: 6.0 * 50 / 400,
    "seed-chemistry-017": lambda ex: 0.40 * 250 / 1000 * mm("NaOH"),
    "seed-chemistry-018": lambda ex: 32.0 / 1000 * 0.150 / 2 / (25.0 / 1000),
    "seed-chemistry-019": lambda ex: (0.200 * 0.30 * 1 + 0.300 * 0.10 * 2) / (0.200 + 0.300),
    "seed-chemistry-020": lambda ex: 1.0 * 4.0 / 2.5,
    "seed-chemistry-021": lambda ex: 3.0 * (127 + 273.15) / (27 + 273.15),
    "seed-chemistry-022": lambda ex: 2.00 * 10.0 / (0.08206 * 300),
    "seed-chemistry-023": lambda ex: 2.50 * 1.20 / 0.80 * (75 + 273.15) / (25 + 273.15),
    "seed-chemistry-024": lambda ex: -math.log10(1e-3),
    "seed-chemistry-025": lambda ex: 14 + math.log10(0.0025),
    "seed-chemistry-026": lambda ex: -math.log10(max(quad_roots(1, 1.8e-5, -1.8e-5 * 0.10))),
    # programming
    "seed-programming-001": lambda ex: run_printed(ex),
    "seed-programming-002": lambda ex: run_printed(ex),
    "seed-programming-003": lambda ex: run_printed(ex),
    "seed-programming-004": lambda ex: run_printed(ex),
    "seed-programming-005": lambda ex: run_printed(ex),
    "seed-programming-006": lambda ex: run_printed(ex),
    "seed-programming-007": lambda ex: eval_inline(ex),
    "seed-programming-008": lambda ex: run_printed(ex),
    "seed-programming-009": lambda ex: run_printed(ex),
    "seed-programming-010": lambda ex: run_printed(ex),
    "seed-programming-011": lambda ex: run_printed(ex),
    "seed-programming-012": lambda ex: run_printed(ex),
    "seed-programming-013": lambda ex: run_printed(ex),
    "seed-programming-014": lambda ex: run_printed(ex),
    "seed-programming-015": lambda ex: run_printed(ex),
    "seed-programming-016": lambda ex: run_printed(ex),
    "seed-programming-017": lambda ex: run_function(ex, "work", 10),
    "seed-programming-018": lambda ex: growth_class(ex, "halve_count"),
    "seed-programming-019": lambda ex: growth_class(ex, "pairs"),
    "seed-programming-020": lambda ex: verify_function(
        ex, "is_even", [((4,), True), ((7,), False), ((0,), True), ((-3,), False), ((-10,), True)]
    ),
    "seed-programming-021": lambda ex: verify_function(
        ex,
        "count_vowels",
        [(("Banana",), 3), (("rhythm",), 0), (("AEIOU aeiou",), 10), (("",), 0), (("Quiet Evening",), 6)],
    ),
    "seed-programming-022": lambda ex: verify_function(
        ex,
        "second_largest",
        [(([4, 9, 2, 9, 7],), 7), (([5, 5, 5],), None), (([],), None), (([-1, -8],), -8), (([3.5, 2, 3.5, 10],), 3.5)],
    ),
    "seed-programming-023": lambda ex: verify_function(
        ex,
        "merge_counts",
        [
            (({"a": 1, "b": 2}, {"b": 3, "c": 4}), {"a": 1, "b": 5, "c": 4}),
            (({}, {"x": 1}), {"x": 1}),
            (({"k": 2}, {}), {"k": 2}),
        ],
        no_mutation=True,
    ),
    "seed-programming-024": lambda ex: verify_function(
        ex,
        "flatten",
        [
            (([1, [2, [3, [4]], 5], [], 6],), [1, 2, 3, 4, 5, 6]),
            (([],), []),
            ((["a", ["b"], [[["c"]]]],), ["a", "b", "c"]),
        ],
    ),
    "seed-programming-025": lambda ex: verify_function(
        ex,
        "lis_length",
        [
            (([10, 9, 2, 5, 3, 7, 101, 18],), 4),
            (([],), 0),
            (([5, 5, 5],), 1),
            (([1, 2, 3, 4],), 4),
            (([4, 3, 2, 1],), 1),
            (([3, 1, 4, 1, 5, 9, 2, 6],), 4),
        ],
        reference=lis_reference,
    ),
    "seed-programming-026": lambda ex: verify_function(
        ex,
        "balanced",
        [
            (("f(a[i]) {x}",), True),
            (("([)]",), False),
            (("((",), False),
            (("",), True),
            ((")(",), False),
            (("{[()()]}",), True),
        ],
    ),
    # logic
    "seed-logic-001": lambda ex: imp(True and not False, False),
    "seed-logic-002": lambda ex: (lambda a, b: "Yes" if a != b else "No")(True, True),
    "seed-logic-003": lambda ex: sum(1 for p, q, r in itertools.product([True, False], repeat=3) if (p or q) and not r),
    "seed-logic-004": lambda ex: (
        "Yes" if equivalent(lambda p, q, r: imp(not (p and q), r), lambda p, q, r: (p and q) or r, 3) else "No"
    ),
    "seed-logic-005": lambda ex: equivalent_option(
        {
            "A": lambda a, d: imp(d, a),
            "B": lambda a, d: imp(not a, not d),
            "C": lambda a, d: imp(not d, not a),
            "D": lambda a, d: a and not d,
        },
        lambda a, d: imp(a, d),
        2,
    ),
    "seed-logic-006": lambda ex: (
        "Yes" if entails([lambda b, t: imp(b, t), lambda b, t: t], lambda b, t: b, 2) else "No"
    ),
    "seed-logic-007": lambda ex: "Yes" if valid([all_(0, 1), is_(0, 0)], is_(0, 1), 2, individuals=1) else "No",
    "seed-logic-008": lambda ex: "Yes" if valid([all_(0, 1), some_(1, 2)], some_(0, 2), 3) else "No",
    "seed-logic-009": lambda ex: "Yes" if valid([no_(0, 1), some_(2, 0)], some_not(2, 1), 3) else "No",
    "seed-logic-010": lambda ex: extend([5, 11, 17, 23], lambda s: s[-1] + 6, warmup=1),
    "seed-logic-011": lambda ex: extend([2, 6, 12, 20, 30], lambda s: 2 * s[-1] - s[-2] + 2, warmup=2),
    "seed-logic-012": lambda ex: extend([3, 4, 7, 11, 18, 29], lambda s: s[-1] + s[-2], warmup=2),
    "seed-logic-013": lambda ex: extend([2, 5, 11, 23, 47], lambda s: 2 * s[-1] + 1, warmup=1),
    "seed-logic-014": lambda ex: DAYS[(DAYS.index("Thursday") + 100) % 7],
    "seed-logic-015": lambda ex: DAYS[
        (DAYS.index("Wednesday") + (datetime.date(2023, 12, 25) - datetime.date(2023, 3, 1)).days) % 7
    ],
    "seed-logic-016": lambda ex: knights_knaves(["Ada", "Bo"], lambda a, b: [not a and not b, None]),
    "seed-logic-017": lambda ex: knights_knaves(["Cy", "Dee", "Eli"], lambda c, d, e: [c + d + e == 1, not c, d == e]),
    "seed-logic-018": lambda ex: knights_knaves(
        ["Pell", "Quin", "Rue", "Sol"], lambda p, q, r, s: [not q, r != s, p + q + r + s >= 2, p and not r]
    ),
    "seed-logic-019": lambda ex: only(
        [c for c in ["Wren", "Xavi", "Yara", "Zed"] if sum([c == "Xavi", c == "Zed", c != "Yara", c != "Zed"]) == 1]
    ),
    "seed-logic-020": lambda ex: unique_order(
        ["Kai", "Lucia", "Noor", "Omar"],
        lambda o: (
            o.index("Noor") + 1 == o.index("Omar")
            and o.index("Lucia") < o.index("Kai")
            and o[-1] != "Kai"
            and o[0] != "Noor"
        ),
    ),
    "seed-logic-021": lambda ex: unique_order(
        ["Farah", "Gus", "Hana", "Ivo", "Jun"],
        lambda o: (
            o[2] == "Hana"
            and o.index("Jun") + 1 == o.index("Gus")
            and o.index("Farah") not in (0, 4)
            and o.index("Ivo") > o.index("Farah")
        ),
    ),
    "seed-logic-022": lambda ex: who_has(
        grid_solve(
            ["Rosa", "Sam", "Tariq"],
            {"pet": ["cat", "dog", "parrot"], "house": ["blue", "green", "yellow"]},
            lambda s: (
                all(s[n]["house"] == "green" for n in s if s[n]["pet"] == "parrot")
                and s["Rosa"]["pet"] != "dog"
                and s["Rosa"]["house"] != "blue"
                and s["Sam"]["house"] == "yellow"
                and s["Tariq"]["pet"] != "cat"
            ),
        ),
        "pet",
        "parrot",
    ),
    "seed-logic-023": lambda ex: sum(
        1 for n in range(1000, 10000) if all(a < b for a, b in itertools.pairwise(str(n))) and n % 5 == 0
    ),
    "seed-logic-024": lambda ex: jug_steps(7, 4, 6),
    # unit_conversion
    "seed-unit_conversion-001": lambda ex: 3.5 * 1000,
    "seed-unit_conversion-002": lambda ex: 4.2 * 1000,
    "seed-unit_conversion-003": lambda ex: 10 * MILE_KM,
    "seed-unit_conversion-004": lambda ex: 12 * 29.5735,
    "seed-unit_conversion-005": lambda ex: 4.5 * 3.2 * 3.28084**2,
    "seed-unit_conversion-006": lambda ex: 165 * LB_KG / (69 * INCH_M) ** 2,
    "seed-unit_conversion-007": lambda ex: (25 * 10 * 1.8 * 1000, 25 * 10 * 1.8 * 1000 / GAL_L),
    "seed-unit_conversion-008": lambda ex: 1.2 / 1000 * 100**3 * FOOT_M**3 / LB_KG,
    "seed-unit_conversion-009": lambda ex: 3 * GAL_L * 60 / 1000,
    "seed-unit_conversion-010": lambda ex: 100 / (32 * MILE_KM / GAL_L),
    "seed-unit_conversion-011": lambda ex: c_to_f(25),
    "seed-unit_conversion-012": lambda ex: f_to_c(98.6),
    "seed-unit_conversion-013": lambda ex: (f_to_c(375), f_to_c(375) + 273.15),
    "seed-unit_conversion-014": lambda ex: (22 - f_to_c(68), (22 - f_to_c(68)) * 9 / 5),
    "seed-unit_conversion-015": lambda ex: 2.75 * 60,
    "seed-unit_conversion-016": lambda ex: split_seconds(2500000),
    "seed-unit_conversion-017": lambda ex: 3 * 1000,
    "seed-unit_conversion-018": lambda ex: 2 * 1024 * 8,
    "seed-unit_conversion-019": lambda ex: (1.5 * 1000 * 8 / 40, 1.5 * 1000 * 8 / 40 / 60),
    "seed-unit_conversion-020": lambda ex: 25e6 * 2 * 3600 / 8 / 1e9,
    "seed-unit_conversion-021": lambda ex: 12 * 8 * 10**12 / 2**40,
    "seed-unit_conversion-022": lambda ex: 90 * 1000 / 3600,
    "seed-unit_conversion-023": lambda ex: (
        48 / (10 / MILE_KM),
        int(48 / (10 / MILE_KM)),
        int(48 / (10 / MILE_KM) % 1 * 60),
    ),
    "seed-unit_conversion-024": lambda ex: (45 * 1.852, 45 * 1.852 / MILE_KM),
    "seed-unit_conversion-025": lambda ex: (65 * 5280 / 3600, 65 * 5280 / 3600 * 1.5, 65 * 5280 / 3600 * 1.5 * FOOT_M),
    "seed-unit_conversion-026": lambda ex: 299792458 * 365.25 * 86400 / 1000,
    # reading_comprehension
    "seed-reading_comprehension-001": lambda ex: span(ex),
    "seed-reading_comprehension-002": lambda ex: span(ex),
    "seed-reading_comprehension-003": lambda ex: span(ex),
    "seed-reading_comprehension-004": lambda ex: divmod(9 * 60 + 30 + 150, 60),
    "seed-reading_comprehension-005": lambda ex: (
        "Yes" if club_guest_allowed(day="Thursday", guests=1, age=14, parent_present=False) else "No"
    ),
    "seed-reading_comprehension-006": lambda ex: divmod(6 * 60 + 15 + 25 - 10 + 35, 60),
    "seed-reading_comprehension-007": lambda ex: span(ex),
    "seed-reading_comprehension-008": lambda ex: span(ex),
    "seed-reading_comprehension-010": lambda ex: 6 + 2,
    "seed-reading_comprehension-011": lambda ex: span(ex, "a hotel in Trieste", "a private collection in Vienna"),
    "seed-reading_comprehension-013": lambda ex: span(ex),
    "seed-reading_comprehension-014": lambda ex: span(ex),
    "seed-reading_comprehension-015": lambda ex: span(ex, "reflect some sunlight back into space"),
    "seed-reading_comprehension-018": lambda ex: 1887 + 64,
    "seed-reading_comprehension-019": lambda ex: span(ex),
    "seed-reading_comprehension-020": lambda ex: span(ex, "Crumb & Co.", "sourdough"),
    "seed-reading_comprehension-021": lambda ex: 48 + 30 + 22 + 12 - 4,
    "seed-reading_comprehension-023": lambda ex: 10 * 18 + (24 - 10) * 22 - 37,
    "seed-reading_comprehension-024": lambda ex: 250 * (100 - 40 - 36) / 100 / 2,
    "seed-reading_comprehension-025": lambda ex: (480 + 60) / 4,
    "seed-reading_comprehension-026": lambda ex: (3 * 60 + 52) - 59 - (59 - 3) - 61,
}

# Answers that are judgements rather than computable values.  Only allowed
# for EXEMPTABLE_TOPICS; each entry states why it cannot be recomputed.
EXEMPT = {
    "seed-logic-025": "names an informal fallacy: a classification, not a computable value",
    "seed-logic-026": "argument analysis in prose: a judgement about reasoning, not a value",
    "seed-reading_comprehension-009": "inference about a character's feelings: judged by a reader, not a value",
    "seed-reading_comprehension-012": "judgement of authorial tone: the answer is interpretive",
    "seed-reading_comprehension-016": "best-summary multiple choice: choosing the main idea is a judgement",
    "seed-reading_comprehension-017": "multiple choice over paraphrased claims: needs judging entailment",
    "seed-reading_comprehension-022": "word meaning inferred from context: a paraphrase, not a passage span",
}


# ---------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------


def test_seed_files_present():
    stems = {path.stem for path in SEED_DIR.glob("*.jsonl")}
    assert stems, f"no seed files found in {SEED_DIR}"
    assert stems <= set(TOPICS), f"unexpected seed files: {sorted(stems - set(TOPICS))}"


@pytest.mark.parametrize(
    "path,lineno,line",
    RAW_LINES,
    ids=[f"{p.name}:{n}" for p, n, _ in RAW_LINES],
)
def test_line_schema(path, lineno, line):
    obj = json.loads(line)
    assert isinstance(obj, dict)
    assert set(obj) == ALLOWED_KEYS, f"keys differ: {sorted(set(obj) ^ ALLOWED_KEYS)}"

    assert isinstance(obj["external_id"], str)
    assert re.fullmatch(rf"seed-{re.escape(path.stem)}-\d{{3}}", obj["external_id"]), obj["external_id"]
    assert isinstance(obj["input"], str)
    assert 1 <= len(obj["input"]) <= MAX_INPUT_CHARS and obj["input"].strip()
    assert isinstance(obj["output"], str) and obj["output"].strip()
    steps = obj["steps"]
    assert steps is None or (isinstance(steps, list) and steps and all(isinstance(s, str) and s.strip() for s in steps))
    assert obj["topic"] == path.stem
    assert type(obj["difficulty"]) is int and 1 <= obj["difficulty"] <= 5
    tags = obj["tags"]
    assert isinstance(tags, list) and all(isinstance(t, str) and t for t in tags)
    assert obj["source"] == "curated"
    assert obj["status"] == "approved"
    assert isinstance(obj["metadata"], dict)


def test_external_ids_unique():
    counts = Counter(ex.get("external_id") for ex in EXAMPLES)
    dupes = sorted(i for i, c in counts.items() if c > 1)
    assert not dupes, f"duplicate external_id values: {dupes}"


def test_inputs_unique_after_normalisation():
    seen = {}
    dupes = []
    for ex in EXAMPLES:
        key = _normalize_input(ex.get("input", ""))
        if key in seen:
            dupes.append((seen[key], ex.get("external_id")))
        seen[key] = ex.get("external_id")
    assert not dupes, f"duplicate inputs: {dupes}"


def test_volume_and_topic_count():
    topics = {ex.get("topic") for ex in EXAMPLES}
    assert len(EXAMPLES) >= MIN_TOTAL, f"only {len(EXAMPLES)} examples"
    assert len(topics) >= MIN_TOPICS, f"only {len(topics)} topics"


@pytest.mark.parametrize("topic", sorted({ex.get("topic") for ex in EXAMPLES}))
def test_every_difficulty_covered(topic):
    counts = Counter(ex["difficulty"] for ex in EXAMPLES if ex.get("topic") == topic)
    thin = {d: counts.get(d, 0) for d in range(1, 6) if counts.get(d, 0) < MIN_PER_DIFFICULTY}
    assert not thin, f"{topic}: too few examples at difficulty {thin}"


@pytest.mark.parametrize("external_id", sorted(CHECKS))
def test_recomputed_answer(external_id):
    assert external_id in BY_ID, f"CHECKS entry {external_id} has no example"
    ex = BY_ID[external_id]
    expected = CHECKS[external_id](ex)
    assert_answer_matches(ex["output"], expected)


def test_every_example_is_checked_or_exempt():
    missing = []
    for ex in EXAMPLES:
        ext_id = ex.get("external_id")
        if ext_id in CHECKS:
            continue
        if ext_id in EXEMPT and ex.get("topic") in EXEMPTABLE_TOPICS:
            continue
        missing.append(ext_id)
    assert not missing, f"examples without a recomputation check: {missing}"


def test_exemptions_are_documented():
    for ext_id, reason in EXEMPT.items():
        assert ext_id in BY_ID, f"EXEMPT entry {ext_id} has no example"
        assert BY_ID[ext_id]["topic"] in EXEMPTABLE_TOPICS, f"{ext_id}: topic may not be exempted"
        assert ext_id not in CHECKS, f"{ext_id} is both checked and exempt"
        assert isinstance(reason, str) and len(reason.strip()) >= 10, f"{ext_id}: give a reason"


def test_no_stale_checks():
    stale = sorted(set(CHECKS) - set(BY_ID))
    assert not stale, f"CHECKS entries without examples: {stale}"
