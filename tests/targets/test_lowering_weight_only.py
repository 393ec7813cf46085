"""Weight-only INT4 (group-wise) and FP16 layers: the anchor's kernel reads the stored weight and
dequantises it inside, against the IR interpreter (which dequantises by ir/quantization.py) within 1e-4.

Each case is one Conv / MatMul / Gemm layer quantized by the `quantize` pass and
grouped by `fuse` (the DequantizeLinear of the stored weight becomes the group's
weight prologue), lowered from the group, built, and run on the weights its
`pack_weights` stored: INT4 as two values a byte plus float32 group scales, FP16
as float16. Cases cover every template family a quantized layer can reach:
dense conv (spatial, pointwise 1x1, rows, 1x1-spatial decoded at use), depthwise,
packed GEMM (MatMul M = 1 decoded at use and M > 1 through a scratch stage,
Gemm transB), and the general conv template (grouped conv).
"""

from __future__ import annotations

import numpy as np
import pytest
from target_helpers import OneOp, relative_error

from ir import DType, TensorType, run_graph
from ir.fusion import GROUP_KEY, PROLOGUE_KEY, kernels
from passes.fuse import Fuse
from passes.manager import PassContext
from passes.quantize import Quantize, layers, read_through_dequantize, reduction_axis
from passes.weight_quantization import quantize_groupwise
from runtime.kernel_library import aligned_empty, kernel_function, kernel_tensor, load_kernel_module
from targets.build import build_kernels
from targets.lowering import weight_only
from targets.lowering.dispatch import lower_node
from targets.lowering.kernel import LoweredKernel
from targets.lowering.weight_only import two_per_byte
from targets.registry import resolve_target

TOLERANCE = 1e-4
PRECISIONS = ("int4", "fp16")


@pytest.fixture(scope="module")
def target():
    return resolve_target("x86")


def conv_layer(x_shape, w_shape, pads=(0, 0, 0, 0), stride=1, group=1, relu=True):
    def build(g: OneOp) -> None:
        x, w, b = g.input("x", x_shape), g.const("w", w_shape), g.const("b", (w_shape[0],))
        attrs = {"strides": [stride, stride], "pads": list(pads), "dilations": [1, 1], "group": group}
        conv = g.op("Conv", [x, w, b], "conv", **attrs)
        if relu:
            g.op("Relu", [conv.results[0]], "relu")

    return build


def matmul_layer(x_shape, w_shape):
    def build(g: OneOp) -> None:
        g.op("MatMul", [g.input("x", x_shape), g.const("w", w_shape)], "matmul")

    return build


def gemm_layer(x_shape, w_shape, trans_b):
    def build(g: OneOp) -> None:
        n = w_shape[0] if trans_b else w_shape[1]
        x, w, b = g.input("x", x_shape), g.const("w", w_shape), g.const("b", (n,))
        g.op("Gemm", [x, w, b], "gemm", transB=int(trans_b))

    return build


LAYERS = {
    "conv-spatial": conv_layer((1, 40, 8, 16), (24, 40, 3, 3), pads=(1, 1, 1, 1)),
    "conv-pointwise": conv_layer((1, 48, 6, 6), (40, 48, 1, 1)),
    "conv-rows-strided": conv_layer((1, 8, 14, 14), (16, 8, 3, 3), pads=(1, 1, 1, 1), stride=2),
    "conv-1x1-spatial": conv_layer((1, 72, 1, 1), (48, 72, 1, 1), relu=False),
    "depthwise": conv_layer((1, 16, 10, 10), (16, 1, 3, 3), pads=(1, 1, 1, 1), group=16),
    "grouped-conv": conv_layer((1, 16, 6, 6), (8, 8, 3, 3), pads=(1, 1, 1, 1), group=2),
    "matmul-m1": matmul_layer((1, 100), (100, 48)),
    "matmul-m12": matmul_layer((12, 64), (64, 40)),
    "gemm-transb": gemm_layer((3, 70), (24, 70), trans_b=True),
}


