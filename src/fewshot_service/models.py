"""Domain types every module speaks: examples (create / stored / public) and selection requests.

Input models forbid unknown fields and bound every value a caller can send (the wire contract in
docs/api.md); the bounds live here once so the API, the importer and the CLI agree.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal, get_args

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
)
from pydantic_core import PydanticCustomError

Source = Literal["curated", "llm", "imported"]
Status = Literal["pending", "approved", "rejected"]
Order = Literal["most_similar_last", "most_similar_first", "ascending_difficulty"]
Format = Literal["examples", "messages", "text"]
DEFAULT_TEMPLATE = "Q: {input}\nA: {output}"
TEMPLATE_FIELDS = ("input", "output", "steps")
Verdict = Literal["approve", "reject", "needs_fix"]
IssueTag = Literal[
    "incorrect_answer", "unclear", "ambiguous", "bad_steps", "off_topic", "unsafe", "duplicate", "formatting"
]
StepRating = Literal[-1, 0, 1]

if TYPE_CHECKING:  # numpy only for IndexRow's annotation: the HTTP client imports this module without numpy
    import numpy as np

MAX_INPUT_CHARS = 8000
MAX_METADATA_BYTES = 16 * 1024
MAX_METADATA_DEPTH = 32
MAX_STEPS = 64
MAX_VERSION = 1_000_000_000
MAX_TAGS = 32
APPROVED_ONLY: tuple[Status, ...] = ("approved",)
ALL_STATUSES: tuple[Status, ...] = get_args(Status)

# The names the selection registry (selection.STRATEGIES) serves; settings and the request schema read them here.
StrategyName = Literal["stratified", "mmr", "dpp", "coverage", "hybrid", "knn", "random"]
STRATEGY_NAMES: tuple[StrategyName, ...] = get_args(StrategyName)

# "Not blank" stated in the JSON schema as the validators decide it (clients and schema-driven tests read it).
# Unicode White_Space, what pydantic's strip_whitespace removes: a tag, topic or annotator keeps some other
# character (NOT_BLANK_STRIPPED).
_WHITE_SPACE = r"\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
# What shows nothing when printed: that white space, controls (Cc) and format characters (Cf: the zero-width
# space and joiners, direction marks, the byte-order mark, the soft hyphen, ...; those of the Basic
# Multilingual Plane). An input or prompt must hold some other character: "\u200b" alone is no question.
_INVISIBLE = (
    _WHITE_SPACE + r"\x00-\x1f\x7f-\x9f\xad\u0600-\u0605\u061c\u06dd\u070f\u180e\u200b-\u200f\u202a-\u202e"
    r"\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb"
)
VISIBLE = f"[^{_INVISIBLE}]"
_A_VISIBLE_CHARACTER = re.compile(VISIBLE)
NOT_BLANK_STRIPPED = f"[^{_WHITE_SPACE}]"
# A format template whose fields are {input}, {output} or {steps} (the validator also allows a format spec).
TEMPLATE_PATTERN = r"^(?:[^{}]|\{\{|\}\}|\{(?:input|output|steps)\})*$"

Tag = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64, pattern=NOT_BLANK_STRIPPED)]
# An example's tags are a set kept in the order typed: "a, a" is one tag (stored once, matched once).
Tags = Annotated[list[Tag], AfterValidator(lambda tags: list(dict.fromkeys(tags)))]
Topic = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100, pattern=NOT_BLANK_STRIPPED)
]
Step = Annotated[str, StringConstraints(max_length=MAX_INPUT_CHARS)]
Annotator = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200, pattern=NOT_BLANK_STRIPPED)
]


def _refuse_boolean(error_type: str, message: str) -> BeforeValidator:
    def refuse(value: Any) -> Any:
        if isinstance(value, bool):
            raise PydanticCustomError(error_type, message)
        return value

    return BeforeValidator(refuse)


# Numbers a caller sends. JSON's true and false are not numbers, but pydantic's lax mode reads them as 1 and 0
# ("difficulty": true stored difficulty 1, "k": true selected one example): these refuse them with pydantic's
# own message, and otherwise convert as lax mode does (a numeric string, 3.0 for an integer). The optional
# forms wrap the whole union: a validator on the int inside `X | None` makes pydantic write a Field's bounds
# into the JSON schema as "ge"/"le" instead of "minimum"/"maximum", which schema-driven clients ignore.
_NOT_AN_INTEGER = _refuse_boolean("int_type", "Input should be a valid integer")
_NOT_A_NUMBER = _refuse_boolean("float_type", "Input should be a valid number")
Integer = Annotated[int, _NOT_AN_INTEGER]
IntegerOrNull = Annotated[int | None, _NOT_AN_INTEGER]


def _refuse_non_finite(value: Any) -> Any:
    # NaN and the infinities (Python's json reads NaN and Infinity) would only be refused by a bound, with a
    # message about the bound ("less than or equal to 5").
    if isinstance(value, float) and not math.isfinite(value):
        raise PydanticCustomError("finite_number", "Input should be a finite number")
    return value


NumberOrNull = Annotated[float | None, _NOT_A_NUMBER, BeforeValidator(_refuse_non_finite)]


# The validation context key under which an import line is read as a restore (ExampleImport).
RESTORING = "restoring"
INVISIBLE_REFUSAL = "must hold a visible character, not only white space, control or format characters"


def shows_something(text: str) -> bool:
    """Whether the text holds a character that is not white space, a control or a format character."""
    return _A_VISIBLE_CHARACTER.search(text) is not None


def require_visible(value: str | None) -> str | None:
    """The validator of an input or prompt a caller sends (VISIBLE states it in the schema). Stored examples
    are not held to it: a bank may hold an input from before it, which must stay readable."""
    if value is not None and not shows_something(value):
        raise ValueError(INVISIBLE_REFUSAL)
    return value


# Characters that show nothing where they stand, so two inputs that differ only by them read the same: controls
# that are not white space, the soft hyphen, zero-width spaces and word joiners, direction marks and
# embeddings, the byte-order mark. Not the zero-width (non-)joiners, which change how Persian, Indic scripts
# and emoji sequences are drawn. White space is left to str.split, which makes any run of it one space.
_UNSEEN = re.compile(
    r"[\x00-\x08\x0e-\x1b\x7f-\x84\x86-\x9f\xad\u180e\u200b\u200e\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]"
)


# Full-width forms of ASCII (U+FF01-FF5E), as Chinese and Japanese input methods type them: "１２" is "12".
_FULL_WIDTH_TO_ASCII = {code: code - 0xFEE0 for code in range(0xFF01, 0xFF5F)}


def normalise_text(text: str) -> str:
    """The form in which two texts are compared for exact duplicates (and prompts hashed): what a reader sees,
    not how it was typed. Unseen characters dropped; canonical composition (NFC: a composed and a decomposed
    "é" are one character); full-width ASCII read as ASCII; lower case; runs of white space (a no-break or an
    ideographic space included) made one space. Not NFKC, which would also read "2³" as "23" and "x₁" as
    "x1", nor full case folding, which would read "Maße" as "Masse": different texts must stay different."""
    text = unicodedata.normalize("NFC", _UNSEEN.sub("", text))
    return " ".join(text.translate(_FULL_WIDTH_TO_ASCII).lower().split())


def nul_path(value: Any) -> str | None:
    """Where parsed JSON holds a NUL character ("input", "examples.1.tags.0", "metadata.source"; "body" for the
    top level), or None. PostgreSQL cannot store NUL in text and no example needs one, so a body or import
    line holding one is refused on every bank alike. Iterative: a body may nest deeper than recursion allows."""
    pending: list[tuple[Any, str]] = [(value, "")]
    while pending:
        node, path = pending.pop()
        if isinstance(node, str):
            if "\x00" in node:
                return path or "body"
        elif isinstance(node, dict):
            for key, child in node.items():
                if "\x00" in key:
                    return path or "body"
                pending.append((child, f"{path}.{key}" if path else key))
        elif isinstance(node, list):
            pending.extend((child, f"{path}.{n}" if path else str(n)) for n, child in enumerate(node))
    return None


def nul_refusal(where: str) -> str:
    """The message refusing a NUL found by nul_path, the same for a body and an import line."""
    return f"{where}: may not contain the NUL character (\\u0000)"


def check_metadata(value: dict[str, Any]) -> dict[str, Any]:
    """Metadata of bounded nesting and size. The depth is checked first, without recursion: pydantic will not
    serialise past 255 levels, so a deeper value, once stored, would turn every answer showing it into a 500."""
    pending: list[tuple[Any, int]] = [(value, 1)]
    while pending:
        node, depth = pending.pop()
        if depth > MAX_METADATA_DEPTH:
            raise ValueError(f"may nest objects and lists at most {MAX_METADATA_DEPTH} levels deep")
        children = node.values() if isinstance(node, dict) else node
        pending.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    if len(json.dumps(value, ensure_ascii=False).encode()) > MAX_METADATA_BYTES:
        raise ValueError(f"must serialise to at most {MAX_METADATA_BYTES} bytes")
    return value


class ExampleFields(BaseModel):
    """The fields a caller owns; shared by create, import and the stored example."""

    model_config = ConfigDict(extra="forbid")

    external_id: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = None
    input: str = Field(min_length=1, max_length=MAX_INPUT_CHARS, json_schema_extra={"pattern": VISIBLE})
    output: str = Field("", max_length=MAX_INPUT_CHARS)
    steps: list[Step] | None = Field(None, max_length=MAX_STEPS)
    topic: Topic | None = None
    difficulty: IntegerOrNull = Field(None, ge=1, le=5)
    tags: Tags = Field(default_factory=list, max_length=MAX_TAGS)
    source: Source = "curated"
    metadata: dict[str, Any] = Field(default_factory=dict)

    @field_validator("metadata")
    @classmethod
    def _metadata_small(cls, value: dict[str, Any]) -> dict[str, Any]:
        return check_metadata(value)


class ExampleCreate(ExampleFields):
    """A new example as a curator sends it."""

    status: Status = "pending"

    _input_visible = field_validator("input")(require_visible)


class LabelCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    annotator: Annotator | None = Field(
        None, description="Who labels; with API keys on, the key's name (another name needs an admin key)."
    )
    verdict: Verdict
    score: IntegerOrNull = Field(None, ge=1, le=5)
    issues: list[IssueTag] = Field(default_factory=list, max_length=8)
    note: str | None = Field(None, max_length=4000)
    corrected_output: str | None = Field(None, max_length=MAX_INPUT_CHARS)
    step_ratings: list[StepRating] | None = Field(None, max_length=MAX_STEPS, description="−1/0/+1 per step.")
    first_wrong_step: IntegerOrNull = Field(
        None, ge=0, lt=MAX_STEPS, description="0-based index of the first wrong step."
    )


class LabelSubmission(LabelCreate):
    """A label as a caller sends it: with the version of the example it judged, when the caller knows it."""

    version: IntegerOrNull = Field(
        None, ge=1, le=MAX_VERSION,
        description="The example version the annotator saw; if the example has changed since, the label is "
        "refused (409, field version) rather than counted for content nobody judged.",
    )  # fmt: skip


class Label(LabelCreate):
    annotator: Annotator
    id: str
    example_id: str
    created_at: datetime
    recorded_by: str | None = Field(None, description="The admin key that recorded it for the annotator.")
    withdrawn_at: datetime | None = Field(None, description="When its annotator took it back; it no longer counts.")
    withdrawn_by: str | None = None


class ExampleUtility(BaseModel):
    """What reported outcomes say of an example's current version (issue 20); service-owned."""

    value: float = Field(description="Change in the outcome (0..1) when the example is in the prompt.")
    low: float = Field(description="Lower end of the interval the selector and the review queue trust.")
    high: float
    served: int = Field(description="Times this version was served among the kept selections.")
    outcomes: int = Field(description="Of those, how many have feedback.")


