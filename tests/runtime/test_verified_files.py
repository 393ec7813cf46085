"""No gap between checking an artifact's files and using them (runtime/artifact_files.py and fd_library.py):
files swapped in the artifact after they were verified are never loaded, mapped or read; the kernel
library is loaded through `/proc/self/fd/N` of the descriptor it was hashed through; where there is no
/proc, through its path, refused when that path no longer names the verified file."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from tiny_artifact import (
    K,
    M,
    build_entry_kernels,
    build_kernels,
    numpy_reference,
    tiny_weights,
    write_tiny_artifact,
)

import runtime
import runtime.fd_library
import runtime.model
from runtime.artifact import WEIGHTS_FILE, kernel_library_file
from runtime.artifact_files import open_artifact
from runtime.errors import ArtifactError, ArtifactIntegrityError

LIBRARY = kernel_library_file("cpu")


@pytest.fixture(scope="module")
def kernels(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The tiny model's library, and another (the entry model's, of another plan) to swap in."""
    pytest.importorskip("tvm")
    folder = tmp_path_factory.mktemp("kernels")
    return {"tiny": build_kernels(folder / "tiny.so"), "other": build_entry_kernels(folder / "other.so")}


def swap_in(path: Path, data: bytes) -> None:
    """Replace the directory entry `path` by a new file holding `data` (the old inode lives on)."""
    fresh = path.with_name(path.name + ".new")
    fresh.write_bytes(data)
    fresh.replace(path)


def swapping_after_verification(monkeypatch: pytest.MonkeyPatch, artifact: Path, other: Path) -> list[str]:
    """Make `load` swap the kernel library and zero `weights.bin` right after every file was verified
    (from inside its check of the CPU, the last step before the files are used); returns what the
    library loader was given."""
    check_cpu = runtime.model.check_cpu

    def check_then_swap(*args):  # type: ignore[no-untyped-def]
        check_cpu(*args)
        swap_in(artifact / LIBRARY, other.read_bytes())
        swap_in(artifact / WEIGHTS_FILE, bytes((artifact / WEIGHTS_FILE).stat().st_size))

    names: list[str] = []
    descriptor_name = runtime.fd_library.descriptor_name

    def recording(fd: int, path: Path) -> str:
        names.append(descriptor_name(fd, path))
        return names[-1]

    monkeypatch.setattr(runtime.model, "check_cpu", check_then_swap)
    monkeypatch.setattr(runtime.fd_library, "descriptor_name", recording)
    return names


def test_files_swapped_after_verification_are_not_used(
    tmp_path: Path, kernels: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    artifact = write_tiny_artifact(tmp_path / "tiny.hai", kernels["tiny"])
    names = swapping_after_verification(monkeypatch, artifact, kernels["other"])
    model = runtime.load(artifact)
    assert (artifact / LIBRARY).read_bytes() == kernels["other"].read_bytes()  # the swap happened
    assert names and all(name.startswith("/proc/self/fd/") for name in names), names
    x = np.random.default_rng(3).standard_normal((M, K)).astype(np.float32)
    np.testing.assert_allclose(
        model.run({"x": x})["y"], numpy_reference(x, tiny_weights()), rtol=1e-5, atol=1e-6
    )
    with pytest.raises(
        ArtifactError, match=r"kernels\.cpu\.so has \d+ bytes"
    ):  # a fresh load checks the swap
        runtime.load(artifact)


def test_without_proc_the_path_is_used_only_while_it_names_the_verified_file(
    tmp_path: Path, kernels: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runtime.fd_library, "PROC_FD", tmp_path / "no-proc")
    artifact = write_tiny_artifact(tmp_path / "tiny.hai", kernels["tiny"])
    x = np.random.default_rng(4).standard_normal((M, K)).astype(np.float32)
    np.testing.assert_allclose(
        runtime.load(artifact).run({"x": x})["y"], numpy_reference(x, tiny_weights()), rtol=1e-5, atol=1e-6
    )
    copy = write_tiny_artifact(tmp_path / "copy.hai", kernels["tiny"])
    swapping_after_verification(monkeypatch, copy, kernels["other"])
    with pytest.raises(ArtifactIntegrityError, match=r"kernels\.cpu\.so was replaced after it was verified"):
        runtime.load(copy)


def test_open_artifact_hashes_and_keeps_the_descriptors_it_hands_on(
    tmp_path: Path, kernels: dict[str, Path]
) -> None:
    artifact = write_tiny_artifact(tmp_path / "tiny.hai", kernels["tiny"])
    with open_artifact(artifact) as files:
        descriptor = files.fd(WEIGHTS_FILE)
        swap_in(artifact / WEIGHTS_FILE, b"\0" * (artifact / WEIGHTS_FILE).stat().st_size)
        weights = tiny_weights()
        first = weights["W"].reshape(-1).view(np.uint8)
        assert os.pread(descriptor, first.nbytes, 0) == first.tobytes()  # the verified bytes, not the swap
    with pytest.raises(OSError):
        os.fstat(descriptor)  # closed on leaving the block
