"""The digits CNN quantized by `hai compile --precision int8|int4|fp16 --target arm64 --cpu neoverse-n1`
(the quantizer sees neoverse-n1's fp16, so the FP16 rung is offered) runs under `qemu-aarch64 -cpu
neoverse-n1` in one process and gives what the x86 artifact of the same precision gives on this host;
the INT8 artifact the same numbers exactly, for each integer GEMM step: `sdot` (neoverse-n1, dotprod),
`usdot` and i8mm's 2-row matrix step `usmmla` (neoverse-v1, run under `-cpu max`; its Gemm in
`usmmla` with a batch of 4) and the plain NEON reduction (cortex-a72), which the disassembly of its
integer kernels shows."""

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
BATCH = 4
"""The digits batch of the case whose Gemm's 4 rows pair into i8mm's 2-row `usmmla` steps."""
STEPS: dict[tuple[str, int], dict[str, set[str]]] = {
    ("neoverse-n1", 1): {"convint": {"sdot"}, "matmulint": {"sdot"}},
    ("neoverse-v1", 1): {"convint": {"usmmla", "usdot"}, "matmulint": {"usdot"}},
    ("neoverse-v1", BATCH): {"convint": {"usmmla", "usdot"}, "matmulint": {"usmmla"}},
    ("cortex-a72", 1): {"convint": set(), "matmulint": set()},
}
"""(cpu, batch) of an INT8 artifact -> the instructions of each integer kernel family's steps (none: the
plain NEON reduction). On i8mm, a stride-1 conv of even output width and a Gemm of paired rows take
`usmmla`, the digits' stride-2 conv and a batch-1 Gemm (one row) `usdot`."""


def hai_compile(
    output: Path, target: str, cpu: str, precision: str, calibration: Path, batch: int = 1
) -> Path:
    from hai_compiler.cli import app

    args = ["compile", str(EMBEDDED_MODEL), "--input-shape", f"image={batch},1,8,8", "--precision", precision,
            "--target", target, "--cpu", cpu, "-o", str(output)]  # fmt: skip
    if precision == "int8":
        args += ["--calibration-data", str(calibration)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return output


@pytest.fixture(scope="module")
def runs(arm64_env: Arm64Env, cross_gcc: str, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """(cpu, precision, batch) -> (arm64 artifact, its outputs under qemu, the x86 artifact's outputs)."""
    folder = tmp_path_factory.mktemp("arm64_quantized")
    x, _ = load_heldout_digits()
    calibration = folder / "calibration.npz"
    np.savez(calibration, image=x[:64])
    jobs = [(p, 1) for p in PRECISIONS] + [("int8", BATCH)]
    feeds = {b: {"image": np.ascontiguousarray(x[:b])} for b in (1, BATCH)}
    x86 = {}
    for p, b in jobs:
        x86[p, b] = load(hai_compile(folder / f"x86_{p}_{b}.hai", "x86", X86_CPU, p, calibration, b)).run(
            feeds[b]
        )
    int8_jobs = {cpu: [("int8", b) for c, b in STEPS if c == cpu] for cpu in INT8_CPUS}
    cases = {(CPU, CPU): [(p, 1) for p in PRECISIONS], **{(c, q): int8_jobs[c] for c, q in INT8_CPUS.items()}}
    results = {}
    for (cpu, qemu_cpu), cpu_jobs in cases.items():
        artifacts = [hai_compile(folder / f"{cpu}_{p}_{b}.hai", "arm64", cpu, p, calibration, b)
                     for p, b in cpu_jobs]  # fmt: skip
        (folder / cpu).mkdir()
        feed_list = [(a, feeds[b]) for a, (_, b) in zip(artifacts, cpu_jobs, strict=True)]
        emulated = run_under_qemu(arm64_env, qemu_cpu, feed_list, folder / cpu)
        for (p, b), artifact, got in zip(cpu_jobs, artifacts, emulated, strict=True):
            results[cpu, p, b] = (artifact, got, x86[p, b])
    return results


@pytest.mark.parametrize(("cpu", "batch"), STEPS)
def test_int8_gives_the_x86_artifacts_numbers(runs: dict, cpu: str, batch: int) -> None:
    _, got, x86 = runs[cpu, "int8", batch]
    assert list(got) == list(x86)
    for name, expected in x86.items():
        np.testing.assert_array_equal(got[name], expected)


@pytest.mark.parametrize(("cpu", "batch"), STEPS)
def test_int8_kernels_use_the_cpus_dot_instruction(runs: dict, cpu: str, batch: int) -> None:
    library = runs[cpu, "int8", batch][0] / kernel_library_file("cpu")
    for family, instructions in STEPS[cpu, batch].items():
        found = {
            instruction
            for instruction in ("sdot", "udot", "usdot", "sudot", "smmla", "ummla", "usmmla")
            for symbol in instruction_counts(library, rf"\b{instruction}\s+v")
            if symbol.startswith(f"hai_{family}_")
        }
        assert found == instructions, f"{cpu} batch {batch} {family}: {found} vs {instructions}"


@pytest.mark.parametrize("precision", ["int4", "fp16"])
def test_weight_precisions_match_the_x86_artifact(runs: dict, precision: str) -> None:
    _, got, x86 = runs[CPU, precision, 1]
    assert list(got) == list(x86)
    for name, expected in x86.items():
        np.testing.assert_allclose(got[name], expected, rtol=1e-5, atol=1e-6)
