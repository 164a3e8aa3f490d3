"""The example bank: where examples, their labels and their embeddings are stored."""

from ..models import IndexRow
from .protocol import ExampleBank, ImportCounts
from .sql import SqlBank

__all__ = ["ExampleBank", "ImportCounts", "IndexRow", "SqlBank"]
