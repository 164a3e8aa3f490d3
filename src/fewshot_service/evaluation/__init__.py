"""Selection quality on real data sets (issue 5): loaders, metrics, an in-process runner, tables."""

from .datasets import DATASETS, Dataset, DatasetError, EvalQuery, load_dataset, sample_queries
from .metrics import Labels, QueryScores, Summary, aggregate, score_query
from .runner import Evaluation, RunResult, RunSpec

__all__ = [
    "DATASETS", "Dataset", "DatasetError", "EvalQuery", "Evaluation", "Labels", "QueryScores", "RunResult",
    "RunSpec", "Summary", "aggregate", "load_dataset", "sample_queries", "score_query",
]  # fmt: skip
