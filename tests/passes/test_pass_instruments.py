"""Instruments: print-ir-before/after, dump-ir stages, the timing table, verify-each."""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
from pass_helpers import f32

from ir import Builder, Graph
from ir.parser import read_hir
from passes import Pass, PassContext, PassFailedError, PassManager, parse_pipeline
from passes.instruments import DumpIR, PrintIRAfter, PrintIRBefore, Timing, VerifyEach


def graph_with_work() -> Graph:
    """y = Relu(x) + Neg(c), with a dead node: folding and DCE both change it."""
    graph = Graph()
    x = graph.add_input("x", f32(2))
    c = graph.add_constant("c", np.array([1.0, -2.0], np.float32))
    builder = Builder(graph)
    (r,) = builder.op("Relu", [x], name="r")
    (n,) = builder.op("Neg", [c], name="n")
    builder.op("Abs", [x], name="dead")
    (y,) = builder.op("Add", [r, n], name="y")
    graph.set_outputs([y])
    return graph


PIPELINE = "fold-constants,eliminate-dead-code"


def test_print_ir_after_one_pass_and_before_all() -> None:
    after, before = io.StringIO(), io.StringIO()
    instruments = [PrintIRAfter(["eliminate-dead-code"], after), PrintIRBefore("all", before)]
    PassManager(parse_pipeline(PIPELINE), instruments).run(graph_with_work())
    assert after.getvalue().count("// ----- IR after") == 1
    assert "// ----- IR after eliminate-dead-code (pass 2) -----" in after.getvalue()
    assert "Abs" not in after.getvalue()
    text = before.getvalue()
    assert text.index("IR before fold-constants (pass 1)") < text.index("Neg(") < text.index(
        "IR before eliminate-dead-code (pass 2)"
    )
    assert "Neg(" not in text.split("IR before eliminate-dead-code")[1]  # folded by then


def test_print_ir_matches_aliases() -> None:
    out = io.StringIO()
    PassManager(parse_pipeline("dce"), [PrintIRAfter("dce", out)]).run(graph_with_work())
    assert "IR after eliminate-dead-code" in out.getvalue()


def test_dump_ir_writes_one_numbered_file_per_stage(tmp_path: Path) -> None:
    dump = DumpIR(tmp_path / "stages")
    PassManager(parse_pipeline(PIPELINE), [dump]).run(graph_with_work())
    names = sorted(p.name for p in (tmp_path / "stages").glob("*.hir"))
    assert names == ["00-input.hir", "01-fold-constants.hir", "02-eliminate-dead-code.hir"]
    stages = [read_hir(tmp_path / "stages" / name) for name in names]
    assert [len(g.nodes) for g in stages] == [4, 3, 2]
    assert [p.name for p in dump.written] == names


@dataclasses.dataclass(frozen=True)
class Sleep(Pass):
    name: ClassVar[str] = "sleep"
    seconds: float = 0.0

    def run(self, graph: Graph, ctx: PassContext) -> Graph:
        import time

        time.sleep(self.seconds)
        return graph


def test_timing_table_rows_and_rendering() -> None:
    timing = Timing()
    PassManager([Sleep(seconds=0.02), *parse_pipeline(PIPELINE), Sleep(seconds=0.0)], [timing]).run(
        graph_with_work()
    )
    rows = timing.table()
    assert [(r.index, r.name) for r in rows] == [
        (1, "sleep"), (2, "fold-constants"), (3, "eliminate-dead-code"), (4, "sleep")
    ]
    assert rows[0].seconds >= 0.02 and max(rows, key=lambda r: r.seconds) is rows[0]
    assert timing.total_seconds == pytest.approx(sum(r.seconds for r in rows))
    lines = timing.render().splitlines()
    assert lines[0].split() == ["#", "pass", "time", "(ms)", "share"]
    assert lines[2].split()[:2] == ["2", "fold-constants"]
    assert lines[-1].split()[0] == "total" and lines[-1].endswith("100.0%")
    assert len(lines) == len(rows) + 2


@dataclasses.dataclass(frozen=True)
class Unhook(Pass):
    """Leaves a dangling operand (a value of no graph), which the verifier must catch."""

    name: ClassVar[str] = "unhook"

    def run(self, graph: Graph, ctx: PassContext) -> Graph:
        other = Graph("other")
        graph.nodes.last.set_operand(0, other.add_input("stray", f32(2)))
        return graph


def test_verify_each_instrument_names_the_pass() -> None:
    manager = PassManager([*parse_pipeline("fold-constants"), Unhook()], [VerifyEach()])
    expected = r"pass 'unhook' failed \(passes run before it: fold-constants\)"
    with pytest.raises(PassFailedError, match=expected):
        manager.run(graph_with_work())
