"""Progress bars for long work, on stderr, so --json output on stdout stays clean."""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from typing import Any, Callable, Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


def enabled() -> bool:
    """Bars are drawn on a terminal only (a log gets no half-drawn bars); VIBESET_PROGRESS=0 turns them off."""
    return os.environ.get("VIBESET_PROGRESS", "1") != "0" and sys.stderr.isatty()


@contextmanager
def status(description: str) -> Iterator[Callable[[str], None]]:
    """A spinner for a phase of unknown length; yields ``update(text)`` to rename the phase."""
    if not enabled():
        yield lambda text: None
        return
    with Console(stderr=True).status(description) as spinner:
        yield lambda text: spinner.update(text)


@contextmanager
def progress_bar(total: int | None, description: str, *, detail: bool = False) -> Iterator[Callable[..., None]]:
    """Yield an ``advance(n=1, *, total=None, detail=None)`` callback that drives a rich bar
    (a no-op when disabled).

    ``total`` None means the amount of work is not known up front: the bar counts and shows
    the elapsed time instead of an ETA; ``advance(0, total=N)`` sets it later. With ``detail``
    the bar ends in a line of text the caller updates (rate, tokens, cost, retries, failures).
    """
    if not enabled() or total == 0:
        yield lambda *args, **kwargs: None
        return
    clock = TimeElapsedColumn() if total is None else TimeRemainingColumn()
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), clock)
    columns += (TextColumn("{task.fields[detail]}"),) if detail else ()
    with Progress(*columns, console=Console(stderr=True), transient=True) as progress:
        task = progress.add_task(description, total=total, detail="")

        def advance(n: int = 1, *, total: int | None = None, detail: str | None = None) -> None:
            changes: dict[str, Any] = {"total": total} if total is not None else {}
            if detail is not None:
                changes["detail"] = detail
            progress.update(task, advance=n, **changes)

        yield advance
