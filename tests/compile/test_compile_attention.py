"""Multi-head self-attention as exporters write it compiles to one fused Attention kernel on x86.

The ONNX model: Q, K, V projections, per-head Reshape/Transpose (K to (0, 2, 3, 1)), MatMul, Div by
sqrt(head), an additive key mask, Softmax over the keys, MatMul by V, heads merged back. 13 tokens
(not a whole vector of keys, no tile height divides them). x86 matches onnxruntime (fp32, relative
error <= 1e-4) and runs one `attention` kernel; arm64, whose target does not list Attention, keeps
the batched MatMuls.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import onnx
import pytest
from compile_helpers import assert_matches_onnxruntime
from onnx import TensorProto, helper, numpy_helper

from hai_compiler.compiler import CompileOptions, compile_model

SEQ, DIM, HEADS = 13, 32, 2


def attention_model() -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    head = DIM // HEADS
    inits = [numpy_helper.from_array((rng.standard_normal((DIM, DIM)) * 0.3).astype(np.float32), f"W{n}")
             for n in "qkv"]  # fmt: skip
    inits += [
        numpy_helper.from_array(np.array([1, SEQ, HEADS, head], np.int64), "heads"),
        numpy_helper.from_array(np.array([1, SEQ, DIM], np.int64), "merged"),
        numpy_helper.from_array(np.array(math.sqrt(head), np.float32), "root"),
    ]
    nodes = []
    for n, perm in (("q", [0, 2, 1, 3]), ("k", [0, 2, 3, 1]), ("v", [0, 2, 1, 3])):
        nodes += [
            helper.make_node("MatMul", ["x", f"W{n}"], [f"{n}_lin"]),
            helper.make_node("Reshape", [f"{n}_lin", "heads"], [f"{n}_split"]),
            helper.make_node("Transpose", [f"{n}_split"], [f"{n}_heads"], perm=perm),
        ]
    nodes += [
        helper.make_node("MatMul", ["q_heads", "k_heads"], ["scores"]),
        helper.make_node("Div", ["scores", "root"], ["scaled"]),
        helper.make_node("Add", ["scaled", "mask"], ["masked"]),
        helper.make_node("Softmax", ["masked"], ["probs"], axis=-1),
        helper.make_node("MatMul", ["probs", "v_heads"], ["context"]),
        helper.make_node("Transpose", ["context"], ["context_t"], perm=[0, 2, 1, 3]),
        helper.make_node("Reshape", ["context_t", "merged"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes, "attention",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, SEQ, DIM]),
         helper.make_tensor_value_info("mask", TensorProto.FLOAT, [1, 1, 1, SEQ])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits,
    )  # fmt: skip
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.fixture(scope="module")
def model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("attention") / "attention.onnx"
    onnx.save(attention_model(), str(path))
    return path


def kernel_ops(result) -> list[str]:  # type: ignore[no-untyped-def]
    return [kernel.workload.get("op") for kernel in result.plan.kernels]


def test_attention_is_one_kernel_matching_onnxruntime(model_path: Path, tmp_path: Path) -> None:
    result = compile_model(model_path, tmp_path / "attention.hai", CompileOptions())
    assert kernel_ops(result).count("attention") == 1
    assert "batched_matmul" not in kernel_ops(result)
    rng = np.random.default_rng(1)
    mask = np.where(rng.random((1, 1, 1, SEQ)) < 0.3, -10000.0, 0.0).astype(np.float32)
    feeds = {"x": rng.standard_normal((1, SEQ, DIM)).astype(np.float32), "mask": mask}
    assert_matches_onnxruntime(result.path, model_path, feeds)


def test_a_target_without_the_kernel_keeps_the_matmuls(model_path: Path, tmp_path: Path) -> None:
    result = compile_model(model_path, tmp_path / "attention.hai", CompileOptions(target="arm64"))
    assert "attention" not in kernel_ops(result)
    assert kernel_ops(result).count("batched_matmul") == 2
