"""Progress of a long command's stages on stderr: a live rich display on a terminal, one plain line per
stage otherwise (a pipe, a CI log).

Rule: library code marks each stage that may take a while with `with stage("building kernels", total=N)
as advance:` and calls `advance(item)` after each of its N items; nothing shows unless a command opened
`reporting()` around its work, so the Python API stays quiet. Compile, quantize and calibration all
report through this one mechanism.
"""

from __future__ import annotations

import contextlib
import contextvars
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any, Protocol, TextIO

Advance = Callable[[str], None]
"""Called after each item of a counted stage, with the item's name ('' when it has none)."""


class Stages(Protocol):
    """How a command shows its stages (RichStages on a terminal, LineStages elsewhere)."""

    def stage(self, name: str, total: int | None) -> contextlib.AbstractContextManager[Advance]: ...


_REPORTER: contextvars.ContextVar[Stages | None] = contextvars.ContextVar("hai_progress", default=None)


def _ignore(item: str = "") -> None:
    return None


@contextlib.contextmanager
def stage(name: str, total: int | None = None) -> Iterator[Advance]:
    """Mark the stage `name` (of `total` items, when counted) while the block runs."""
    reporter = _REPORTER.get()
    if reporter is None:
        yield _ignore
        return
    with reporter.stage(name, total) as advance:
        yield advance


@contextlib.contextmanager
def reporting(stream: TextIO | None = None) -> Iterator[None]:
    """Show the stages marked inside the block on `stream` (stderr): live on a terminal, else as lines."""
    stream = stream if stream is not None else sys.stderr
    reporter: Any = RichStages(stream) if stream.isatty() else LineStages(stream)
    token = _REPORTER.set(reporter)
    try:
        with reporter:
            yield
    finally:
        _REPORTER.reset(token)


class LineStages:
    """One line per stage as it starts: `[   3.2 s] building kernels (69)`, the time since the command began."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.started = time.perf_counter()

    def __enter__(self) -> LineStages:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    @contextlib.contextmanager
    def stage(self, name: str, total: int | None) -> Iterator[Advance]:
        count = f" ({total})" if total is not None else ""
        self.stream.write(f"[{time.perf_counter() - self.started:7.1f} s] {name}{count}\n")
        self.stream.flush()
        yield _ignore


class RichStages:
    """A transient rich display: a spinner and the elapsed time per running stage, a bar when counted."""

    def __init__(self, stream: TextIO) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
        )

        self.progress = Progress(
            SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), TextColumn("{task.fields[item]}"), console=Console(file=stream),
            transient=True,
        )  # fmt: skip

    def __enter__(self) -> RichStages:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    @contextlib.contextmanager
    def stage(self, name: str, total: int | None) -> Iterator[Advance]:
        task = self.progress.add_task(name, total=total, item="")

        def advance(item: str = "") -> None:
            self.progress.update(task, advance=1, item=item)

        try:
            yield advance
        finally:
            self.progress.remove_task(task)
