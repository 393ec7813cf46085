"""The device microbenchmarks, compiled: real HAI kernels through the targets, into a folder the
runtime measures alone (runtime/microbench.py, also from a `hai pack` bundle without the compiler).

Rule: per target (the host CPU's x86/arm64, an OpenCL device) the folder holds one artifact per case:
- `gemm_<dtype>`: an n x n x n MatMul (f32, f16, bf16; int8 is MatMulInteger, u8 x i8 -> i32) with a
  constant weight, as a model's layers have; its FLOPs are 2n^3;
- `conv_f32`: a pointwise f32 Conv, input (1, n, 16, n / 16), n channels in and out: the same GEMM
  as a conv (the CPU's measured cost rule is scaled by it, targets/kernel_costs.py);
- `stream_<n>`: an f32 Add of two run-time vectors of n elements; its bytes are 3 * 4n (read two,
  write one), at sizes from cache-resident to memory-sized;
- `empty`: a one-element Add: the time of a launch that does nothing.
Each case's kernel node is named `kernel`: the runtime times the steps made from it, not the
relayouts a layout pass adds around it. A case the target cannot compile is recorded with the
reason (`unsupported`), not dropped.
`microbench.json` indexes the folder: per target its compile spec and its cases.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from ir.errors import HaiError

INDEX = "microbench.json"
INDEX_VERSION = 1
KERNEL = "kernel"
"""The name of each case's measured node."""
GEMM_DTYPES = {"f32": TensorProto.FLOAT, "f16": TensorProto.FLOAT16, "bf16": TensorProto.BFLOAT16}
OPSET = 17


@dataclasses.dataclass(frozen=True)
class Sizes:
    """How big each case is: the GEMM's n and the streaming Add's element counts."""

    gemm: int = 512
    stream: tuple[int, ...] = (4096, 65536, 1 << 20, 1 << 24)

    @staticmethod
    def quick() -> Sizes:
        """Tiny cases for tests and a fast look."""
        return Sizes(gemm=32, stream=(1024, 65536))


@dataclasses.dataclass(frozen=True)
class Case:
    name: str
    kind: str  # gemm | stream | empty
    dtype: str
    model: onnx.ModelProto
    flops: int = 0
    bytes: int = 0
    n: int = 0  # the GEMM's n


def _model(name: str, nodes: list[Any], inputs: list[Any], outputs: list[Any], inits: list[Any]) -> Any:
    graph = helper.make_graph(nodes, name, inputs, outputs, initializer=inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])


def gemm_case(dtype: str, n: int) -> Case:
    """An n x n x n MatMul of `dtype` (int8: MatMulInteger) with a constant weight."""
    rng = np.random.default_rng(0)
    if dtype == "int8":
        x = helper.make_tensor_value_info("x", TensorProto.UINT8, [n, n])
        y = helper.make_tensor_value_info("y", TensorProto.INT32, [n, n])
        w = numpy_helper.from_array(rng.integers(-64, 64, (n, n)).astype(np.int8), "w")
        node = helper.make_node("MatMulInteger", ["x", "w"], ["y"], name=KERNEL)
    else:
        elem = GEMM_DTYPES[dtype]
        x = helper.make_tensor_value_info("x", elem, [n, n])
        y = helper.make_tensor_value_info("y", elem, [n, n])
        values = rng.standard_normal((n, n)).astype(np.float32)
        w = helper.make_tensor("w", elem, [n, n], values.astype(np.float16) if dtype == "f16" else values)
        node = helper.make_node("MatMul", ["x", "w"], ["y"], name=KERNEL)
    model = _model(f"gemm_{dtype}", [node], [x], [y], [w])
    return Case(f"gemm_{dtype}", "gemm", dtype, model, flops=2 * n**3, n=n)


