"""PNG charts of the bank's shape, drawn with matplotlib for people who would rather look than read.

Figures are built with matplotlib's object API on the Agg canvas (no pyplot: no global figure state, no
GUI backend), at a fixed size and dpi and saved without ``bbox_inches="tight"``, so every chart is exactly
CHART_WIDTH × CHART_HEIGHT pixels. Rendering is serialised by a lock: matplotlib's text and font caches
are shared by all figures and not documented as thread-safe, and the API renders in a thread pool.
"""

from __future__ import annotations

import functools
import io
import logging
import math
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from typing import get_args

from matplotlib import font_manager, rc_context

# The Agg canvas is used directly, so matplotlib's global backend (pyplot's) is never selected or touched.
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ..bank.stats_sql import CellCount
from ..models import Source
from .stats import DIFFICULTIES

DPI = 100
CHART_WIDTH, CHART_HEIGHT = 1000, 600  # pixels
MAX_TOPICS = 30  # beyond this the labels no longer fit; the largest topics are drawn
SOURCES: tuple[Source, ...] = get_args(Source)
SOURCE_COLOURS: dict[Source, str] = {"curated": "#4C72B0", "llm": "#DD8452", "imported": "#55A868"}
_LOCK = threading.Lock()
# Fonts with Chinese, Japanese and Korean glyphs, tried after matplotlib's DejaVu Sans (which has none) for
# each character a topic holds: "数学" drew as empty boxes. Whichever the machine has is used (the Docker
# image installs WenQuanYi Micro Hei); with none, charts draw as before.
CJK_FONTS = ("WenQuanYi Micro Hei", "Noto Sans CJK JP", "Noto Sans CJK SC", "Source Han Sans", "Droid Sans Fallback",
             "IPAGothic", "Unifont")  # fmt: skip
# CJK fonts rarely come in bold: matplotlib then logs a warning for each bold label ("Failed to find font
# weight bold") and draws it in the regular weight, which is what we want; the service is its only user here.
logging.getLogger("matplotlib.font_manager").setLevel(logging.ERROR)

# name -> (title, statuses drawn by default; None = every live example)
CHARTS: dict[str, tuple[str, frozenset[str] | None]] = {
    "topic_difficulty": ("Examples per topic × difficulty", frozenset({"approved"})),
    "difficulty_by_topic": ("Difficulty histogram per topic", frozenset({"approved"})),
    "source_mix": ("Source mix per topic", None),
}


@functools.cache
def font_families() -> tuple[str, ...]:
    """DejaVu Sans, then the CJK fonts this machine has. matplotlib lists the system's fonts once and caches
    the list on disk, so a font installed since (say by the image build, after a first import) is not in it:
    the system's font files are then read once more and the new ones added, for this process."""
    known = {font.name for font in font_manager.fontManager.ttflist}
    if not known.intersection(CJK_FONTS):
        listed = {font.fname for font in font_manager.fontManager.ttflist}
        for path in font_manager.findSystemFonts():
            if path not in listed:
                try:
                    font_manager.fontManager.addfont(path)
                except (OSError, RuntimeError, ValueError):  # a font file FreeType cannot read is skipped
                    continue
        known = {font.name for font in font_manager.fontManager.ttflist}
    return ("DejaVu Sans", *(name for name in CJK_FONTS if name in known))


def _describe(statuses: frozenset[str] | None) -> str:
    return "all live examples" if statuses is None else " + ".join(sorted(statuses)) + " examples"


def _topic_label(topic: str | None) -> str:
    return "(no topic)" if topic is None else topic


def _topics(cells: Sequence[CellCount]) -> list[str | None]:
    """Topics, largest first, at most MAX_TOPICS."""
    totals: Counter[str | None] = Counter()
    for cell in cells:
        totals[cell.topic] += cell.n
    ranked = sorted(totals, key=lambda t: (-totals[t], _topic_label(t)))
    return ranked[:MAX_TOPICS]


def _empty(figure: Figure, title: str) -> None:
    axes = figure.add_subplot()
    axes.set_axis_off()
    axes.text(0.5, 0.5, "no examples yet", ha="center", va="center", fontsize=16, color="grey")
    figure.suptitle(title)


