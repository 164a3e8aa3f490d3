"""One error tree: every exception class the package defines derives from FewshotError."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import fewshot_service
from fewshot_service.errors import FewshotError

# Optional extras and the migration scripts (run by Alembic, not imported) are not part of the walk; the client
# ships as its own distribution with its own tree (FewshotAPIError: what a server answered), tested in test_client.
SKIPPED = ("fewshot_service.migrations.", "fewshot_service.cli.__main__", "fewshot_service.client")


def test_every_exception_class_is_in_the_tree() -> None:
    outside = []
    for module_info in pkgutil.walk_packages(fewshot_service.__path__, "fewshot_service."):
        if module_info.name.startswith(SKIPPED):
            continue
        module = importlib.import_module(module_info.name)
        for name, value in vars(module).items():
            if (
                inspect.isclass(value)
                and issubclass(value, BaseException)
                and value.__module__ == module.__name__
                and not issubclass(value, FewshotError)
            ):
                outside.append(f"{module.__name__}.{name}")
    assert outside == []
