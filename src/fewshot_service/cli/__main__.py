"""`python -m fewshot_service.cli`: the same as the `fewshot` command."""

from . import app

app()
