"""`fields` in /v1/select names the fields of a selected example: the list must follow the model."""

from __future__ import annotations

from fewshot_service.models import SELECTABLE_FIELDS, PartialSelectedExample, SelectedExample


def test_every_field_of_a_selected_example_but_its_id_can_be_asked_for() -> None:
    # A field added to Example or SelectedExample must be selectable (and cut-able) too.
    assert set(SELECTABLE_FIELDS) == set(SelectedExample.model_fields) - {"id"}
    assert set(PartialSelectedExample.model_fields) == set(SelectedExample.model_fields)
