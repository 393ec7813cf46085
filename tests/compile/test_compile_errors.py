"""Clear errors from the compile driver: every op without a lowering listed at once, a bad --cpu, and
a plan whose kernels would read clobbered bytes caught before an artifact is written."""

from __future__ import annotations

from pathlib import Path

import pytest
from compile_helpers import small_model

from hai_compiler.compiler import CompileOptions, UnsupportedOpsError, compile_model
from ir import DType, Graph, TensorType
from targets.lowering import dispatch, registry
from targets.plan.hazards import Access, PlanHazardError, StepAccesses, check_plan
from targets.target import TargetError


def test_every_op_without_lowering_is_listed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dispatch.supported_ops()  # load the template families, then hide two of them
    for op in ("Gemm", "Relu"):
        monkeypatch.delitem(registry.LOWERINGS, op)
    model = small_model(tmp_path / "small.onnx")
    with pytest.raises(UnsupportedOpsError) as info:
        compile_model(model, tmp_path / "out.hai", CompileOptions())
    message = str(info.value)
    assert "2 node(s) use ops with no x86 lowering yet: Gemm, Relu" in message
    assert "Gemm: 1 node(s): 'fc'" in message and "Relu: 1 node(s): 'relu'" in message
    assert not (tmp_path / "out.hai").exists()


def test_unknown_cpu_is_a_target_error(tmp_path: Path) -> None:
    model = small_model(tmp_path / "small.onnx")
    with pytest.raises(TargetError, match="does not know the x86 cpu 'pentium-9000'"):
        compile_model(model, tmp_path / "out.hai", CompileOptions(cpu="pentium-9000"))


def test_hazard_check_catches_a_read_of_overwritten_bytes() -> None:
    graph = Graph("g")
    f32 = TensorType(DType.F32, (16,))
    x, a, b = (graph.add_input(name, f32) for name in ("x", "a", "b"))
    inputs = [Access(x, 0, 64)]
    writes_a = StepAccesses("k0", (Access(x, 0, 64),), (Access(a, 64, 64),))
    clobbers_a = StepAccesses("k1", (Access(x, 0, 64),), (Access(b, 64, 64),))
    reads_a = StepAccesses("k2", (Access(a, 64, 64),), (Access(b, 128, 64),))
    check_plan(inputs, [writes_a, reads_a], [Access(b, 128, 64)])
    with pytest.raises(PlanHazardError, match="step 2 .* reads %a .* hold %b"):
        check_plan(inputs, [writes_a, clobbers_a, reads_a], [Access(b, 128, 64)])
    overwrite = StepAccesses("k3", (Access(x, 0, 64),), (Access(a, 0, 64),))  # not declared in place
    with pytest.raises(PlanHazardError, match="over its operand %x"):
        check_plan(inputs, [overwrite], [])
