"""Helpers of the compile tests: a small ONNX model that exercises the plan's corner cases,
comparing a compiled artifact with onnxruntime on the same inputs, and a plan edit no check sees."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from hai_compiler.accuracy import relative_error

TOLERANCE = 1e-4  # DESIGN.md: fp32 relative error against onnxruntime


def small_model(path: Path, seed: int = 0, channels: int = 3) -> Path:
    """Conv -> Transpose -> Relu+Add (fused, in place over the transpose; after the Conv it would be
    the Conv's epilogue) -> Flatten (a view) -> Gemm, plus two outputs without a kernel of their own:
    a constant (`k`, copied) and a view of the input (`xf`); the input has `channels` channels."""
    rng = np.random.default_rng(seed)

    def weight(name: str, *shape: int, scale: float = 0.3) -> onnx.TensorProto:
        return numpy_helper.from_array((rng.standard_normal(shape) * scale).astype(np.float32), name)

    nodes = [
        helper.make_node("Conv", ["x", "W", "B"], ["c"], pads=[1, 1, 1, 1], name="conv"),
        helper.make_node("Transpose", ["c"], ["t"], perm=[0, 1, 3, 2], name="swap"),
        helper.make_node("Relu", ["t"], ["r"], name="relu"),
        helper.make_node("Add", ["r", "t"], ["a"], name="add"),
        helper.make_node("Flatten", ["a"], ["f"], axis=1, name="flat"),
        helper.make_node("Gemm", ["f", "G", "GB"], ["y"], transB=1, name="fc"),
        helper.make_node("Identity", ["K"], ["k"], name="const_out"),
        helper.make_node("Flatten", ["x"], ["xf"], axis=1, name="xflat"),
    ]
    initializers = [
        weight("W", 8, channels, 3, 3), weight("B", 8), weight("G", 10, 8 * 6 * 6, scale=0.1),
        weight("GB", 10),
        numpy_helper.from_array(np.arange(4, dtype=np.float32), "K"),
    ]  # fmt: skip
    graph = helper.make_graph(
        nodes, "small", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, channels, 6, 6])],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in ("y", "k", "xf")], initializers,
    )  # fmt: skip
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def onnxruntime_outputs(model: Path, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    import onnxruntime as ort

    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(None, dict(feeds)), strict=True))


def assert_matches_onnxruntime(
    artifact: Path,
    model: Path,
    feeds: Mapping[str, np.ndarray],
    fixed: Mapping[str, np.ndarray] | None = None,
) -> None:
    """Every output of the compiled artifact is within TOLERANCE of onnxruntime's (and not all zero);
    `fixed`: inputs compiled in (--input-value), fed to onnxruntime only."""
    import runtime

    got = runtime.load(artifact, threads=2).run(dict(feeds))
    want = onnxruntime_outputs(model, {**feeds, **(fixed or {})})
    assert list(got) == list(want)
    for name, reference in want.items():
        assert got[name].shape == reference.shape, name
        assert np.abs(reference).max() > 0, name
        error = relative_error(got[name], reference)
        assert error <= TOLERANCE, f"output {name}: relative error {error:.2e}"


def artifact_files(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def output_moved_to_written_bytes(artifact: Path) -> dict:
    """The artifact's manifest data with its first output moved to arena bytes another step writes, an
    edit every plan check accepts (each such offset is tried until `parse_manifest` takes one)."""
    from runtime.artifact import MANIFEST_FILE
    from runtime.errors import ArtifactError
    from runtime.manifest_checks import parse_manifest

    data = json.loads((artifact / MANIFEST_FILE).read_text())
    output = data["outputs"][0]
    written = sorted({arg["offset"] for step in data["plan"]["steps"] for arg in step["args"]
                      if arg["kind"] == "arena" and arg["writes"]} - {output["offset"]})  # fmt: skip
    for offset in written:
        output["offset"] = offset
        try:
            parse_manifest(json.dumps(data))
        except ArtifactError:
            continue
        return data
    raise AssertionError(f"no written arena offset of {artifact} takes output {output['name']!r}")


def with_manifest(artifact: Path, copy: Path, data: dict) -> Path:
    """A copy of `artifact` at `copy` with `data` as its manifest; the other files are hard links to the
    originals (cheap), unchanged, so their sha256 in `files` still holds."""
    from runtime.artifact import MANIFEST_FILE

    copy.mkdir()
    for path in artifact.iterdir():
        if path.name != MANIFEST_FILE:
            os.link(path, copy / path.name)
    (copy / MANIFEST_FILE).write_text(json.dumps(data))
    return copy


RECURRENT_GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}


def recurrent_model(
    path: Path,
    op: str,
    *,
    direction: str,
    seq: int,
    batch: int,
    inputs: int,
    hidden: int,
    lens: list[int] | None = None,
    initial: bool = False,
    seed: int = 0,
    **attrs: object,
) -> tuple[Path, dict[str, np.ndarray]]:
    """One LSTM / GRU / RNN node (W, R, B constants; sequence_lens and initial states as inputs when
    asked) saved at `path`, with random feeds: (path, feeds). Outputs Y, Y_h (and Y_c)."""
    rng = np.random.default_rng(seed)
    dirs = 2 if direction == "bidirectional" else 1
    rows = RECURRENT_GATES[op] * hidden
    scale = 1 / np.sqrt(hidden)

    def weight(name: str, *shape: int) -> onnx.TensorProto:
        return numpy_helper.from_array((rng.uniform(-scale, scale, shape)).astype(np.float32), name)

    feeds = {"x": rng.standard_normal((seq, batch, inputs)).astype(np.float32)}
    graph_inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [seq, batch, inputs])]
    names = ["x", "W", "R", "B", "", ""]
    if lens is not None:
        feeds["lens"] = np.array(lens, np.int32)
        graph_inputs.append(helper.make_tensor_value_info("lens", TensorProto.INT32, [batch]))
        names[4] = "lens"
    if initial:
        for state in ("h0", "c0") if op == "LSTM" else ("h0",):
            feeds[state] = rng.standard_normal((dirs, batch, hidden)).astype(np.float32)
            graph_inputs.append(
                helper.make_tensor_value_info(state, TensorProto.FLOAT, [dirs, batch, hidden])
            )
        names[5:] = ["h0", "c0"] if op == "LSTM" else ["h0"]
    while not names[-1]:
        names.pop()
    outputs = ["y", "y_h", "y_c"] if op == "LSTM" else ["y", "y_h"]
    node = helper.make_node(op, names, outputs, hidden_size=hidden, direction=direction, **attrs)
    initializers = [
        weight("W", dirs, rows, inputs),
        weight("R", dirs, rows, hidden),
        weight("B", dirs, 2 * rows),
    ]
    graph = helper.make_graph(
        [node], op.lower(), graph_inputs,
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in outputs], initializers,
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path, feeds
