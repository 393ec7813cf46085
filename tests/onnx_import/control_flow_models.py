"""Small ONNX models with If, Loop and Scan, built with onnx.helper for the control-flow tests."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 16
F32 = TensorProto.FLOAT


def model(graph: onnx.GraphProto, opset: int = OPSET) -> onnx.ModelProto:
    built = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    built.ir_version = 8
    onnx.checker.check_model(built)
    return built


def _out(name: str, rank: int, elem: int = F32) -> onnx.ValueInfoProto:
    """An output of a known rank whose dimensions are left symbolic."""
    return helper.make_tensor_value_info(name, elem, [f"{name}_{i}" for i in range(rank)])


def _const(name: str, array: np.ndarray) -> onnx.NodeProto:
    return helper.make_node("Constant", [], [name], value=numpy_helper.from_array(np.asarray(array), name))


def if_on_shape() -> onnx.ModelProto:
    """y = Squeeze(x, 0) if x.shape[0] == 1 else Identity — a shape test, as exporters write it."""
    then_branch = helper.make_graph(
        [_const("axes", np.array([0], np.int64)), helper.make_node("Squeeze", ["x", "axes"], ["t"])],
        "then",
        [],
        [_out("t", 1)],
    )
    else_branch = helper.make_graph([helper.make_node("Identity", ["x"], ["e"])], "else", [], [_out("e", 2)])
    nodes = [
        helper.make_node("Shape", ["x"], ["shape"]),
        _const("zero", np.array(0, np.int64)),
        _const("one", np.array(1, np.int64)),
        helper.make_node("Gather", ["shape", "zero"], ["dim0"]),
        helper.make_node("Equal", ["dim0", "one"], ["is_one"]),
        helper.make_node(
            "If", ["is_one"], ["s"], name="squeeze_if", then_branch=then_branch, else_branch=else_branch
        ),
        helper.make_node("Relu", ["s"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "if_on_shape",
        [helper.make_tensor_value_info("x", F32, ["n", 4])],
        [_out("y", 1)],
    )
    return model(graph)


def if_on_data(else_shape: tuple[int, ...] = (2, 3)) -> onnx.ModelProto:
    """y = (x * 2 if sum(x) > 0 else x - w) + 1: the condition is computed from the input's values;
    `else_shape` other than x's makes the branches' shapes differ."""
    w = np.arange(np.prod(else_shape), dtype=np.float32).reshape(else_shape)
    then_branch = helper.make_graph(
        [_const("two", np.array(2, np.float32)), helper.make_node("Mul", ["x", "two"], ["t"])],
        "then",
        [],
        [_out("t", 2)],
    )
    else_branch = helper.make_graph(
        [_const("w", w), helper.make_node("Sub", ["x", "w"], ["e"]) if else_shape == (2, 3) else
         helper.make_node("Identity", ["w"], ["e"])],
        "else",
        [],
        [_out("e", len(else_shape))],
    )  # fmt: skip
    nodes = [
        helper.make_node("ReduceSum", ["x"], ["total"], keepdims=0),
        _const("zero", np.array(0, np.float32)),
        helper.make_node("Greater", ["total", "zero"], ["positive"]),
        helper.make_node(
            "If", ["positive"], ["chosen"], name="data_if", then_branch=then_branch, else_branch=else_branch
        ),
        _const("one", np.array(1, np.float32)),
        helper.make_node("Add", ["chosen", "one"], ["y"]),
    ]  # fmt: skip
    graph = helper.make_graph(
        nodes,
        "if_on_data",
        [helper.make_tensor_value_info("x", F32, [2, 3])],
        [_out("y", 2)],
    )
    return model(graph)


def loop(
    trip_count: int | None = 4,
    scan_output: bool = True,
    by_row: bool = True,
    stop_after: int | None = None,
    growing: bool = False,
) -> onnx.ModelProto:
    """acc = 0; for i in range(M): acc = acc * 0.5 + x[i] (a Slice by the iteration number; the mean
    row of x instead when not `by_row`), the running acc stacked as a scan output; M a constant, or
    the graph input `m` when None; with `stop_after` the body's condition is i < stop_after (the loop
    runs stop_after + 1 times); `growing` sums the rows x[i : 2i + 1] instead (a slice whose length
    only the iteration number decides)."""
    row = [
        _const("one_i", np.array([1], np.int64)),
        _const("zero_axis", np.array([0], np.int64)),
        helper.make_node("Unsqueeze", ["i", "zero_axis"], ["start"]),
        helper.make_node("Add", ["start", "one_i"], ["end"]),
        helper.make_node("Slice", ["x", "start", "end", "zero_axis"], ["row"]),
    ]
    if growing:
        row[3] = helper.make_node("Add", ["start", "start"], ["twice"])
        row[4:] = [helper.make_node("Add", ["twice", "one_i"], ["end"]),
                   helper.make_node("Slice", ["x", "start", "end", "zero_axis"], ["rows"]),
                   helper.make_node("ReduceSum", ["rows", "zero_axis"], ["row"], keepdims=1)]  # fmt: skip
    if not by_row:
        row = [helper.make_node("ReduceMean", ["x"], ["row"], axes=[0], keepdims=1)]
    body_nodes = [
        *row,
        _const("half", np.array(0.5, np.float32)),
        helper.make_node("Mul", ["acc_in", "half"], ["scaled"]),
        helper.make_node("Add", ["scaled", "row"], ["acc_out"]),
        *(
            [helper.make_node("Identity", ["cond_in"], ["cond_out"])]
            if stop_after is None
            else [
                _const("stop", np.array(stop_after, np.int64)),
                helper.make_node("Less", ["i", "stop"], ["cond_out"]),
            ]
        ),
        helper.make_node("Identity", ["acc_out"], ["acc_scan"]),
    ]
    outputs = [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
               _out("acc_out", 2)]  # fmt: skip
    if scan_output:
        outputs.append(_out("acc_scan", 2))
    body = helper.make_graph(
        body_nodes,
        "body",
        [helper.make_tensor_value_info("i", TensorProto.INT64, []),
         helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
         _out("acc_in", 2)],
        outputs,
    )  # fmt: skip
    inputs = [helper.make_tensor_value_info("x", F32, [6, 3])]
    nodes = [_const("first", np.zeros((1, 3), np.float32))]
    if trip_count is None:
        inputs.append(helper.make_tensor_value_info("m", TensorProto.INT64, []))
    else:
        nodes.append(_const("m", np.array(trip_count, np.int64)))
    results = ["final", "stacked"] if scan_output else ["final"]
    nodes.append(helper.make_node("Loop", ["m", "", "first"], results, name="accumulate", body=body))
    graph = helper.make_graph(nodes, "loop", inputs, [_out(n, 2 if n == "final" else 3) for n in results])
    return model(graph)


def scan(length: int = 5, reverse: int = 0) -> onnx.ModelProto:
    """A running sum over the rows of x (state s, scan input x along axis 0) that also stacks each
    step's s * w along axis 1: Scan-9+ semantics with a reversed input when `reverse`."""
    body = helper.make_graph(
        [helper.make_node("Add", ["s_in", "row"], ["s_out"]),
         _const("w", np.array([1.0, -2.0, 0.5], np.float32)),
         helper.make_node("Mul", ["s_out", "w"], ["weighted"])],
        "body",
        [helper.make_tensor_value_info("s_in", F32, [3]), helper.make_tensor_value_info("row", F32, [3])],
        [helper.make_tensor_value_info("s_out", F32, [3]),
         helper.make_tensor_value_info("weighted", F32, [3])],
    )  # fmt: skip
    node = helper.make_node(
        "Scan", ["s0", "x"], ["s_final", "steps"], name="running_sum", body=body,
        num_scan_inputs=1, scan_input_directions=[reverse], scan_output_axes=[1],
    )  # fmt: skip
    graph = helper.make_graph(
        [node],
        "scan",
        [helper.make_tensor_value_info("s0", F32, [3]), helper.make_tensor_value_info("x", F32, [length, 3])],
        [helper.make_tensor_value_info("s_final", F32, [3]), _out("steps", 2)],
    )
    return model(graph)


