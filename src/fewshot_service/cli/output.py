"""What the CLI draws: progress bars on stderr and titled tables."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

# Messages and progress; stdout carries only what a script would read. No markup: what we print carries the
# bank's text and library messages, where "[postgres]" or "[/x]" would be eaten or crash rich's parser.
err = Console(stderr=True, markup=False)


def plain(text: object) -> Text:
    """text exactly as it is: a topic, an input or a message never read as rich markup."""
    return Text(str(text))


class _RateColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        return Text(f"{task.speed:,.0f}/s" if task.speed else "-/s", style="progress.data.speed")


@contextmanager
def progress(description: str, total: int | None) -> Iterator[Callable[[int], None]]:
    """A progress bar with count, rate and ETA; yields the function that advances it."""
    with progress_steps((description, total)) as (advance,):
        yield advance


@contextmanager
def progress_steps(*steps: tuple[str, int | None]) -> Iterator[tuple[Callable[[int], None], ...]]:
    """One progress bar per step (description, total) in one display; yields their advance functions."""
    columns = [
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        _RateColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
    ]
    with Progress(*columns, console=err, transient=False) as bar:
        tasks = [bar.add_task(description, total=total) for description, total in steps]
        yield tuple(functools.partial(bar.advance, task) for task in tasks)


def table(title: str, columns: Sequence[str], rows: Sequence[Sequence[object]]) -> Table | str:
    """A titled table, or just the title and "none" when there are no rows."""
    if not rows:
        return f"{title}: none"
    drawn = Table(title=plain(title), title_justify="left", show_edge=False, min_width=len(title))
    for column in columns:
        drawn.add_column(column, justify="left" if column in ("topic", "annotator", "question", "day") else "right")
    for row in rows:
        drawn.add_row(*(plain("-" if value is None else value) for value in row))
    return drawn