class ExampleUsage(BaseModel):
    """How often /v1/select served an example, from the selections the service records (issue 20)."""

    served_last_day: int = Field(description="Selections in the last 24 hours that included the example.")
    served_kept: int = Field(description="All kept selections that included it (see FEWSHOT_SELECTION_RETENTION_DAYS).")


# The fixed segments after /v1/examples/, which an example id must not be.
ROUTE_WORDS = frozenset({"export", "import"})


class ExampleImport(ExampleFields):
    """One line of a JSONL import: an Example as exported, with the service-owned fields optional."""

    # Letters, digits, - and _ only: an id is a URL path segment (no "/", "..", spaces) in every route.
    id: str | None = Field(None, min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    status: Status = "approved"
    quality: NumberOrNull = Field(None, ge=0, le=5)
    created_at: datetime | None = None
    updated_at: datetime | None = None
    # The bank stores versions as 32-bit integers (PostgreSQL's INTEGER); the bound leaves every restored
    # example room for a billion more edits.
    version: IntegerOrNull = Field(None, ge=1, le=MAX_VERSION)
    labels: list[Label] = Field(default_factory=list, max_length=10_000)
    utility: ExampleUtility | None = Field(None, description="As exported; ignored (evidence stays in its bank).")

    @field_validator("id")
    @classmethod
    def _id_not_a_route(cls, value: str | None) -> str | None:
        # GET /v1/examples/export is the export: an example stored under that id could not be read back.
        if value in ROUTE_WORDS:
            raise ValueError(f"{value!r} names the route /v1/examples/{value}; an example needs another id")
        return value

    @field_validator("input")
    @classmethod
    def _input_visible(cls, value: str, info: ValidationInfo) -> str | None:
        # A restore puts back what a bank held, and a bank may hold an input from before the rule: its own
        # export must read back. Curated imports, like every other write, are held to it.
        if info.context is not None and info.context.get(RESTORING):
            return value
        return require_visible(value)


class _Identified(BaseModel):
    id: str


class Example(ExampleFields, _Identified):  # _Identified last in the bases so `id` leads the JSON
    """An example as stored and returned."""

    model_config = ConfigDict(extra="forbid", from_attributes=True)

    status: Status
    quality: float | None = None
    created_at: datetime
    updated_at: datetime
    version: int
    utility: ExampleUtility | None = None


# A template pads a field to at most this width (and cuts it to at most this precision); a placeholder
# count bounds how often an example's text is repeated. Both are checked before anything is rendered.
MAX_TEMPLATE_WIDTH = 200
MAX_TEMPLATE_FIELDS = 20
# Python's format spec: [[fill]align][sign][z][#][0][width][grouping][.precision][type].
_FORMAT_SPEC = re.compile(r"(?:.?[<>=^])?[-+ ]?z?#?0?(?P<width>\d*)[,_]?(?:\.(?P<precision>\d*))?[a-zA-Z%]?", re.DOTALL)


def _check_format_spec(spec: str) -> None:
    """Refuse a spec that holds a field or pads beyond MAX_TEMPLATE_WIDTH, without formatting anything:
    formatting "{input:>10000000000}" to test it would itself allocate the padding."""
    if "{" in spec or "}" in spec:
        # A field inside a format spec would take its spec from an example's text at rendering time.
        raise ValueError("not a valid template: a format spec may not hold a field")
    found = _FORMAT_SPEC.fullmatch(spec)
    if found is None:
        raise ValueError(f"not a valid template: format spec {spec!r} is not one a string takes")
    for part in ("width", "precision"):
        digits = (found.group(part) or "").lstrip("0")  # compared by length first: no int() of a huge number
        if len(digits) > len(str(MAX_TEMPLATE_WIDTH)) or int(digits or 0) > MAX_TEMPLATE_WIDTH:
            shown = digits if len(digits) <= 20 else f"{digits[:20]}..."
            raise ValueError(f"a format spec's {part} may be at most {MAX_TEMPLATE_WIDTH}, not {shown}")


def _difficulty_max_not_below_min(value: int | None, info: ValidationInfo) -> int | None:
    low = info.data.get("difficulty_min")
    if value is not None and low is not None and value < low:
        raise ValueError("may not be below difficulty_min")
    return value


class SelectFilters(BaseModel):
    # The schema states the rule of _max_not_below_min too: no difficulty_max below difficulty_min.
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "not": {
                "required": ["difficulty_min", "difficulty_max"],
                "anyOf": [
                    {
                        "properties": {
                            "difficulty_min": {"const": m},
                            "difficulty_max": {"type": "integer", "maximum": m - 1},
                        }
                    }
                    for m in range(2, 6)
                ],
            }
        },
    )

    # An empty list would match nothing and answer no examples without saying why (as an empty statuses
    # list is refused): leave the filter out to match any.
    topics: list[Topic] | None = Field(None, min_length=1, max_length=100)
    difficulty_min: IntegerOrNull = Field(None, ge=1, le=5)
    difficulty_max: IntegerOrNull = Field(None, ge=1, le=5)
    sources: list[Source] | None = Field(None, min_length=1, max_length=10)
    tags: list[Tag] | None = Field(
        None, min_length=1, max_length=MAX_TAGS, description="Examples with any of these tags."
    )
    min_quality: float | None = Field(None, ge=0, le=5, strict=True, allow_inf_nan=False)
    min_predicted_quality: float | None = Field(
        None,
        ge=0,
        le=1,
        strict=True,
        allow_inf_nan=False,
        description="Only examples the quality model scored at least this P(good); unscored ones are excluded.",
    )
    statuses: list[Status] = Field(default_factory=lambda: list(APPROVED_ONLY), min_length=1, max_length=10)

    _max_not_below_min = field_validator("difficulty_max")(_difficulty_max_not_below_min)


