"""Enumerated settings come from one source and a bad value names its variable when Settings is built."""

from __future__ import annotations

import pytest

from fewshot_service.errors import ConfigurationError
from fewshot_service.models import STRATEGY_NAMES
from fewshot_service.selection import STRATEGIES
from fewshot_service.settings import load_settings


def test_the_strategy_names_are_the_registrys() -> None:
    assert set(STRATEGY_NAMES) == set(STRATEGIES)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("FEWSHOT_DEFAULT_STRATEGY", "nearest"),
        ("FEWSHOT_EMBEDDING_BACKEND", "cuda"),
        ("FEWSHOT_INDEX_KIND", "annoy"),
        ("FEWSHOT_INDEX_STORAGE", "int4"),
        ("FEWSHOT_LOG_FORMAT", "xml"),
        ("FEWSHOT_LOG_LEVEL", "LOUD"),
    ],
)
def test_a_bad_enumerated_value_is_one_line_naming_the_variable(
    variable: str, value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigurationError) as raised:
        load_settings()
    assert raised.value.message.startswith(f"{variable}: Input should be ")
    assert raised.value.message.endswith(f"(got {value!r})") and "\n" not in raised.value.message
    assert raised.value.field == variable


def test_log_level_is_read_in_any_case(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FEWSHOT_LOG_LEVEL", "debug")
    assert load_settings().log_level == "DEBUG"
