"""The cached arm64 environment: an aarch64 Python with constraints.txt's numpy, the pinned aarch64
libtvm_runtime.so, whose sha256 is checked on every use, and one clear error where a step cannot run."""

from __future__ import annotations

from pathlib import Path

import pytest

import hai_compiler.arm64_env as arm64_env_module
from hai_compiler.arm64_env import (
    CONSTRAINTS,
    QEMU,
    Arm64Env,
    HostNotReady,
    ensure_arm64_architecture,
    ensure_env,
    pinned_wheels,
)
from ir import HaiError
from targets.arm64.tvm_runtime import TVM_REQUIREMENT, aarch64_tvm_runtime

EM_AARCH64 = 183  # ELF e_machine of AArch64


def constraint(project: str) -> str:
    return next(line for line in CONSTRAINTS.read_text().splitlines() if line.startswith(f"{project}=="))


def test_runtime_pin_is_the_compilers_tvm() -> None:
    assert TVM_REQUIREMENT == constraint("apache-tvm")
    assert pinned_wheels() == [constraint("numpy"), constraint("apache-tvm-ffi")]


def test_python_is_aarch64_with_the_pinned_numpy(arm64_env: Arm64Env) -> None:
    done = arm64_env.run(
        "import platform, numpy; print(platform.machine(), numpy.__version__)", cpu="cortex-a53"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["aarch64", constraint("numpy").split("==")[1]]


def test_runtime_library_is_an_aarch64_elf(arm64_env: Arm64Env) -> None:
    header = arm64_env.tvm_runtime.read_bytes()[:20]
    assert header[:4] == b"\x7fELF" and int.from_bytes(header[18:20], "little") == EM_AARCH64


def test_changed_runtime_library_is_refused(
    arm64_env: Arm64Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HAI_CACHE_DIR", str(tmp_path))
    copy = tmp_path / arm64_env.tvm_runtime.relative_to(arm64_env.tvm_runtime.parents[2])
    copy.parent.mkdir(parents=True)
    copy.write_bytes(arm64_env.tvm_runtime.read_bytes() + b"\0")
    with pytest.raises(
        HaiError, match=f"{copy.name} has sha256 .* but the aarch64 runtime of {TVM_REQUIREMENT}"
    ):
        aarch64_tvm_runtime()


def test_missing_qemu_is_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(arm64_env_module.shutil, "which", lambda tool: None if tool == QEMU else "/bin/true")
    with pytest.raises(
        HostNotReady,
        match="qemu-aarch64 is not installed; the arm64 environment needs a Debian host with qemu-user",
    ):
        ensure_env()


def test_unknown_arm64_architecture_without_root_says_what_to_run(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(arm64_env_module, "run", lambda cmd, what: "i386\n")
    monkeypatch.setattr(arm64_env_module.os, "geteuid", lambda: 1000)
    with pytest.raises(
        HostNotReady, match=r"run `sudo dpkg --add-architecture arm64 && sudo apt-get update`"
    ):
        ensure_arm64_architecture()