# What `fields` in /v1/select may name: every field of a selected example but its id, which always comes.
SelectableField = Literal[
    "external_id",
    "input",
    "output",
    "steps",
    "topic",
    "difficulty",
    "tags",
    "source",
    "status",
    "quality",
    "metadata",
    "created_at",
    "updated_at",
    "version",
    "utility",
    "score",
    "why",
]
SELECTABLE_FIELDS: tuple[str, ...] = get_args(SelectableField)


class SelectRequest(BaseModel):
    # The schema states the rule of _one_difficulty_preference too: not difficulty="match" with a target.
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "not": {
                "required": ["difficulty", "difficulty_target"],
                "properties": {"difficulty": {"const": "match"}, "difficulty_target": {"type": "integer"}},
            }
        },
    )

    prompt: str = Field(min_length=1, max_length=MAX_INPUT_CHARS, json_schema_extra={"pattern": VISIBLE})
    k: Integer = Field(4, ge=1, le=50)
    strategy: str | None = Field(
        None,
        max_length=32,
        description="stratified | mmr | dpp | coverage | hybrid | knn | random; default the service's.",
        json_schema_extra={"enum": [*STRATEGY_NAMES, None]},
    )
    # strict: JSON true/false is not a number here (integers still are).
    diversity: float | None = Field(
        None, ge=0.0, le=1.0, strict=True, allow_inf_nan=False, description="0 is pure relevance."
    )
    filters: SelectFilters = Field(default_factory=SelectFilters)
    exclude_ids: list[Annotated[str, StringConstraints(max_length=64)]] = Field(default_factory=list, max_length=1000)
    order: Order = "most_similar_last"
    topic_preference: float | None = Field(
        None,
        ge=0.0,
        le=1.0,
        strict=True,
        allow_inf_nan=False,
        description="How strongly to prefer the topic estimated from the prompt's neighbours.",
    )
    difficulty_target: IntegerOrNull = Field(None, ge=1, le=5, description="Prefer examples near this difficulty.")
    difficulty: Literal["match"] | None = Field(
        None, description='"match": prefer the difficulty estimated from the nearest labelled examples.'
    )
    max_tokens: IntegerOrNull = Field(
        None, ge=1, le=200_000, description="Token budget for the chosen examples (input, steps and output)."
    )
    tokenizer: Literal["model", "tiktoken"] = Field(
        "model", description="Count tokens with the embedding model's tokenizer, or tiktoken (cl100k_base)."
    )
    format: Format = "examples"
    template: str = Field(
        DEFAULT_TEMPLATE,
        min_length=1,
        max_length=2000,
        description="For format=text: {input}, {output}, {steps}.",
        json_schema_extra={"pattern": TEMPLATE_PATTERN},
    )
    include_steps: bool = Field(True, description="Fold the steps into the answer (messages and text formats).")
    fields: list[SelectableField] | None = Field(
        None,
        max_length=len(SELECTABLE_FIELDS),
        description="Only these fields of each example are returned (its id always): less to encode, send and "
        "parse when an application needs, say, input and output. All fields when omitted.",
    )
    # At most 2^53 - 1, the largest integer every JSON parser holds exactly: a schema bound of 2^63 - 1 is no
    # double, and schema-driven clients (the fuzzing test's among them) rounded it up past the bound.
    seed: IntegerOrNull = Field(None, ge=0, le=2**53 - 1, description="Seed for the random strategy.")
    utility_weight: float | None = Field(
        None,
        ge=0.0,
        le=5.0,
        strict=True,
        allow_inf_nan=False,
        description="How strongly measured utility (from feedback) moves examples whose interval excludes 0; "
        "0 ignores it; default the service's.",
    )

    _prompt_visible = field_validator("prompt")(require_visible)

    @field_validator("template")
    @classmethod
    def _known_placeholders(cls, value: str) -> str:
        import string

        try:
            parsed = list(string.Formatter().parse(value))
        except ValueError as exc:
            raise ValueError(f"not a valid template: {exc}") from exc
        fields = [(name, spec) for _, name, spec, _ in parsed if name is not None]
        unknown = {name for name, _ in fields} - set(TEMPLATE_FIELDS)
        if unknown:
            raise ValueError(f"unknown placeholder(s) {sorted(unknown)}; use {{input}}, {{output}}, {{steps}}")
        if len(fields) > MAX_TEMPLATE_FIELDS:
            raise ValueError(f"at most {MAX_TEMPLATE_FIELDS} placeholders, this template has {len(fields)}")
        for _, spec in fields:
            _check_format_spec(spec or "")
        try:
            # Safe to render now: every width is small. Catches what strings do not take (a sign, "=", "d").
            value.format(**dict.fromkeys(TEMPLATE_FIELDS, ""))
        except (ValueError, IndexError, KeyError) as exc:
            raise ValueError(f"not a valid template: {exc}") from exc
        return value

    @field_validator("difficulty")
    @classmethod
    def _one_difficulty_preference(cls, value: str | None, info: Any) -> str | None:
        if value is not None and info.data.get("difficulty_target") is not None:
            raise ValueError('give difficulty_target or difficulty="match", not both')
        return value


