"""`fewshot serve`'s log is one JSON object per line from the first line on, model loading included, so a log
shipper never meets a line it cannot parse."""

from __future__ import annotations

import json
from pathlib import Path

from .served import fewshot_serve


def test_a_start_that_loads_the_pytorch_model_logs_only_json_lines(tmp_path: Path) -> None:
    with fewshot_serve(tmp_path, log_format="json", embedding_backend="torch"):
        pass  # ready, then stopped
    # transformers draws a "Loading weights" progress bar on stderr unless told not to: it would fail here.
    lines = [json.loads(line) for line in (tmp_path / "server.log").read_text().splitlines()]
    assert any(line["message"].startswith("embedding model") for line in lines)
    assert any(line["message"].startswith("ready:") for line in lines)
    # Alembic's announcement of its dialect at every schema check is not in it; a migration that runs is.
    assert not [line for line in lines if line["message"].startswith(("Context impl", "Will assume"))]
    assert any(line["message"].startswith("Running upgrade  -> 0001") for line in lines)