def quantized(layer: str, precision: str) -> OneOp:
    g = OneOp(seed=sorted(LAYERS).index(layer))
    LAYERS[layer](g)
    g.graph.outputs.append(list(g.graph.nodes)[-1].results[0])
    if layer == "depthwise" and precision == "int4":
        store_int4(g)  # the pass keeps depthwise convs (a 1-long reduction axis) out of INT4
    else:
        Quantize(precision=precision, group_size=32).run(g.graph, PassContext())
    Fuse().run(g.graph, PassContext())
    return g


def store_int4(g: OneOp) -> None:
    """The layer's weight stored INT4, one scale per weight (groups of 1 along the reduction axis)."""
    (node,) = layers(g.graph)
    weight = node.operands[1]
    q = quantize_groupwise(weight.constant_array(), reduction_axis(node), 1)
    read_through_dequantize(g.graph, node, (q.values, TensorType(q.dtype, weight.type.shape, quant=q.params)))


def run(kernel: LoweredKernel, g: OneOp, target) -> np.ndarray:
    """Build and call `kernel` on aligned buffers: inputs from the feeds, weights as it packed them."""
    library = build_kernels([kernel], target)
    fn = kernel_function(load_kernel_module(library), str(library), kernel.name)
    packed = kernel.pack_weights(
        {a.value: g.graph.constants[a.value].constant_array() for a in kernel.weights}
    )
    arrays = []
    for a in kernel.args:
        buf = aligned_empty(a.shape, a.dtype)
        if a.role == "input":
            buf[...] = g.feeds[a.value].reshape(a.shape)
        elif a.role == "weight":
            buf[...] = packed[a.key].reshape(a.shape)
        arrays.append(buf)
    fn(*[kernel_tensor(x, i, kernel.name) for i, x in enumerate(arrays)])
    return arrays[-1]


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("layer", sorted(LAYERS))
def test_stored_weight_is_dequantised_in_the_kernel(layer, precision, target) -> None:  # type: ignore[no-untyped-def]
    g = quantized(layer, precision)
    (group,) = kernels(g.graph)
    assert [n.op for n in group.prologue] == ["DequantizeLinear"]
    assert group.prologue[0].results[0] in group.intermediates
    stored = group.prologue[0].operands[0]
    kernel = lower_node(group.anchor, target, group.epilogue)
    weights = {(a.key, a.dtype) for a in kernel.weights}
    if precision == "int4":
        assert {(stored.name, "uint8"), (f"{stored.name}:scales", "float32")} <= weights
    else:
        assert (stored.name, "float16") in weights
    assert all(a.dtype != "float32" or a.part or a.value != stored.name for a in kernel.weights)
    got = run(kernel, g, target)
    want = run_graph(g.graph, g.feeds)[g.graph.outputs[0].name]
    assert np.abs(want).max() > 0
    assert relative_error(got.reshape(want.shape), want) <= TOLERANCE


def test_int4_packing_stores_two_values_a_byte_low_nibble_first() -> None:
    values = np.array([[-8, 7, -1], [0, 3, -2]], np.int8)
    packed = two_per_byte(values, 1)
    assert packed.dtype == np.uint8 and packed.shape == (2, 2)
    assert packed.tolist() == [[0x78, 0x0F], [0x30, 0x0E]]


def test_weight_prologue_is_annotated_and_needs_a_lone_use() -> None:
    g = quantized("matmul-m1", "int4")
    prologue = next(n for n in g.graph.nodes if n.op == "DequantizeLinear")
    assert prologue.annotations[PROLOGUE_KEY] == "matmul"
    assert (weight_only.PROLOGUE_KEY, weight_only.GROUP_KEY) == (PROLOGUE_KEY, GROUP_KEY)  # read by key
    assert prologue.operands[0].type.dtype is DType.I4
    # A dequantized weight that a second node also reads stays out of the group.
    x = g.graph.inputs[0]
    g.builder.op("MatMul", [x, prologue.results[0]], {}, name="second")
    Fuse().run(g.graph, PassContext())
    assert PROLOGUE_KEY not in prologue.annotations