class Explanation(BaseModel):
    """Why an example was picked."""

    relevance: float = Field(description="Cosine similarity to the prompt.")
    score: float = Field(description="Relevance after the topic and difficulty preferences.")
    redundancy: float = Field(description="Highest similarity to an example picked before it.")
    topic_match: bool | None = Field(description="Whether it is on the prompt's estimated topic.")
    difficulty_gap: float | None = Field(description="Distance from the target difficulty.")
    tokens: int | None = None
    reason: str


class SelectedExample(Example):
    score: float = Field(description="Cosine similarity between the example's input and the prompt.")
    why: Explanation | None = None


class PartialSelectedExample(BaseModel):
    """A selected example cut to the `fields` asked for: its id, and those of the others that were asked for."""

    model_config = ConfigDict(extra="forbid")

    id: str
    external_id: str | None = None
    input: str | None = None
    output: str | None = None
    steps: list[Step] | None = None
    topic: str | None = None
    difficulty: int | None = None
    tags: list[str] | None = None
    source: str | None = None
    status: str | None = None
    quality: float | None = None
    metadata: dict[str, Any] | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    version: int | None = None
    utility: ExampleUtility | None = None
    score: float | None = None
    why: Explanation | None = None


class ChatMessage(BaseModel):
    role: Literal["user", "assistant"]
    content: str


