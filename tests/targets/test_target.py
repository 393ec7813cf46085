"""Target descriptions and the x86 TVM target JSON: host, --cpu, portable levels, hardware profiles."""

from __future__ import annotations

import pytest

from hai_compiler.doctor import profile_compile_target, scan
from runtime.cpu_features import host_cpu
from targets.registry import available_targets, get_target, resolve_target
from targets.target import TargetError
from targets.x86 import tvm_target_json


def test_host_target_uses_llvm_cpu_name_never_native() -> None:
    desc = resolve_target("x86")
    assert desc.cpu not in ("native", "generic", "")
    assert desc.features == frozenset(host_cpu().features)
    ctx = desc.to_pass_context()
    assert ctx["vector_bytes"] in (16, 32, 64) and "f32" in ctx["supported_precisions"]


@pytest.mark.parametrize(
    ("level", "vector", "must", "must_not"),
    [
        ("x86-64-v2", 16, "sse4.2", "avx2"),
        ("x86-64-v3", 32, "avx2", "avx512f"),
        ("x86-64-v4", 64, "avx512f", "avx512_vnni"),
    ],
)
def test_portable_levels(level: str, vector: int, must: str, must_not: str) -> None:
    desc = resolve_target("x86", cpu=level)
    assert desc.cpu == level and desc.vector_bytes == vector
    assert must in desc.features and must_not not in desc.features
    target = tvm_target_json(desc)
    assert target["kind"] == "llvm" and target["mcpu"] == level
    assert f"-{must_not.replace('_', '')}" in target["mattr"] and f"+{must}" in target["mattr"]


def test_named_cpu_gets_llvm_features_and_unknown_cpu_is_refused() -> None:
    assert "avx512f" in resolve_target("x86", cpu="skylake-avx512").features
    with pytest.raises(TargetError, match="does not know"):
        resolve_target("x86", cpu="pentium-9000")


def test_target_json_is_accepted_by_tvm() -> None:
    import tvm

    target = tvm.target.Target(tvm_target_json(resolve_target("x86", cpu="x86-64-v3")))
    assert str(target.attrs["mcpu"]) == "x86-64-v3"


def test_hardware_profile_gives_the_host_target() -> None:
    desc = resolve_target("x86", profile=profile_compile_target(scan()))
    assert desc.source == "hardware profile"
    assert desc.cpu == resolve_target("x86").cpu


def test_registry_lists_x86_and_names_unknown_targets() -> None:
    assert "x86" in available_targets()
    assert get_target("x86").name == "x86"
    with pytest.raises(TargetError, match="known targets"):
        get_target("tpu9")
