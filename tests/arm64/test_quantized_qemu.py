"""The digits CNN quantized by `hai compile --precision int8|int4|fp16 --target arm64 --cpu neoverse-n1`
(the quantizer sees neoverse-n1's fp16, so the FP16 rung is offered) runs under `qemu-aarch64 -cpu
neoverse-n1` in one process and gives what the x86 artifact of the same precision gives on this host;
the INT8 artifact the same numbers exactly, for each integer GEMM step: `sdot` (neoverse-n1, dotprod),
`usdot` (neoverse-v1, i8mm; run under `-cpu max`) and the plain NEON reduction (cortex-a72), which
the disassembly of its integer kernels shows."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from hai_compiler.arm64_env import Arm64Env
from hai_compiler.demo import EMBEDDED_MODEL, load_heldout_digits
from runtime import load
from runtime.artifact import kernel_library_file

sys.path.insert(0, str(Path(__file__).resolve().parent))
from qemu_models import instruction_counts, run_under_qemu  # noqa: E402

CPU = "neoverse-n1"
PRECISIONS = ("int8", "int4", "fp16")
X86_CPU = "x86-64-v3"
INT8_CPUS = {"neoverse-v1": "max", "cortex-a72": "cortex-a72"}
"""Further arm64 cpus compiled at INT8 -> the qemu cpu that runs them."""
DOT = {"neoverse-n1": "sdot", "neoverse-v1": "usdot", "cortex-a72": None}
DOT_INSTRUCTION = r"\b(sdot|udot|usdot|sudot)\s+v\d+\.4s"


def hai_compile(output: Path, target: str, cpu: str, precision: str, calibration: Path) -> Path:
    from hai_compiler.cli import app

    args = ["compile", str(EMBEDDED_MODEL), "--input-shape", "image=1,1,8,8", "--precision", precision,
            "--target", target, "--cpu", cpu, "-o", str(output)]  # fmt: skip
    if precision == "int8":
        args += ["--calibration-data", str(calibration)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return output


@pytest.fixture(scope="module")
def runs(arm64_env: Arm64Env, cross_gcc: str, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """(cpu, precision) -> (arm64 artifact, its outputs under qemu, the x86 artifact's outputs here)."""
    folder = tmp_path_factory.mktemp("arm64_quantized")
    x, _ = load_heldout_digits()
    calibration = folder / "calibration.npz"
    np.savez(calibration, image=x[:64])
    feeds = {"image": np.ascontiguousarray(x[:1])}
    x86 = {p: load(hai_compile(folder / f"x86_{p}.hai", "x86", X86_CPU, p, calibration)).run(feeds)
           for p in PRECISIONS}  # fmt: skip
    cases = {(CPU, CPU): PRECISIONS, **{(cpu, qemu_cpu): ("int8",) for cpu, qemu_cpu in INT8_CPUS.items()}}
    results = {}
    for (cpu, qemu_cpu), precisions in cases.items():
        artifacts = [hai_compile(folder / f"{cpu}_{p}.hai", "arm64", cpu, p, calibration) for p in precisions]
        (folder / cpu).mkdir()
        emulated = run_under_qemu(arm64_env, qemu_cpu, [(a, feeds) for a in artifacts], folder / cpu)
        for p, artifact, got in zip(precisions, artifacts, emulated, strict=True):
            results[cpu, p] = (artifact, got, x86[p])
    return results


@pytest.mark.parametrize("cpu", DOT)
def test_int8_gives_the_x86_artifacts_numbers(runs: dict, cpu: str) -> None:
    _, got, x86 = runs[cpu, "int8"]
    assert list(got) == list(x86)
    for name, expected in x86.items():
        np.testing.assert_array_equal(got[name], expected)


@pytest.mark.parametrize("cpu", DOT)
def test_int8_kernels_use_the_cpus_dot_instruction(runs: dict, cpu: str) -> None:
    counts = instruction_counts(runs[cpu, "int8"][0] / kernel_library_file("cpu"), DOT_INSTRUCTION)
    integer = {s: n for s, n in counts.items() if s.startswith(("hai_convint_", "hai_matmulint_"))}
    if DOT[cpu] is None:
        assert counts == {}, f"{cpu} has no dotprod, yet its kernels use dot instructions: {counts}"
        return
    assert integer, f"no integer kernel of the {cpu} artifact uses {DOT[cpu]}: {counts}"
    kinds = instruction_counts(runs[cpu, "int8"][0] / kernel_library_file("cpu"), rf"\b{DOT[cpu]}\s+v")
    assert set(kinds) == set(integer), f"{cpu}: {kinds} vs {integer}"


@pytest.mark.parametrize("precision", ["int4", "fp16"])
def test_weight_precisions_match_the_x86_artifact(runs: dict, precision: str) -> None:
    _, got, x86 = runs[CPU, precision]
    assert list(got) == list(x86)
    for name, expected in x86.items():
        np.testing.assert_allclose(got[name], expected, rtol=1e-5, atol=1e-6)
