"""The `fewshot` command line: one module per command group."""

from .main import app

__all__ = ["app"]
