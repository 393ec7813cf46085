"""The `fuse` pass on small hand-made graphs: which nodes group, the annotations, and plan-memory after it.

The interpreter is the reference for "nothing changed" (annotations carry no
semantics); a simulated arena in which every kernel (a whole fusion group) reads
its operands and then writes only its final result checks the memory plan.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import numpy as np
import pytest
from pass_helpers import check_pass, random_inputs

from ir import Graph, Value, run_graph
from ir.aliasing import is_view
from ir.fusion import FusionError, epilogue_ops, kernels, read_fusion
from ir.ops.registry import get_schema
from ir.parser import parse_hir
from ir.printer import print_graph
from ir.target_facts import TargetFacts
from passes import PassContext, PassManager, parse_pipeline
from passes.memory_check import MemoryPlanError, check_memory_plan

X4 = "(%x: f32[1,2,4,4]) -> (%y)"
W = """
  %w = constant f32[2,2,1,1] dense<[0.5, -1.0, 2.0, 0.25]>
  %b = constant f32[1,2,1,1] dense<[0.5, -0.5]>
  %b1 = constant f32[2] dense<[0.25, -0.75]>"""
CONV_BIAS_RELU = (
    W
    + """
  %c = Conv(%x, %w) : f32[1,2,4,4] loc("conv1")
  %a = Add(%c, %b) : f32[1,2,4,4] loc("bias1")
  %y = Relu(%a) : f32[1,2,4,4] loc("relu1")
  return %y"""
)


CONV_ATTRS = "{dilations = [1, 1], group = 1, pads = [0, 0, 0, 0], strides = [1, 1]}"


def hir(body: str, signature: str = X4) -> Graph:
    """A graph from its body; every Conv gets the attributes of a plain 1x1 convolution."""
    body = re.sub(r"= Conv\((.*?)\) :", rf"= Conv(\1) {CONV_ATTRS} :", body)
    return parse_hir(f"graph @main{signature} {{\n{body}\n}}\n")


def fused(graph: Graph) -> Graph:
    return check_pass(graph, "fuse")[0]


def groups(graph: Graph) -> list[list[str]]:
    """Each fusion group as its node names, anchor first."""
    return [list(g.sources) for g in read_fusion(graph).groups]


def test_conv_bias_relu_is_one_kernel() -> None:
    graph = fused(hir(CONV_BIAS_RELU))
    assert groups(graph) == [["conv1", "bias1", "relu1"]]
    conv, bias, relu = graph.nodes
    assert conv.annotations == {"fusion_group": 0}
    assert bias.annotations == relu.annotations == {"fusion_group": 0, "fused_into": "conv1"}
    assert [k.sources for k in kernels(graph)] == [("conv1", "bias1", "relu1")]


def test_matmul_bias_residual_sigmoid() -> None:
    graph = fused(
        hir(
            """
  %w = constant f32[4,4] dense<[1.0, 0.5, 0.0, -1.0, 2.0, 1.0, 0.5, 0.0, 0.0, 0.25, 1.0, 1.0, -0.5, 0.0,
    0.0, 1.0]>
  %b = constant f32[4] dense<[0.5, -0.5, 0.25, 0.0]>
  %r = Neg(%x) : f32[3,4] loc("residual")
  %m = MatMul(%x, %w) : f32[3,4] loc("mm")
  %a = Add(%m, %b) : f32[3,4] loc("bias")
  %s = Add(%r, %a) : f32[3,4] loc("res")
  %y = Sigmoid(%s) : f32[3,4] loc("sig")
  return %y""",
            "(%x: f32[3,4]) -> (%y)",
        )
    )
    assert groups(graph) == [["mm", "bias", "res", "sig"]]
    assert [k.sources for k in kernels(graph)] == [("residual",), ("mm", "bias", "res", "sig")]


def test_a_value_read_twice_inside_the_group_fuses() -> None:
    graph = fused(
        hir(
            W
            + """
  %c = Conv(%x, %w) : f32[1,2,4,4] loc("conv1")
  %r = Relu(%c) : f32[1,2,4,4] loc("relu1")
  %e = Exp(%r) : f32[1,2,4,4] loc("exp1")
  %n = Neg(%e) : f32[1,2,4,4] loc("neg1")
  %y = Mul(%r, %n) : f32[1,2,4,4] loc("mul1")
  return %y"""
        )
    )
    # %r has two readers, both in the group: one kernel, as for SiLU's x * sigmoid(x)
    assert groups(graph) == [["conv1", "relu1", "exp1", "neg1", "mul1"]]
    assert [k.sources for k in kernels(graph)] == [("conv1", "relu1", "exp1", "neg1", "mul1")]


SILU = """
  %c = Conv(%x, %w) : f32[1,2,4,4] loc("conv1")
  %s = Sigmoid(%c) : f32[1,2,4,4] loc("sigmoid1")
  %y = Mul(%c, %s) : f32[1,2,4,4] loc("silu1")"""


def test_silu_fuses_into_its_conv() -> None:
    graph = fused(hir(W + SILU + "\n  return %y"))
    assert groups(graph) == [["conv1", "sigmoid1", "silu1"]]


def test_a_second_use_outside_the_group_ends_the_epilogue() -> None:
    """The conv's result is also read by another conv: the conv stays alone; Sigmoid+Mul runs as a
    standalone chain (its Mul reads the conv's result, which exists before the Sigmoid)."""
    graph = fused(
        hir(
            W
            + SILU
            + """
  %d = Conv(%c, %w) : f32[1,2,4,4] loc("conv2")
  %z = Add(%y, %d) : f32[1,2,4,4] loc("sum")
  return %z""",
            "(%x: f32[1,2,4,4]) -> (%z)",
        )
    )
    assert groups(graph) == [["sigmoid1", "silu1"], ["conv2", "sum"]]


def test_an_intermediate_read_outside_is_reported() -> None:
    text = print_graph(fused(hir(W + SILU + "\n  return %y")))
    broken = text.replace("return %y", "%z = Neg(%s) : f32[1,2,4,4]\n  return %y, %z")
    broken = broken.replace("-> (%y)", "-> (%y, %z)")
    with pytest.raises(FusionError, match="is read outside the group"):
        read_fusion(parse_hir(broken))


def test_graph_output_ends_the_chain() -> None:
    graph = fused(
        hir(
            W
            + """
  %c = Conv(%x, %w) : f32[1,2,4,4] loc("conv1")
  %r = Relu(%c) : f32[1,2,4,4] loc("relu1")
  %y = Neg(%r) : f32[1,2,4,4] loc("neg1")
  return %r, %y""",
            "(%x: f32[1,2,4,4]) -> (%r, %y)",
        )
    )
    assert groups(graph) == [["conv1", "relu1"]]


def test_a_shape_change_ends_the_chain() -> None:
    graph = fused(
        hir(
            """
  %w = constant f32[4,2] dense<[1.0, 0.5, 0.0, -1.0, 2.0, 1.0, 0.5, 0.0]>
  %m = MatMul(%x, %w) : f32[1,2] loc("mm")
  %r = Relu(%m) : f32[1,2] loc("relu")
  %y = Add(%r, %z) : f32[3,2] loc("grow")
  return %y""",
            "(%x: f32[1,4], %z: f32[3,2]) -> (%y)",
        )
    )
    assert groups(graph) == [["mm", "relu"]]


def test_non_fusable_ops_stay_alone() -> None:
    graph = fused(
        hir(
            """
  %s = Softmax(%x) {axis = 1} : f32[2,3] loc("softmax")
  %t = Transpose(%s) {perm = [1, 0]} : f32[3,2] loc("transpose")
  %y = Reshape(%t) {shape = [6]} : f32[6] loc("view")
  return %y""",
            "(%x: f32[2,3]) -> (%y)",
        )
    )
    assert groups(graph) == []
    assert all(not node.annotations for node in graph.nodes)
    assert [k.sources for k in kernels(graph)] == [("softmax",), ("transpose",)]  # the view has none


def test_fusable_ops_come_from_the_target() -> None:
    ctx = PassContext(target=TargetFacts(fusable_ops=frozenset({"Relu"})))
    graph = PassManager(parse_pipeline("fuse")).run(hir(CONV_BIAS_RELU), ctx)
    assert groups(graph) == []  # the bias Add is not fusable for this target: the chain never starts
    ctx = PassContext(target=TargetFacts(fusable_ops=frozenset({"Add"}), fusion_anchors=frozenset()))
    graph = PassManager(parse_pipeline("fuse")).run(hir(CONV_BIAS_RELU), ctx)
    assert groups(graph) == []  # no anchors, and Add(conv, b)'s result is read by a non-fusable Relu
    graph = PassManager(parse_pipeline("fuse{standalone-chains=false}")).run(
        hir('%a = Exp(%x) : f32[1,2,4,4] loc("e")\n  %y = Neg(%a) : f32[1,2,4,4]\n  return %y')
    )
    assert groups(graph) == []


def test_residual_computed_after_the_anchor_is_not_fused_but_the_chain_moves() -> None:
    graph = fused(
        hir(
            W
            + """
  %c = Conv(%x, %w) : f32[1,2,4,4] loc("conv1")
  %r = Neg(%x) : f32[1,2,4,4] loc("late")
  %a = Add(%c, %b) : f32[1,2,4,4] loc("bias1")
  %y = Add(%a, %r) : f32[1,2,4,4] loc("res1")
  return %y"""
        )
    )
    assert groups(graph) == [["conv1", "bias1"]]
    assert [n.name for n in graph.nodes] == ["conv1", "bias1", "late", "res1"]  # bias1 moved up


def test_default_fusable_ops_are_the_x86_epilogue_ops() -> None:
    pytest.importorskip("tvm")
    from targets.lowering.elementwise import BINARY, UNARY

    assert set(epilogue_ops()) <= set(UNARY) | set(BINARY)


def test_annotations_round_trip_through_hir() -> None:
    graph = fused(hir(CONV_BIAS_RELU))
    text = print_graph(graph)
    assert '%y = Relu(%a) : f32[1,2,4,4] loc("relu1") #{fused_into = "conv1", fusion_group = 0}' in text
    parsed = parse_hir(text)
    assert print_graph(parsed) == text
    assert groups(parsed) == [["conv1", "bias1", "relu1"]]


def test_a_broken_group_is_reported() -> None:
    text = print_graph(fused(hir(CONV_BIAS_RELU))).replace('fused_into = "conv1", fusion_group = 0}', "}", 1)
    with pytest.raises(FusionError, match="fusion group 0"):
        read_fusion(parse_hir(text))


# -- plan-memory after fuse -------------------------------------------------------
def run_kernels_in_arena(graph: Graph, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Outputs computed kernel by kernel in one garbage-filled arena: a kernel reads its operands from
    their offsets, computes its group, and writes only its final result at its offset."""
    size = int(graph.metadata["memory.arena_bytes"])
    arena = np.random.default_rng(1).integers(0, 256, size, dtype=np.uint8)
    outside: dict[Value, np.ndarray] = {}

    def at(value: Value) -> np.ndarray:
        assert value.type.offset is not None, f"%{value.name} has no offset"
        raw = arena[value.type.offset : value.type.offset + value.type.nbytes]
        return raw.view(value.type.dtype.numpy).reshape(value.type.shape)

    def read(value: Value) -> np.ndarray:
        if value.is_constant:
            return value.constant_array()
        return outside[value] if value.type.offset is None else at(value).copy()

    for value in graph.inputs:
        outside[value] = np.asarray(inputs[value.name])
    for node in graph.nodes:  # a view outside the arena is its (input or constant) operand's data
        if is_view(node) and node.results[0].type.offset is None:
            outside[node.results[0]] = read(node.operands[0]).reshape(node.results[0].type.shape)
    for kernel in kernels(graph):
        local: dict[Value, np.ndarray] = {}
        for node in kernel.nodes:
            args = [local[o] if o in local else read(o) for o in node.operands]
            (local[node.results[0]],) = get_schema(node.op).compute(args, node.attrs)
        at(kernel.result)[...] = local[kernel.result]
    return {v.name: read(v) for v in graph.outputs}


def plan(graph: Graph, pipeline: str) -> tuple[Graph, dict[str, int]]:
    inputs = random_inputs(graph)
    graph, ctx = check_pass(graph, pipeline)
    check_memory_plan(graph)
    simulated = run_kernels_in_arena(graph, inputs)
    for name, want in run_graph(graph, inputs).items():
        np.testing.assert_allclose(simulated[name], want, rtol=1e-6, err_msg=name)
    return graph, ctx.statistics["plan-memory"]


RESIDUAL_BLOCK = (
    W
    + """
  %x1 = Relu(%x) : f32[1,2,4,4] loc("pre")
  %c = Conv(%x1, %w) : f32[1,2,4,4] loc("conv1")
  %a = Add(%c, %b) : f32[1,2,4,4] loc("bias1")
  %r = Relu(%a) : f32[1,2,4,4] loc("relu1")
  %c2 = Conv(%r, %w, %b1) : f32[1,2,4,4] loc("conv2")
  %s = Add(%c2, %x1) : f32[1,2,4,4] loc("res2")
  %y = Relu(%s) : f32[1,2,4,4] loc("relu2")
  return %y"""
)


@pytest.mark.parametrize("in_place", ["true", "false"])
def test_fused_intermediates_get_no_offset_and_the_arena_does_not_grow(in_place: str) -> None:
    plain, plain_stats = plan(hir(RESIDUAL_BLOCK), f"plan-memory{{in-place={in_place}}}")
    graph, stats = plan(hir(RESIDUAL_BLOCK), f"fuse,plan-memory{{in-place={in_place}}}")
    assert groups(graph) == [["conv1", "bias1", "relu1"], ["conv2", "res2", "relu2"]]
    offsets = {v.name: v.type.offset for n in graph.nodes for v in n.results}
    assert offsets["c"] is offsets["a"] is offsets["c2"] is offsets["s"] is None
    assert None not in (offsets["x1"], offsets["r"], offsets["y"])
    assert stats["fused"] == 4 and stats["arena-bytes"] <= plain_stats["arena-bytes"]
    assert stats["naive-bytes"] < plain_stats["naive-bytes"]


def test_no_in_place_over_what_the_anchor_reads() -> None:
    # relu2's result may not overwrite %x1: conv2 (the anchor) reads %x1 around every index.
    graph, _ = plan(
        hir(
            W
            + """
  %x1 = Relu(%x) : f32[1,2,4,4] loc("pre")
  %c = Conv(%x1, %w) : f32[1,2,4,4] loc("conv")
  %s = Add(%c, %x1) : f32[1,2,4,4] loc("res")
  %y = Relu(%s) : f32[1,2,4,4] loc("relu")
  return %y"""
        ),
        "fuse,plan-memory",
    )
    assert graph.value("y").type.offset != graph.value("x1").type.offset


def test_standalone_chain_writes_in_place() -> None:
    graph, stats = plan(
        hir(
            """
  %a2 = Abs(%x) : f32[16] loc("abs")
  %a = Exp(%x) : f32[16] loc("e1")
  %b = Neg(%a) : f32[16] loc("n1")
  %c = Mul(%b, %a2) : f32[16] loc("m1")
  %y = Relu(%c) : f32[16] loc("r1")
  return %y""",
            "(%x: f32[16]) -> (%y)",
        ),
        "fuse,plan-memory",
    )
    assert groups(graph) == [["e1", "n1", "m1", "r1"]]
    assert graph.value("y").type.offset == graph.value("a2").type.offset  # %a2 dies in the kernel
    assert stats["in-place"] == 1


def test_checker_rejects_an_offset_on_a_fused_intermediate() -> None:
    graph, _ = plan(hir(CONV_BIAS_RELU), "fuse,plan-memory")
    graph.value("a").type = graph.value("a").type.with_(offset=0)
    with pytest.raises(MemoryPlanError, match="inside a fused kernel"):
        check_memory_plan(graph)
