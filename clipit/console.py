"""The stderr console, logging helpers and progress bars shared by every long job.

Results go to stdout; everything here writes to stderr. Progress bars are silent when stderr is not a
terminal (CI logs, pipes), so `clipit embed ... > vecs.npy 2> log` stays clean.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TypeVar

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

T = TypeVar("T")

err_console = Console(stderr=True, highlight=False)


def info(message: str) -> None:
    err_console.print(message, markup=False, soft_wrap=True)


def warn(message: str) -> None:
    err_console.print(f"warning: {message}", style="yellow", markup=False, soft_wrap=True)


def progress(*extra_columns, transient: bool = False) -> Progress:
    """A rich progress bar on stderr that is disabled when stderr is not a terminal."""
    return Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        *extra_columns,
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=transient,
        disable=not err_console.is_terminal,
    )


def track(items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
    """Iterate with a progress bar (quiet off-terminal)."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    with progress() as bar:
        task = bar.add_task(description, total=total)
        for item in items:
            yield item
            bar.advance(task)
