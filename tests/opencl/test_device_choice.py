"""A compile over the host and an OpenCL device whose partition keeps every node on one device is
that device's compile alone (hai_compiler/compiler/device_choice.py): the same plan and manifest
target as `--target x86` / `--target opencl`, the report saying the partition chose one device.
Partitions from a measured hardware profile (`hai doctor --measure`'s section, here written to
make the OpenCL device fast) are valid and match onnxruntime. Compiling needs no OpenCL device;
running on one skips without it, saying why."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from rich.console import Console

import runtime
from hai_compiler.accuracy import relative_error
from hai_compiler.compiler import CompileOptions, compile_model
from hai_compiler.compiler.device_choice import alone
from hai_compiler.compiler.report import render_partition
from hai_compiler.demo import EMBEDDED_MODEL, load_heldout_digits
from hai_compiler.doctor import scan
from ir import verify
from ir.placement import node_device

ort = pytest.importorskip("onnxruntime")

TARGET = "x86+opencl:cpu"  # PoCL's device is of kind cpu
OPENCL = "opencl:cpu"
DIGITS = {"image": (1, 1, 8, 8)}
TOLERANCE = 1e-4


def digits_inputs() -> dict[str, np.ndarray]:
    x, _ = load_heldout_digits()
    return {"image": np.ascontiguousarray(x[:1])}


def onnxruntime_outputs(inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    session = ort.InferenceSession(str(EMBEDDED_MODEL), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, inputs), strict=True))


def check_matches_onnxruntime(path: Path) -> None:
    inputs = digits_inputs()
    with runtime.load(path) as loaded:
        got = loaded.run(inputs)
    for name, want in onnxruntime_outputs(inputs).items():
        assert relative_error(got[name], want) <= TOLERANCE, name


@pytest.mark.parametrize(
    ("placement", "device", "alone_target"),
    [("", "cpu", "x86"), (f"*={OPENCL}", OPENCL, "opencl")],
    ids=["estimates-keep-the-cpu", "all-forced-on-opencl"],
)
def test_a_one_device_partition_compiles_as_that_device_alone(
    tmp_path: Path, placement: str, device: str, alone_target: str
) -> None:
    given = CompileOptions(target=TARGET, opencl_profile="pocl-cpu", input_shapes=DIGITS, placement=placement)
    auto = compile_model(Path(EMBEDDED_MODEL), tmp_path / "auto.hai", given)
    single = alone(given, device)
    assert single.target == alone_target
    want = compile_model(Path(EMBEDDED_MODEL), tmp_path / "alone.hai", single)
    assert auto.devices is None and auto.partition is not None and auto.partition.sole_device == device
    assert auto.plan.plan == want.plan.plan
    manifests = [json.loads((r.path / "manifest.json").read_text()) for r in (auto, want)]
    assert manifests[0]["target"] == manifests[1]["target"] and manifests[0]["target"]["name"] == alone_target
    console = Console(file=io.StringIO(), width=200)
    render_partition(auto, console)
    assert f"the partition chose one device, {device}: compiled as --target {alone_target} alone" in (
        console.file.getvalue()  # type: ignore[attr-defined]
    )


def test_the_cpu_choice_runs_as_the_x86_compile(tmp_path: Path) -> None:
    """Kept on the CPU, the auto compile has what a plain x86 compile has: its one-call entry."""
    given = CompileOptions(target=TARGET, opencl_profile="pocl-cpu", input_shapes=DIGITS)
    auto = compile_model(Path(EMBEDDED_MODEL), tmp_path / "auto.hai", given)
    assert auto.plan.plan.entry is not None
    check_matches_onnxruntime(auto.path)


def measured_entry(
    device: str, kind: str, target: str, f32: float, bandwidth: float, launch: float
) -> dict[str, Any]:
    """One device of a `hai doctor --measure` section (docs/hardware_profile.schema.json)."""
    return {"device": device, "name": f"a {kind}", "kind": kind, "target": target, "runs": 1,
            "flops": {"f32": f32, "f16": "unsupported", "bf16": "unsupported", "int8": "unsupported"},
            "unsupported": {}, "gemm_n": None, "dense_conv": None, "launch_seconds": launch,
            "bandwidth": [{"bytes": 1 << 24, "bytes_per_second": bandwidth}],
            "transfer": None if target != "opencl" else {
                "copy_in": {"latency_seconds": 1e-6, "bytes_per_second": None},
                "copy_out": {"latency_seconds": 1e-6, "bytes_per_second": None},
                "zero_copy": None}}  # fmt: skip


def measured_profile(folder: Path) -> Path:
    """This host's profile with a measured section where the OpenCL device is 100x the CPU."""
    measured = [
        measured_entry("cpu", "cpu", "x86", 1e8, 1e9, 1e-4),
        measured_entry("opencl:0", "cpu", "opencl", 1e10, 1e11, 1e-6),
    ]
    path = folder / "profile.json"
    path.write_text(json.dumps({**scan(), "measured": {"version": 1, "devices": measured}}))
    return path


@pytest.mark.parametrize(
    ("placement", "devices"),
    [("", {OPENCL}), ("Gemm=cpu", {"cpu", OPENCL})],
    ids=["measured-all-on-opencl", "measured-split"],
)
def test_a_measured_profile_partition_is_valid_and_matches_onnxruntime(
    opencl_device: dict, tmp_path: Path, placement: str, devices: set[str]
) -> None:
    given = CompileOptions(
        target=TARGET, opencl_profile="pocl-cpu", hardware_profile=measured_profile(tmp_path),
        input_shapes=DIGITS, placement=placement,
    )  # fmt: skip
    result = compile_model(Path(EMBEDDED_MODEL), tmp_path / "m.hai", given)
    assert result.partition is not None
    used = {s.device for s in result.partition.shares if s.nodes}
    assert used == devices
    verify(result.graph)
    if result.devices is None:  # one device: its compile alone
        assert result.target.name == "opencl"
        assert (
            result.plan.plan
            == compile_model(Path(EMBEDDED_MODEL), tmp_path / "alone.hai", alone(given, OPENCL)).plan.plan
        )
    else:
        placed = {node_device(n) for n in result.graph.nodes if n.op != "Transfer"}
        assert placed == devices
        gemm = next(n for n in result.graph.nodes if n.op == "Gemm")
        assert node_device(gemm) == "cpu"
    check_matches_onnxruntime(result.path)


def test_a_partition_named_in_passes_keeps_the_compile_over_the_devices(
    opencl_device: dict, tmp_path: Path
) -> None:
    """`--passes` with its own `partition{devices=FILE}` asks for that placement: even all on OpenCL,
    the compile stays over both devices (transfers at the graph's edges) and matches onnxruntime."""
    devices = {
        "devices": [
            {"name": "cpu", "flops": 1e8, "bandwidth": 1e9},
            {"name": OPENCL, "flops": 1e11, "bandwidth": 1e12},
        ],
        "links": [{"a": "cpu", "b": OPENCL, "bandwidth": 1e10, "shared_memory": True}],
    }
    (tmp_path / "devices.json").write_text(json.dumps(devices))
    passes = f'default,partition{{devices="{tmp_path / "devices.json"}"}}'
    given = CompileOptions(target=TARGET, opencl_profile="pocl-cpu", input_shapes=DIGITS, passes=passes)
    result = compile_model(Path(EMBEDDED_MODEL), tmp_path / "d.hai", given)
    assert result.devices is not None and result.partition is not None
    assert result.partition.sole_device == OPENCL
    assert any(s.transfer_from for s in result.plan.plan.steps)
    check_matches_onnxruntime(result.path)