class _SelectAnswer(BaseModel):
    """What every /v1/select answer holds; the two below differ only in how much of each example they carry."""

    examples: Sequence[BaseModel]
    strategy: str
    diversity: float | None = Field(
        None, description="The trade-off the strategy used (stratified, mmr, dpp); null for strategies that ignore it."
    )
    index_version: str
    took_ms: float
    estimated_topic: str | None = None
    difficulty_target: float | None = None
    tokens: int | None = Field(None, description="Tokens of the chosen examples, when a budget was given.")
    messages: list[ChatMessage] | None = Field(None, description="format=messages: user/assistant pairs.")
    text: str | None = Field(None, description="format=text: the examples rendered with the template.")
    selection_id: str | None = Field(
        None, description="Send it to POST /v1/feedback with the outcome; null when the selection was not recorded."
    )


class SelectResponse(_SelectAnswer):
    examples: list[SelectedExample]


class PartialSelectResponse(_SelectAnswer):
    """The answer when the request named `fields`: each example holds its id and those fields only."""

    examples: list[PartialSelectedExample]


@dataclass(frozen=True)
class IndexRow:
    """An example as the index sees it: its vector and the attributes that filters look at."""

    id: str
    embedding: np.ndarray
    topic: str | None
    difficulty: int | None
    source: str
    status: str
    quality: float | None
    tags: tuple[str, ...]
    predicted_quality: float | None = None
    # The bank revision of the row's last change: cached copies of the example are valid while it holds.
    revision: int = 0


