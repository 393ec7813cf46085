"""onnxruntime's MatMulNBits (from `MatMulNBitsQuantizer`, 4-bit, symmetric and asymmetric, blocks of 32
and 128) compiles to HAI's INT4 weight-only MatMul (the i4 weight decoded in the kernel's prologue) and
matches onnxruntime on the same model; 8-bit weights and g_idx are a ConversionError naming the node."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from hai_compiler.compiler import CompileOptions, compile_model
from hai_compiler.large_models import large_mlp
from hai_compiler.onnx_import.converter import ConversionError
from hai_compiler.onnx_import.importer import import_onnx
from hai_compiler.real_models import cache_dir
from ir.quantization import PRECISION_SOURCE_KEY

WIDTH = 512
MS = "com.microsoft"


def nbits_model(block: int, symmetric: bool, bits: int = 4) -> Path:
    """The 4-layer width-512 MLP quantized by MatMulNBitsQuantizer, cached by its inputs."""
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    source = large_mlp("4MB", width=WIDTH, directory=cache_dir() / "models")
    digest = hashlib.sha256(source.read_bytes() + source.with_name(source.name + ".data").read_bytes())
    digest.update(repr((ort.__version__, block, symmetric, bits)).encode())
    target = cache_dir() / "quantized" / f"{source.stem}-nbits-{digest.hexdigest()[:16]}.onnx"
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        quantizer = MatMulNBitsQuantizer(
            onnx.load(source), block_size=block, is_symmetric=symmetric, bits=bits
        )
        quantizer.process()
        partial = target.with_name(target.name + ".tmp")
        onnx.save(quantizer.model.model, partial)
        partial.replace(target)
    return target


@pytest.mark.parametrize("block", [32, 128])
@pytest.mark.parametrize("symmetric", [True, False], ids=["symmetric", "asymmetric"])
def test_matmul_nbits_runs_int4_weight_only_and_matches_onnxruntime(
    block: int, symmetric: bool, tmp_path: Path
) -> None:
    import runtime

    model = nbits_model(block, symmetric)
    assert sum(n.op_type == "MatMulNBits" for n in onnx.load(model).graph.node) == 4
    result = compile_model(model, tmp_path / "m.hai", CompileOptions())
    groups = ["+".join(n.op for n in g.nodes) for g in result.groups]
    assert sum(g.startswith("DequantizeLinear+MatMul") for g in groups) == 4, groups
    weights = [n for g in result.groups for n in g.nodes if n.op == "DequantizeLinear"]
    assert all(w.operands[0].type.dtype.value == "i4" for w in weights)
    assert all(w.annotations.get(PRECISION_SOURCE_KEY) == "imported" for w in weights)
    hai = runtime.load(result.path, threads=2)
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(block)
    for _ in range(3):
        x = rng.standard_normal((1, WIDTH)).astype(np.float32)
        ours, theirs = next(iter(hai.run({"x": x}).values())), session.run(None, {"x": x})[0]
        assert np.abs(ours - theirs).max() / np.abs(theirs).max() <= 1e-2


def nbits_node_model(bits: int, with_g_idx: bool) -> onnx.ModelProto:
    k, n, block = 64, 16, 32
    blob = block * bits // 8
    inits: list[tuple[str, np.ndarray]] = [
        ("b", np.random.default_rng(0).integers(0, 256, (n, k // block, blob)).astype(np.uint8)),
        ("scales", np.full(n * k // block, 0.01, np.float32)),
    ]
    inputs = ["x", "b", "scales"]
    if with_g_idx:
        inits.append(("g_idx", (np.arange(k) // block).astype(np.int32)))
        inputs += ["", "g_idx"]
    node = helper.make_node(
        "MatMulNBits", inputs, ["y"], domain=MS, name="the_nbits", K=k, N=n, bits=bits, block_size=block
    )
    graph = helper.make_graph(
        [node], "nbits", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, k])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, n])],
        [numpy_helper.from_array(a, name) for name, a in inits],
    )  # fmt: skip
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19), helper.make_opsetid(MS, 1)])


def test_matmul_nbits_unpacks_like_onnxruntime() -> None:
    from ir import Interpreter

    model = nbits_node_model(4, with_g_idx=False)
    x = np.random.default_rng(1).standard_normal((1, 64)).astype(np.float32)
    expected = ort.InferenceSession(model.SerializeToString()).run(None, {"x": x})[0]
    actual = next(iter(Interpreter(import_onnx(model)).run({"x": x}).values()))
    np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    "bits, with_g_idx, words", [(8, False, "8-bit"), (4, True, "g_idx")], ids=["8-bit", "g_idx"]
)
def test_unsupported_matmul_nbits_names_the_node(bits: int, with_g_idx: bool, words: str) -> None:
    with pytest.raises(ConversionError, match=rf"the_nbits.*MatMulNBits.*{words}"):
        import_onnx(nbits_node_model(bits, with_g_idx))
