"""HAI's runtime on arm64, end to end under qemu-user: a tiny artifact cross-compiled for aarch64
(NEON, TVM's parallel launch through the artifact's own aarch64 libtvm_runtime.so), whose manifest
says it needs `dotprod`, is refused on a Cortex-A53 with the runtime's "needs CPU feature(s)" error
and runs on a Neoverse N1, matching numpy."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hai_compiler.arm64_env import Arm64Env
from runtime.artifact import TargetInfo

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "runtime"))
from tiny_artifact import K, M, build_kernels, numpy_reference, tiny_weights, write_tiny_artifact  # noqa: E402

AARCH64 = {"kind": "llvm", "mtriple": "aarch64-linux-gnu", "mcpu": "cortex-a72", "mattr": ["+neon"]}
REFUSED = 3
RUN = """
import sys, numpy as np
from runtime import load
from runtime.errors import UnsupportedCpuError
try:
    model = load(sys.argv[1])
except UnsupportedCpuError as exc:
    print(exc)
    sys.exit(3)
np.save(sys.argv[3], model.run({"x": np.load(sys.argv[2])})["y"])
"""


@pytest.fixture(scope="module")
def dotprod_artifact(tmp_path_factory: pytest.TempPathFactory, arm64_env: Arm64Env, cross_gcc: str) -> Path:
    folder = tmp_path_factory.mktemp("arm64")
    target = TargetInfo("arm64", "aarch64", "cortex-a72", ("dotprod", "neon"))
    kernels = build_kernels(folder / "tiny.so", target=AARCH64, cross_compiler=cross_gcc, info=target)
    return write_tiny_artifact(folder / "tiny.hai", kernels, target=target, tvm_runtime=arm64_env.tvm_runtime)


def run_tiny(
    arm64_env: Arm64Env, artifact: Path, cpu: str, folder: Path
) -> tuple[np.ndarray, subprocess.CompletedProcess]:
    x = np.random.default_rng(1).standard_normal((M, K)).astype(np.float32)
    np.save(folder / "x.npy", x)
    return x, arm64_env.run(RUN, artifact, folder / "x.npy", folder / "y.npy", cpu=cpu)


def test_cortex_a53_refuses_an_artifact_needing_dotprod(
    arm64_env: Arm64Env, dotprod_artifact: Path, tmp_path: Path
) -> None:
    _, done = run_tiny(arm64_env, dotprod_artifact, "cortex-a53", tmp_path)
    assert done.returncode == REFUSED, done.stderr
    assert (
        f"artifact {dotprod_artifact} needs CPU feature(s) dotprod (compiled for cpu cortex-a72)"
        in done.stdout
    )
    assert not (tmp_path / "y.npy").exists()


def test_neoverse_n1_runs_it_like_numpy(arm64_env: Arm64Env, dotprod_artifact: Path, tmp_path: Path) -> None:
    x, done = run_tiny(arm64_env, dotprod_artifact, "neoverse-n1", tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    np.testing.assert_allclose(
        np.load(tmp_path / "y.npy"), numpy_reference(x, tiny_weights()), rtol=1e-5, atol=1e-5
    )
