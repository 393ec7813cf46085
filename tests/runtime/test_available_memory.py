"""The runtime's memory check before running: cgroup `memory.max` when set, else MemAvailable, read under
a fake /proc + /sys root (never the real machine's memory), and `runtime.load` refusing before it runs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from tiny_artifact import K, M, build_kernels, numpy_reference, tiny_weights, write_tiny_artifact

import runtime
from runtime.artifact import MANIFEST_FILE
from runtime.available_memory import AvailableMemory, available_memory, check_available_memory
from runtime.errors import ArtifactError, InsufficientMemoryError

MIB = 2**20


def fake_root(tmp_path: Path, mem_available_kib: int | None, cgroup_max: str | None) -> Path:
    """A directory with proc/meminfo (MemAvailable in kB) and sys/fs/cgroup/memory.max, each optional."""
    root = tmp_path / "root"
    if mem_available_kib is not None:
        (root / "proc").mkdir(parents=True)
        (root / "proc/meminfo").write_text(
            f"MemTotal: 33554432 kB\nMemFree: 123456 kB\nMemAvailable: {mem_available_kib} kB\n"
        )
    if cgroup_max is not None:
        (root / "sys/fs/cgroup").mkdir(parents=True)
        (root / "sys/fs/cgroup/memory.max").write_text(cgroup_max + "\n")
    return root


def test_cgroup_limit_wins_when_set(tmp_path: Path) -> None:
    root = fake_root(tmp_path, mem_available_kib=8 * 2**20, cgroup_max=str(256 * MIB))
    assert available_memory(root) == AvailableMemory(256 * MIB, "cgroup memory.max")


def test_cgroup_max_means_no_limit_then_mem_available(tmp_path: Path) -> None:
    root = fake_root(tmp_path, mem_available_kib=300 * 1024, cgroup_max="max")
    assert available_memory(root) == AvailableMemory(300 * MIB, "MemAvailable in /proc/meminfo")


def test_unknown_memory_skips_the_check(tmp_path: Path) -> None:
    root = fake_root(tmp_path, mem_available_kib=None, cgroup_max=None)
    assert available_memory(root) is None
    check_available_memory(10**15, "big.hai", root)  # unknown is not "too little"


def test_refusal_names_both_sizes_and_the_source(tmp_path: Path) -> None:
    root = fake_root(tmp_path, mem_available_kib=100 * 1024, cgroup_max="max")
    check_available_memory(100 * MIB, "m.hai", root)  # exactly enough
    check_available_memory(None, "m.hai", root)  # an artifact without a planned peak
    with pytest.raises(InsufficientMemoryError) as caught:
        check_available_memory(100 * MIB + 1, "m.hai", root)
    assert str(caught.value) == (
        "artifact m.hai plans a peak of 100.0 MiB (104857601 bytes) but this machine has only 100.0 MiB "
        "(104857600 bytes) available (MemAvailable in /proc/meminfo): free memory or raise the limit "
        "before loading it"
    )


@pytest.fixture(scope="module")
def kernels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("tvm")
    return build_kernels(tmp_path_factory.mktemp("kernels") / "tiny.so")


def with_planned_peak(artifact: Path, peak: object) -> Path:
    data = json.loads((artifact / MANIFEST_FILE).read_text())
    data["plan"]["planned_peak_bytes"] = peak
    (artifact / MANIFEST_FILE).write_text(json.dumps(data))
    return artifact


def test_load_refuses_before_running_and_runs_when_it_fits(tmp_path: Path, kernels: Path) -> None:
    artifact = with_planned_peak(write_tiny_artifact(tmp_path / "tiny.hai", kernels), 96 * MIB)
    small = fake_root(tmp_path / "small", mem_available_kib=32 * 2**20, cgroup_max=str(64 * MIB))
    with pytest.raises(
        InsufficientMemoryError, match=r"peak of 96\.0 MiB .* only 64\.0 MiB .*cgroup memory\.max"
    ):
        runtime.load(artifact, system_root=small)
    roomy = fake_root(tmp_path / "roomy", mem_available_kib=97 * 1024, cgroup_max="max")
    x = np.random.default_rng(0).standard_normal((M, K)).astype(np.float32)
    got = runtime.load(artifact, system_root=roomy).run({"x": x})["y"]
    np.testing.assert_allclose(got, numpy_reference(x, tiny_weights()), rtol=1e-5, atol=1e-6)


def test_malformed_planned_peak_is_a_corrupt_artifact(tmp_path: Path, kernels: Path) -> None:
    artifact = with_planned_peak(write_tiny_artifact(tmp_path / "tiny.hai", kernels), -5)
    with pytest.raises(ArtifactError, match="planned peak -5 is negative"):
        runtime.load(artifact)