def if_with_convs(seed: int = 0) -> onnx.ModelProto:
    """y = relu(conv(x)) -> If(mean > 0) { conv, relu, add } else { conv, sigmoid, mul } -> + x:
    branches of several kernels each (conv layouts, fused epilogues, reused arena bytes)."""
    rng = np.random.default_rng(seed)

    def weight(name: str, *shape: int) -> onnx.NodeProto:
        return _const(name, (rng.standard_normal(shape) * 0.3).astype(np.float32))

    def conv(x: str, w: str, y: str) -> onnx.NodeProto:
        return helper.make_node("Conv", [x, w], [y], pads=[1, 1, 1, 1])

    then_branch = helper.make_graph(
        [weight("w_then", 4, 4, 3, 3), conv("h", "w_then", "t1"), helper.make_node("Relu", ["t1"], ["t2"]),
         helper.make_node("Add", ["t2", "h"], ["t"])],
        "then", [], [_out("t", 4)],
    )  # fmt: skip
    else_branch = helper.make_graph(
        [weight("w_else", 4, 4, 3, 3), conv("h", "w_else", "e1"), helper.make_node("Sigmoid", ["e1"], ["e2"]),
         helper.make_node("Mul", ["e2", "h"], ["e"])],
        "else", [], [_out("e", 4)],
    )  # fmt: skip
    nodes = [
        weight("w0", 4, 3, 3, 3),
        conv("x", "w0", "c0"),
        helper.make_node("Relu", ["c0"], ["h"]),
        helper.make_node("ReduceMean", ["x"], ["m"], keepdims=0),
        _const("zero", np.array(0, np.float32)),
        helper.make_node("Greater", ["m", "zero"], ["positive"]),
        helper.make_node("If", ["positive"], ["chosen"], name="branch", then_branch=then_branch,
                         else_branch=else_branch),
        helper.make_node("Neg", ["chosen"], ["y"]),
    ]  # fmt: skip
    graph = helper.make_graph(
        nodes, "if_with_convs", [helper.make_tensor_value_info("x", F32, [1, 3, 8, 8])], [_out("y", 4)]
    )
    return model(graph)
