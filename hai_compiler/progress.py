"""Progress of a long command's stages on stderr: a live rich display on a terminal, one plain line per
stage otherwise (a pipe, a CI log).

Rule: library code marks each stage that may take a while with `with stage("building kernels", total=N)
as advance:` and calls `advance(item)` after each of its N items; nothing shows unless a command opened
`reporting()` around its work, so the Python API stays quiet. Off a terminal, a stage gets its line
once it has run QUIET_SECONDS, so a short command (and its one `error:` line) prints nothing else.
Compile, quantize and calibration all report through this one mechanism.
"""

from __future__ import annotations

import contextlib
import contextvars
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, Protocol, TextIO

QUIET_SECONDS = 1.0
"""How long a stage runs before LineStages prints its line."""
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
    """One line per stage that runs QUIET_SECONDS, with the time since the command began when the stage
    started: `[    3.2 s] compiling kernels (69)`."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.started = time.perf_counter()
        self.lock = threading.Lock()

    def __enter__(self) -> LineStages:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    @contextlib.contextmanager
    def stage(self, name: str, total: int | None) -> Iterator[Advance]:
        count = f" ({total})" if total is not None else ""
        line = f"[{time.perf_counter() - self.started:7.1f} s] {name}{count}\n"
        if QUIET_SECONDS <= 0:
            self.write(line)
            yield _ignore
            return
        timer = threading.Timer(QUIET_SECONDS, self.write, (line,))
        timer.daemon = True
        timer.start()
        try:
            yield _ignore
        finally:
            timer.cancel()

    def write(self, line: str) -> None:
        with self.lock:
            self.stream.write(line)
            self.stream.flush()


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
