"""What every command shares: settings and the service built once per invocation, and quiet logging.

The root command puts a `Setup` in the click context; commands reach it through `setup(ctx)`. Tests pass
their own (`CliRunner().invoke(app, args, obj=Setup(build_service=...))`) to reuse a loaded model.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field

import typer

from .. import logs
from ..errors import ConfigurationError, FewshotError
from ..serving.lifecycle import FewshotService
from ..settings import Settings, load_settings, unknown_variables
from .errors import fail
from .output import err


def _default_build(settings: Settings) -> FewshotService:
    from ..api import build_service  # the API package's import graph is paid only by commands that serve

    return build_service(settings)


@dataclass
class Setup:
    """Settings and the service of one invocation, each built on first use."""

    build_service: Callable[[Settings], FewshotService] = _default_build
    verbose: bool = False
    _settings: Settings | None = field(default=None, repr=False)
    _service: FewshotService | None = field(default=None, repr=False)

    def settings(self) -> Settings:
        if self._settings is None:
            try:
                self._settings = load_settings()
            except ConfigurationError as exc:
                raise fail(exc.message) from exc
            for note in unknown_variables():
                err.print(f"warning: {note}", highlight=False, soft_wrap=True)
        return self._settings

    def service(self) -> FewshotService:
        """The service (bank, lazy embedder, index store); its model loads only when a command needs it."""
        if self._service is None:
            try:
                self._service = self.build_service(self.settings())
            except FewshotError as exc:  # a bank that cannot be opened: one line, as from any command's action
                raise fail(exc.message) from exc
        return self._service

    def close(self) -> None:
        if self._service is not None:
            self._service.bank.close()

    def configure_logging(self) -> None:
        """Library lines and the service's INFO lines only with --verbose; warnings and errors always."""
        settings = self.settings()
        if self.verbose:
            logs.configure(settings.log_level, "text")
            return
        quiet = max(logging.getLevelName(settings.log_level), logging.WARNING)
        logs.configure(logging.getLevelName(quiet), "text")
        for handler in logging.getLogger().handlers:
            handler.addFilter(_own_or_error)
        _hide_progress_bars()


def setup(ctx: typer.Context) -> Setup:
    """The invocation's Setup (the root command made it; a command run on its own gets a fresh one)."""
    root = ctx.find_root()
    if not isinstance(root.obj, Setup):
        root.obj = Setup()
    return root.obj


def _own_or_error(record: logging.LogRecord) -> bool:
    """Keep the service's own lines; a library's only when it is an error."""
    return record.name.startswith("fewshot_service") or record.levelno >= logging.ERROR


def _hide_progress_bars() -> None:
    """No "Loading weights" bar: the model loads behind the command's own progress, not beside it."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # read when huggingface_hub is first imported
    if "transformers" in sys.modules:  # already imported (a test session): switch its bars off directly
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
