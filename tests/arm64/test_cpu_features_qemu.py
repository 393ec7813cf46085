"""The runtime reads an aarch64 CPU's features from its HWCAP bits under qemu-user, where
/proc/cpuinfo is the x86 host's: a Cortex-A53 (Armv8.0) has NEON but no dot product; a
Neoverse N1 (Armv8.2) has NEON, the dot product and FP16 arithmetic (Arm's manuals for each)."""

from __future__ import annotations

import json

import pytest

from hai_compiler.arm64_env import Arm64Env

PROBE = "import json; from runtime.cpu_features import host_cpu; print(json.dumps(host_cpu().features))"


@pytest.mark.parametrize(
    ("cpu", "has", "lacks"),
    [("cortex-a53", {"neon"}, {"dotprod", "fp16", "i8mm", "sve"}),
     ("neoverse-n1", {"neon", "dotprod", "fp16"}, {"i8mm", "sve"})],
)  # fmt: skip
def test_features_follow_the_emulated_cpu(
    arm64_env: Arm64Env, cpu: str, has: set[str], lacks: set[str]
) -> None:
    done = arm64_env.run(PROBE, cpu=cpu)
    assert done.returncode == 0, done.stderr
    features = set(json.loads(done.stdout))
    assert has <= features and not lacks & features