# Curation vocabulary the bank stores and returns (re-exported by curation.types).
Choice = Literal["a", "b", "tie", "both_bad"]


class ExampleQuery(BaseModel):
    """Filters for listing and exporting examples (query parameters)."""

    model_config = ConfigDict(extra="forbid")

    topic: list[Topic] | None = Field(None, max_length=100)
    difficulty_min: int | None = Field(None, ge=1, le=5)
    difficulty_max: int | None = Field(None, ge=1, le=5)
    source: list[Literal["curated", "llm", "imported"]] | None = Field(None, max_length=10)
    status: list[Status] | None = Field(None, max_length=10)
    tag: list[Tag] | None = Field(None, max_length=MAX_TAGS, description="Examples with any of these tags.")
    q: str | None = Field(None, min_length=1, max_length=200, description="Text in the input or output.")

    _max_not_below_min = field_validator("difficulty_max")(_difficulty_max_not_below_min)


class HistoryEntry(BaseModel):
    actor: str
    action: str
    changes: dict[str, Any]
    revision: int
    at: datetime


class _PreferenceFields(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prompt: str = Field(min_length=1, max_length=MAX_INPUT_CHARS, json_schema_extra={"pattern": VISIBLE})
    response_a: str = Field(min_length=1, max_length=MAX_INPUT_CHARS, json_schema_extra={"pattern": VISIBLE})
    response_b: str = Field(min_length=1, max_length=MAX_INPUT_CHARS, json_schema_extra={"pattern": VISIBLE})
    metadata: dict[str, Any] = Field(default_factory=dict)

    @field_validator("metadata")
    @classmethod
    def _metadata_small(cls, value: dict[str, Any]) -> dict[str, Any]:
        return check_metadata(value)


class PreferenceCreate(_PreferenceFields):
    """A pair of responses to compare; the stored Preference is not held to require_visible (see there)."""

    _texts_visible = field_validator("prompt", "response_a", "response_b")(require_visible)


class Preference(_PreferenceFields):
    id: str
    created_at: datetime


class PreferenceLabelCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    annotator: Annotator | None = Field(
        None, description="Who chooses; with API keys on, the key's name (another name needs an admin key)."
    )
    choice: Choice
    shown_first: Literal["a", "b"] = Field(description="Which response the annotator was shown first.")
    rationale: str | None = Field(None, max_length=4000)


class PreferenceLabel(PreferenceLabelCreate):
    annotator: Annotator
    id: str
    preference_id: str
    created_at: datetime
