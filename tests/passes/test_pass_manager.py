"""The pass manager: order, failure naming, verification after each pass, requires/ensures."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import pytest
from pass_helpers import f32, ops

from ir import Builder, Graph, HaiError
from ir.target_facts import TargetFacts
from passes import Pass, PassContext, PassFailedError, PassManager, parse_pipeline
from passes.eliminate_dead_code import EliminateDeadCode


def small_graph() -> Graph:
    graph = Graph()
    x = graph.add_input("x", f32(2))
    (y,) = Builder(graph).op("Relu", [x], name="y")
    Builder(graph).op("Neg", [x], name="dead")
    graph.set_outputs([y])
    return graph


@dataclasses.dataclass(frozen=True)
class Record(Pass):
    """Appends its tag to the graph's metadata (to check order)."""

    name: ClassVar[str] = "record"
    tag: str = "r"

    def run(self, graph: Graph, ctx: PassContext) -> Graph:
        graph.metadata["order"] = graph.metadata.get("order", "") + self.tag
        ctx.count(self.name, "runs")
        return graph


@dataclasses.dataclass(frozen=True)
class Explode(Pass):
    """Raises, as a buggy pass would."""

    name: ClassVar[str] = "explode"

    def run(self, graph: Graph, ctx: PassContext) -> Graph:
        raise KeyError("boom")


@dataclasses.dataclass(frozen=True)
class BreakTypes(Pass):
    """Sets a wrong result type, leaving a graph the verifier rejects."""

    name: ClassVar[str] = "break-types"

    def run(self, graph: Graph, ctx: PassContext) -> Graph:
        graph.nodes.last.results[0].type = f32(3)
        return graph


@dataclasses.dataclass(frozen=True)
class ReturnsNothing(Pass):
    name: ClassVar[str] = "returns-nothing"

    def run(self, graph: Graph, ctx: PassContext) -> Graph:
        return None  # type: ignore[return-value]


@dataclasses.dataclass(frozen=True)
class FalsePromise(Pass):
    """Claims no dead code without removing any."""

    name: ClassVar[str] = "false-promise"
    ensures: ClassVar[tuple[str, ...]] = ("no-dead-code",)

    def run(self, graph: Graph, ctx: PassContext) -> Graph:
        return graph


@dataclasses.dataclass(frozen=True)
class NeedsTypes(Pass):
    name: ClassVar[str] = "needs-types"
    requires: ClassVar[tuple[str, ...]] = ("types-inferred",)

    def run(self, graph: Graph, ctx: PassContext) -> Graph:
        return graph


def test_passes_run_in_order_and_share_the_context() -> None:
    ctx = PassContext(target=TargetFacts(vector_bytes=32))
    graph = PassManager([Record(tag="a"), Record(tag="b"), EliminateDeadCode()]).run(small_graph(), ctx)
    assert graph.metadata["order"] == "ab"
    assert ops(graph) == ["Relu"]
    assert ctx.statistics["record"] == {"runs": 2}
    assert ctx.target.vector_bytes == 32


def test_a_raising_pass_is_named_with_the_passes_before_it() -> None:
    manager = PassManager([Record(), EliminateDeadCode(), Explode(), Record()])
    with pytest.raises(PassFailedError) as info:
        manager.run(small_graph())
    error = info.value
    assert isinstance(error, HaiError) and isinstance(error.__cause__, KeyError)
    assert error.pass_name == "explode" and error.ran_before == ("record", "eliminate-dead-code")
    assert str(error) == (
        "pass 'explode' failed (passes run before it: record, eliminate-dead-code): 'boom'"
    )


def test_verify_each_catches_a_broken_graph_at_the_pass_that_broke_it() -> None:
    manager = PassManager([Record(), BreakTypes(), Record()], verify_each=True)
    with pytest.raises(PassFailedError, match=(
        r"pass 'break-types' failed \(passes run before it: record\): the graph it left fails "
        r"verification: Neg node 'dead': result 0 is declared f32\[3\]"
    )):
        manager.run(small_graph())
    PassManager([BreakTypes()], verify_each=False).run(small_graph())  # unchecked: no error


def test_a_pass_must_return_a_graph() -> None:
    with pytest.raises(PassFailedError, match="returns-nothing.*returned NoneType, not a Graph"):
        PassManager([ReturnsNothing()]).run(small_graph())


def test_ensures_is_checked_after_the_pass() -> None:
    with pytest.raises(PassFailedError, match=r"'false-promise'.*promised 'no-dead-code'.*Neg node 'dead'"):
        PassManager([FalsePromise()]).run(small_graph())
    PassManager([FalsePromise()], check_conditions=False).run(small_graph())


def test_requires_is_checked_before_the_pass() -> None:
    graph = small_graph()
    graph.value("y").type = f32(5)
    with pytest.raises(PassFailedError, match=r"'needs-types'.*requires 'types-inferred'.*%y"):
        PassManager([NeedsTypes()]).run(graph)
    graph = PassManager(parse_pipeline("infer-shapes") + [NeedsTypes()]).run(graph)  # infer-shapes repairs it
    assert graph.value("y").type == f32(2)


def test_unknown_condition_is_an_error() -> None:
    @dataclasses.dataclass(frozen=True)
    class Typo(Pass):
        name: ClassVar[str] = "typo"
        requires: ClassVar[tuple[str, ...]] = ("shapes-infered",)

    with pytest.raises(PassFailedError, match="unknown pass condition 'shapes-infered'"):
        PassManager([Typo()]).run(small_graph())


def test_pipeline_text_of_a_manager() -> None:
    manager = PassManager(parse_pipeline("fold-constants{max-size=8},dce,fold-constants"))
    assert manager.pipeline_text() == "fold-constants{max-size=8},eliminate-dead-code,fold-constants"


def test_pass_without_run_fails_clearly() -> None:
    @dataclasses.dataclass(frozen=True)
    class Lazy(Pass):
        name: ClassVar[str] = "lazy"

    with pytest.raises(PassFailedError, match="pass 'lazy' does not implement run"):
        PassManager([Lazy()]).run(small_graph())