def _topic_difficulty(figure: Figure, cells: Sequence[CellCount], title: str, target: int) -> None:
    """Heatmap of counts; cells under the coverage target are written in red."""
    topics = sorted(_topics(cells), key=_topic_label)
    counts = [[0] * len(DIFFICULTIES) for _ in topics]
    for cell in cells:
        if cell.topic in topics and cell.difficulty in DIFFICULTIES:
            counts[topics.index(cell.topic)][DIFFICULTIES.index(cell.difficulty)] += cell.n
    axes = figure.add_subplot()
    image = axes.imshow(counts, cmap="Blues", aspect="auto", vmin=0)
    axes.set_xticks(range(len(DIFFICULTIES)), [str(d) for d in DIFFICULTIES])
    axes.set_yticks(range(len(topics)), [_topic_label(t) for t in topics], fontsize=8 if len(topics) > 15 else 10)
    axes.set_xlabel("difficulty")
    peak = max((max(row) for row in counts), default=0)
    for y, row in enumerate(counts):
        for x, value in enumerate(row):
            light = value > peak * 0.6
            colour = "#C00000" if value < target else ("white" if light else "black")
            axes.text(x, y, str(value), ha="center", va="center", color=colour, fontsize=8 if len(topics) > 15 else 10,
                      fontweight="bold" if value < target else "normal")  # fmt: skip
    figure.colorbar(image, ax=axes, label="examples")
    figure.suptitle(f"{title} (red: under the target of {target})")


def _difficulty_by_topic(figure: Figure, cells: Sequence[CellCount], title: str, target: int) -> None:
    """Small multiples: one bar chart of difficulties 1-5 per topic, on a shared y axis."""
    topics = _topics(cells)
    columns = min(5, len(topics))
    rows = math.ceil(len(topics) / columns)
    grid = figure.subplots(rows, columns, sharex=True, sharey=True, squeeze=False)
    for n, axes in enumerate(grid.flat):
        if n >= len(topics):
            axes.set_axis_off()
            continue
        heights = [sum(c.n for c in cells if c.topic == topics[n] and c.difficulty == d) for d in DIFFICULTIES]
        axes.bar(DIFFICULTIES, heights, color="#4C72B0")
        axes.axhline(target, color="#C00000", linestyle="--", linewidth=0.8)
        axes.set_title(_topic_label(topics[n]), fontsize=8 if rows > 3 else 10)
        axes.set_xticks(DIFFICULTIES)
        axes.tick_params(labelsize=7)
    figure.suptitle(f"{title} (dashed: coverage target {target})")


def _source_mix(figure: Figure, cells: Sequence[CellCount], title: str, target: int) -> None:
    """Horizontal stacked bars: examples per topic by source."""
    del target  # same signature as the other charts
    topics = list(reversed(_topics(cells)))  # largest at the top
    axes = figure.add_subplot()
    left = [0] * len(topics)
    for source in SOURCES:
        widths = [sum(c.n for c in cells if c.topic == t and c.source == source) for t in topics]
        labels = [_topic_label(t) for t in topics]
        axes.barh(labels, widths, left=left, color=SOURCE_COLOURS[source], label=source)
        left = [a + b for a, b in zip(left, widths, strict=True)]
    axes.tick_params(axis="y", labelsize=8 if len(topics) > 15 else 10)
    axes.set_xlabel("examples")
    axes.margins(x=0.02)
    figure.legend(loc="outside right upper", title="source")  # beside the bars, never over them
    figure.suptitle(title)


_DRAW: dict[str, Callable[[Figure, Sequence[CellCount], str, int], None]] = {
    "topic_difficulty": _topic_difficulty,
    "difficulty_by_topic": _difficulty_by_topic,
    "source_mix": _source_mix,
}


def render_chart(
    name: str, cells: Sequence[CellCount], *, coverage_target: int, statuses: Sequence[str] | None = None
) -> bytes:
    """The named chart (a key of CHARTS) as PNG bytes, CHART_WIDTH × CHART_HEIGHT pixels.

    statuses: the examples drawn; by default the chart's own (approved for coverage, all for the source mix).
    """
    base_title, default_statuses = CHARTS[name]
    chosen = frozenset(statuses) if statuses else default_statuses
    drawn = [c for c in cells if chosen is None or c.status in chosen]
    title = f"{base_title}: {_describe(chosen)}"
    with _LOCK, rc_context({"font.family": list(font_families())}):
        figure = Figure(figsize=(CHART_WIDTH / DPI, CHART_HEIGHT / DPI), dpi=DPI, layout="constrained")
        FigureCanvasAgg(figure)
        if sum(c.n for c in drawn) == 0:
            _empty(figure, title)
        else:
            _DRAW[name](figure, drawn, title, coverage_target)
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()
