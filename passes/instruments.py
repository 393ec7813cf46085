"""Instruments: observers the pass manager calls around every pass.

Rule: an instrument only looks at the graph (print, dump, time, verify); it
never changes it. `PrintIR` prints before/after chosen passes (or `all`) to a
stream, `DumpIR` writes one numbered `.hir` per stage, `Timing` builds a
per-pass timing table, `VerifyEach` verifies after every pass. Imports only
`ir` and this package (the `.hir` printer is imported when first used).
"""

from __future__ import annotations

import dataclasses
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TextIO

from ir import Graph
from passes.manager import Instrument, Pass, PassFailedError, verify_after_pass


def _print_graph(graph: Graph) -> str:
    from ir.printer import print_graph

    return print_graph(graph)


class PrintIR(Instrument):
    """Prints the graph before and/or after the named passes (`all` for every pass) to `stream`."""

    def __init__(
        self, *, before: Iterable[str] = (), after: Iterable[str] = (), stream: TextIO | None = None
    ) -> None:
        self.before = frozenset(_names(before))
        self.after = frozenset(_names(after))
        self.stream = stream

    def _wants(self, names: frozenset[str], pass_: Pass) -> bool:
        return "all" in names or pass_.name in names or any(a in names for a in pass_.aliases)

    def _emit(self, when: str, index: int, pass_: Pass, graph: Graph) -> None:
        stream = self.stream if self.stream is not None else sys.stderr
        stream.write(f"// ----- IR {when} {pass_.name} (pass {index + 1}) -----\n")
        text = _print_graph(graph)
        stream.write(text if text.endswith("\n") else text + "\n")

    def before_pass(self, index: int, pass_: Pass, graph: Graph) -> None:
        if self._wants(self.before, pass_):
            self._emit("before", index, pass_, graph)

    def after_pass(self, index: int, pass_: Pass, graph: Graph) -> None:
        if self._wants(self.after, pass_):
            self._emit("after", index, pass_, graph)


class PrintIRBefore(PrintIR):
    """`--print-ir-before`: prints the graph before each named pass (`all`: every pass)."""

    def __init__(self, passes: str | Iterable[str], stream: TextIO | None = None) -> None:
        super().__init__(before=_names(passes), stream=stream)


class PrintIRAfter(PrintIR):
    """`--print-ir-after`: prints the graph after each named pass (`all`: every pass)."""

    def __init__(self, passes: str | Iterable[str], stream: TextIO | None = None) -> None:
        super().__init__(after=_names(passes), stream=stream)


def _names(passes: str | Iterable[str]) -> list[str]:
    """Pass names from a list or a comma-separated string."""
    items = passes.split(",") if isinstance(passes, str) else passes
    return [name.strip() for item in items for name in item.split(",") if name.strip()]


class DumpIR(Instrument):
    """Writes `00-input.hir`, then `NN-<pass>.hir` after pass NN, into `directory`."""

    def __init__(self, directory: str | Path, *, save_weights: bool = False) -> None:
        self.directory = Path(directory)
        self.save_weights = save_weights
        self.written: list[Path] = []

    def _write(self, graph: Graph, stem: str) -> None:
        from ir.printer import write_hir

        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f"{stem}.hir"
        write_hir(graph, path, save_weights=self.save_weights)
        self.written.append(path)

    def before_pipeline(self, graph: Graph) -> None:
        self.written = []
        self._write(graph, "00-input")

    def after_pass(self, index: int, pass_: Pass, graph: Graph) -> None:
        self._write(graph, f"{index + 1:02d}-{pass_.name}")


@dataclasses.dataclass(frozen=True)
class PassTiming:
    """How long pass number `index` (1-based) took, in seconds."""

    index: int
    name: str
    seconds: float


class Timing(Instrument):
    """Measures each pass's wall time; `table()` gives the rows, `render()` a plain-text table.

    List it last among the instruments so that it times the pass (and the
    manager's checks of it), not the other instruments.
    """

    def __init__(self) -> None:
        self.rows: list[PassTiming] = []
        self._started = 0.0

    def before_pipeline(self, graph: Graph) -> None:
        self.rows = []

    def before_pass(self, index: int, pass_: Pass, graph: Graph) -> None:
        self._started = time.perf_counter()

    def after_pass(self, index: int, pass_: Pass, graph: Graph) -> None:
        self.rows.append(PassTiming(index + 1, pass_.name, time.perf_counter() - self._started))

    def table(self) -> list[PassTiming]:
        return list(self.rows)

    @property
    def total_seconds(self) -> float:
        return sum(row.seconds for row in self.rows)

    def render(self) -> str:
        """`#  pass  time (ms)  share` rows and a total line, aligned for a terminal."""
        total = self.total_seconds
        width = max([len(r.name) for r in self.rows] + [len("total")])
        lines = [f"{'#':>3}  {'pass':<{width}}  {'time (ms)':>10}  {'share':>6}"]
        for row in self.rows:
            share = row.seconds / total if total > 0 else 0.0
            lines.append(f"{row.index:>3}  {row.name:<{width}}  {row.seconds * 1e3:>10.3f}  {share:>6.1%}")
        lines.append(f"{'':>3}  {'total':<{width}}  {total * 1e3:>10.3f}  {1.0 if self.rows else 0.0:>6.1%}")
        return "\n".join(lines)


class VerifyEach(Instrument):
    """Verifies the graph after every pass; a broken graph fails naming the pass that broke it."""

    def __init__(self) -> None:
        self._ran: list[str] = []

    def before_pipeline(self, graph: Graph) -> None:
        self._ran = []

    def after_pass(self, index: int, pass_: Pass, graph: Graph) -> None:
        try:
            verify_after_pass(graph)
        except Exception as exc:
            raise PassFailedError(pass_.name, self._ran, str(exc)) from exc
        self._ran.append(pass_.name)
