"""The `fewshot` command line through Typer's runner on real temporary files."""
