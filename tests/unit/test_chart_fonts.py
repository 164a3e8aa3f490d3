"""Charts draw topics in Chinese, Japanese and Korean with a font that has their glyphs, when the machine has
one (.ci/run and the Docker image install WenQuanYi Micro Hei): DejaVu Sans alone drew them as empty boxes."""

from __future__ import annotations

import warnings

import pytest

from fewshot_service.bank.stats_sql import CellCount
from fewshot_service.monitoring import charts
from fewshot_service.monitoring.charts import CHARTS, font_families, render_chart

CELLS = [
    CellCount("数学", 1, "curated", "approved", 3),
    CellCount("日本語の読解", 2, "llm", "approved", 2),
    CellCount("한국어", 3, "curated", "approved", 1),
]


def missing_glyph_warnings(name: str) -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        render_chart(name, CELLS, coverage_target=5)
    return [str(w.message) for w in caught if "missing from font" in str(w.message)]


@pytest.mark.skipif(len(font_families()) == 1, reason="no CJK font on this machine (.ci/run installs one)")
@pytest.mark.parametrize("name", list(CHARTS))
def test_cjk_topics_are_drawn_with_a_font_that_has_them(name: str) -> None:
    assert missing_glyph_warnings(name) == []


def test_without_the_fallback_the_glyphs_are_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    """What the test above guards against: DejaVu Sans alone has no CJK glyph, and matplotlib says so."""
    monkeypatch.setattr(charts, "font_families", lambda: ("DejaVu Sans",))
    assert any("数" in message or "6570" in message for message in missing_glyph_warnings("source_mix"))
