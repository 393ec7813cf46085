"""The pass framework: `Pass`, `PassContext`, `Instrument` and the `PassManager` that runs them.

Rule: a pass is a frozen dataclass with a `name`, typed options and one
`run(graph, ctx) -> graph`; the manager runs a list of them in order, checks
each pass's `requires`/`ensures` conditions, optionally verifies the IR after
every pass, calls the instruments around each one, and turns any failure into a
`PassFailedError` that names the pass and the passes that ran before it.
Imports only `ir` and this package.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, ClassVar

from ir import Graph, HaiError, verify
from ir.devices import DeviceSet
from ir.target_facts import TargetFacts
from passes.conditions import check_condition


class PassFailedError(HaiError):
    """A pass raised, broke a condition or left a graph that fails verification."""

    def __init__(self, pass_name: str, ran_before: Sequence[str], message: str) -> None:
        self.pass_name = pass_name
        self.ran_before = tuple(ran_before)
        self.reason = message
        before = ", ".join(self.ran_before) if self.ran_before else "none"
        super().__init__(f"pass '{pass_name}' failed (passes run before it: {before}): {message}")


@dataclasses.dataclass(frozen=True)
class Diagnostic:
    """A note or warning a pass reports without failing."""

    severity: str
    pass_name: str
    message: str

    def __str__(self) -> str:
        return f"{self.severity}: {self.pass_name}: {self.message}"


@dataclasses.dataclass
class PassContext:
    """What passes share besides the graph: target facts (plain data), diagnostics, statistics.

    `target` (ir/target_facts.py) is filled by the driver from `targets/` (ISA features, vector
    width, precisions, devices and costs); passes read it and never import `targets/`;
    `TargetFacts()` (the default) knows no target.
    `statistics[pass_name][counter]` counts what each pass did. `devices` (ir/devices.py) are the
    devices and cost models a multi-device target splits a graph over (None: a single device);
    `results[pass_name]` is what a pass leaves for the report (the `partition` pass's summary).
    """

    target: TargetFacts = dataclasses.field(default_factory=TargetFacts)
    diagnostics: list[Diagnostic] = dataclasses.field(default_factory=list)
    statistics: dict[str, dict[str, int]] = dataclasses.field(default_factory=dict)
    devices: DeviceSet | None = None
    results: dict[str, Any] = dataclasses.field(default_factory=dict)

    def count(self, pass_name: str, counter: str, amount: int = 1) -> None:
        """Add `amount` to a pass's statistic `counter`."""
        stats = self.statistics.setdefault(pass_name, {})
        stats[counter] = stats.get(counter, 0) + amount

    def warn(self, pass_name: str, message: str) -> None:
        self.diagnostics.append(Diagnostic("warning", pass_name, message))

    def note(self, pass_name: str, message: str) -> None:
        self.diagnostics.append(Diagnostic("note", pass_name, message))


@dataclasses.dataclass(frozen=True)
class Pass:
    """Base of every pass: a frozen dataclass whose fields are its options.

    Subclasses set `name` (the pipeline spelling; `aliases` are other accepted
    spellings), may list condition names in
    `requires` (checked before the pass runs) and `ensures` (checked after), give
    every option a default and a `help` in its field metadata, and implement `run`.
    """

    name: ClassVar[str] = ""
    aliases: ClassVar[tuple[str, ...]] = ()
    requires: ClassVar[tuple[str, ...]] = ()
    ensures: ClassVar[tuple[str, ...]] = ()

    def run(self, graph: Graph, ctx: PassContext) -> Graph:
        raise NotImplementedError(f"pass '{self.name}' does not implement run()")

    @classmethod
    def options(cls) -> dict[str, dataclasses.Field[Any]]:
        """The pass's options by pipeline spelling (dashes for underscores)."""
        return {f.name.replace("_", "-"): f for f in dataclasses.fields(cls)}

    @classmethod
    def summary(cls) -> str:
        """The first line of the pass's docstring."""
        return (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""

    def pipeline_text(self) -> str:
        """This pass as a pipeline element; options that differ from their defaults are spelled out."""
        changed = [
            f"{spelling}={format_option(getattr(self, f.name))}"
            for spelling, f in self.options().items()
            if getattr(self, f.name) != _default_of(f)
        ]
        return self.name + ("{" + " ".join(changed) + "}" if changed else "")


def _default_of(f: dataclasses.Field[Any]) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


def format_option(value: Any) -> str:
    """An option value in pipeline syntax (the inverse of the pipeline parser's conversion)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(format_option(v) for v in value) + "]"
    if isinstance(value, str):
        plain = value and all(c.isalnum() or c in "_.-+/:" for c in value)
        return value if plain else '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return repr(value)


class Instrument:
    """Hooks around a pipeline run; subclasses override the ones they need.

    The manager calls `before_pass` hooks in list order and `after_pass` hooks in
    reverse order, so an instrument listed last sits closest to the pass (where
    a timer belongs).
    """

    def before_pipeline(self, graph: Graph) -> None:
        """Called once with the input graph."""

    def before_pass(self, index: int, pass_: Pass, graph: Graph) -> None:
        """Called before pass number `index` (0-based) runs."""

    def after_pass(self, index: int, pass_: Pass, graph: Graph) -> None:
        """Called after pass number `index` ran and its graph was checked."""

    def after_pipeline(self, graph: Graph) -> None:
        """Called once with the final graph."""


class PassManager:
    """Runs passes in order with instruments, condition checks and optional verification."""

    def __init__(
        self,
        passes: Sequence[Pass],
        instruments: Sequence[Instrument] = (),
        *,
        verify_each: bool = False,
        check_conditions: bool = True,
    ) -> None:
        self.passes = list(passes)
        self.instruments = list(instruments)
        self.verify_each = verify_each
        self.check_conditions = check_conditions

    def pipeline_text(self) -> str:
        return ",".join(p.pipeline_text() for p in self.passes)

    def run(self, graph: Graph, ctx: PassContext | None = None) -> Graph:
        """Run every pass on `graph`; returns the final graph."""
        ctx = ctx if ctx is not None else PassContext()
        for instrument in self.instruments:
            instrument.before_pipeline(graph)
        ran: list[str] = []
        for index, pass_ in enumerate(self.passes):
            graph = self._run_one(index, pass_, graph, ctx, ran)
            ran.append(pass_.name)
        for instrument in self.instruments:
            instrument.after_pipeline(graph)
        return graph

    def _run_one(self, index: int, pass_: Pass, graph: Graph, ctx: PassContext, ran: list[str]) -> Graph:
        for instrument in self.instruments:
            instrument.before_pass(index, pass_, graph)
        if self.check_conditions:
            for condition in pass_.requires:
                self._checked(pass_.name, ran, lambda c=condition: _require(graph, c))
        result = self._checked(pass_.name, ran, lambda: pass_.run(graph, ctx))
        if not isinstance(result, Graph):
            raise PassFailedError(pass_.name, ran, f"run() returned {type(result).__name__}, not a Graph")
        if self.verify_each:
            self._checked(pass_.name, ran, lambda: verify_after_pass(result))
        if self.check_conditions:
            for condition in pass_.ensures:
                self._checked(pass_.name, ran, lambda c=condition: _ensure(result, c))
        for instrument in reversed(self.instruments):  # nested like contexts: first in, last out
            instrument.after_pass(index, pass_, result)
        return result

    @staticmethod
    def _checked(pass_name: str, ran: list[str], action: Any) -> Any:
        try:
            return action()
        except PassFailedError:
            raise
        except Exception as exc:  # a pass's bug or a user's bad graph: name the pass either way
            raise PassFailedError(pass_name, ran, str(exc) or type(exc).__name__) from exc


def _require(graph: Graph, condition: str) -> None:
    problem = check_condition(graph, condition)
    if problem:
        raise HaiError(f"requires '{condition}', which does not hold: {problem}")


def _ensure(graph: Graph, condition: str) -> None:
    problem = check_condition(graph, condition)
    if problem:
        raise HaiError(f"promised '{condition}', which does not hold afterwards: {problem}")


def verify_after_pass(graph: Graph) -> None:
    """Verify the graph a pass left; the error says that the pass broke it."""
    try:
        verify(graph)
    except HaiError as exc:
        raise HaiError(f"the graph it left fails verification: {exc}") from exc