def conv_shape(n: int) -> list[int]:
    """The conv case's input and output shape: n channels over 16 rows of n / 16 (a plane, so that a
    layout pass treats it as a model's conv)."""
    return [1, n, 16, max(n // 16, 1)]


def conv_case(n: int) -> Case:
    """A pointwise f32 Conv over n positions (16 rows) with n channels in and out (2n^3 FLOPs)."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, conv_shape(n))
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, conv_shape(n))
    w = numpy_helper.from_array(
        np.random.default_rng(0).standard_normal((n, n, 1, 1)).astype(np.float32), "w"
    )
    model = _model("conv_f32", [helper.make_node("Conv", ["x", "w"], ["y"], name=KERNEL)], [x], [y], [w])
    return Case("conv_f32", "conv", "f32", model, flops=2 * n * n * 16 * max(n // 16, 1), n=n)


def add_case(name: str, kind: str, n: int) -> Case:
    """An f32 Add of two run-time vectors of `n` elements."""
    a, b = (helper.make_tensor_value_info(v, TensorProto.FLOAT, [n]) for v in ("a", "b"))
    c = helper.make_tensor_value_info("c", TensorProto.FLOAT, [n])
    model = _model(name, [helper.make_node("Add", ["a", "b"], ["c"], name=KERNEL)], [a, b], [c], [])
    return Case(name, kind, "f32", model, flops=n, bytes=12 * n)


def cases(sizes: Sizes) -> list[Case]:
    """Every case of the module rule at `sizes`."""
    gemms = [gemm_case(dtype, sizes.gemm) for dtype in (*GEMM_DTYPES, "int8")]
    streams = [add_case(f"stream_{n}", "stream", n) for n in sizes.stream]
    return [*gemms, conv_case(sizes.gemm), *streams, add_case("empty", "empty", 1)]


def build(folder: str | Path, specs: Sequence[dict[str, Any]], sizes: Sizes | None = None) -> Path:
    """Compile every case for each compile spec (`{"target", "cpu", "cpu_features"}`; `cpu` None: this
    machine) into `folder` (emptied first) and write its index; returns the folder."""
    from hai_compiler.compiler import CompileOptions, compile_model

    folder = Path(folder)
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    sizes = sizes or Sizes()
    entries = []
    for spec in specs:
        name = spec["target"]
        options = CompileOptions(
            name, spec.get("cpu"), cpu_features=spec.get("cpu_features"), entry="off", memory_budget=None
        )
        recorded = []
        for case in cases(sizes):
            record: dict[str, Any] = {
                "name": case.name, "kind": case.kind, "dtype": case.dtype, "flops": case.flops,
                "bytes": case.bytes, "n": case.n, "kernel": KERNEL,
            }  # fmt: skip
            artifact = f"{name}/{case.name}.hai"
            try:
                compile_model(case.model, folder / artifact, options)
                record["artifact"] = artifact
            except HaiError as exc:
                record["unsupported"] = str(exc)
            recorded.append(record)
        entries.append({"target": name, "cpu": spec.get("cpu"), "cases": recorded})
    index = {"version": INDEX_VERSION, "targets": entries}
    (folder / INDEX).write_text(json.dumps(index, indent=2) + "\n")
    return folder


def host_spec(profile: dict[str, Any]) -> dict[str, Any]:
    """The compile spec of a `hai doctor` profile's CPU (its recommended target)."""
    rec = profile["recommended"]
    edits = ",".join(rec.get("cpu_features") or []) or None
    return {"target": rec["target"], "cpu": rec["cpu"], "cpu_features": edits}


def manifest_spec(target: Any) -> dict[str, Any]:
    """The compile spec of an artifact's recorded target (its manifest's `TargetInfo`)."""
    from hai_compiler.doctor import cpu_feature_edits

    edits, _ = cpu_feature_edits(target.name, target.cpu, list(target.features))
    return {"target": target.name, "cpu": target.cpu, "cpu_features": ",".join(edits) or None}


def measure_profile(
    profile: dict[str, Any], quick: bool = False, runs: int = 20, threads: int | None = None
) -> dict[str, Any]:
    """`profile` with its `measured` section: the microbenchmarks compiled for the host CPU's target
    and (when OpenCL has a device) for this machine's OpenCL device, then run on every device."""
    import tempfile

    from runtime.microbench import measure as run_microbench

    specs = [host_spec(profile)]
    if profile["opencl"]["available"] and any(p["devices"] for p in profile["opencl"]["platforms"]):
        specs.append({"target": "opencl", "cpu": None})
    sizes = Sizes.quick() if quick else Sizes()
    with tempfile.TemporaryDirectory(prefix="hai-microbench-") as folder:
        build(folder, specs, sizes)
        return {**profile, "measured": run_microbench(folder, runs, threads)}
