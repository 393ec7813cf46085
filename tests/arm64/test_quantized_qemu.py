"""The digits CNN quantized by `hai compile --precision int8|int4|fp16 --target arm64 --cpu neoverse-n1`
(the quantizer sees neoverse-n1's fp16, so the FP16 rung is offered) runs under `qemu-aarch64 -cpu
neoverse-n1` in one process and gives what the x86 artifact of the same precision gives on this host:
the INT8 integer kernels (the plain NEON step, no sdot yet) the same numbers exactly."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from hai_compiler.arm64_env import Arm64Env
from hai_compiler.demo import EMBEDDED_MODEL, load_heldout_digits
from runtime import load

sys.path.insert(0, str(Path(__file__).resolve().parent))
from qemu_models import run_under_qemu  # noqa: E402

CPU = "neoverse-n1"
PRECISIONS = ("int8", "int4", "fp16")
TARGETS = {"arm64": CPU, "x86": "x86-64-v3"}


def hai_compile(output: Path, target: str, precision: str, calibration: Path) -> Path:
    from hai_compiler.cli import app

    args = ["compile", str(EMBEDDED_MODEL), "--input-shape", "image=1,1,8,8", "--precision", precision,
            "--target", target, "--cpu", TARGETS[target], "-o", str(output)]  # fmt: skip
    if precision == "int8":
        args += ["--calibration-data", str(calibration)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return output


@pytest.fixture(scope="module")
def runs(arm64_env: Arm64Env, cross_gcc: str, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """precision -> (outputs under qemu, the x86 artifact's outputs here)."""
    folder = tmp_path_factory.mktemp("arm64_quantized")
    x, _ = load_heldout_digits()
    np.savez(folder / "calibration.npz", image=x[:64])
    feeds = {"image": np.ascontiguousarray(x[:1])}
    artifacts = {
        (target, p): hai_compile(folder / f"{target}_{p}.hai", target, p, folder / "calibration.npz")
        for target in TARGETS
        for p in PRECISIONS
    }
    emulated = run_under_qemu(arm64_env, CPU, [(artifacts["arm64", p], feeds) for p in PRECISIONS], folder)
    return {
        p: (got, load(artifacts["x86", p]).run(feeds)) for p, got in zip(PRECISIONS, emulated, strict=True)
    }


def test_int8_gives_the_x86_artifacts_numbers(runs: dict) -> None:
    got, x86 = runs["int8"]
    assert list(got) == list(x86)
    for name, expected in x86.items():
        np.testing.assert_array_equal(got[name], expected)


@pytest.mark.parametrize("precision", ["int4", "fp16"])
def test_weight_precisions_match_the_x86_artifact(runs: dict, precision: str) -> None:
    got, x86 = runs[precision]
    assert list(got) == list(x86)
    for name, expected in x86.items():
        np.testing.assert_allclose(got[name], expected, rtol=1e-5, atol=1e-6)
