"""Target descriptions and the x86 TVM target JSON: host, --cpu, portable levels, hardware profiles,
--cpu-features edits, and the warning when --cpu names this host but LLVM's table for it differs."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import pytest

from hai_compiler.doctor import profile_compile_target, scan
from runtime.cpu_features import host_cpu, parse_cpuinfo
from targets import x86
from targets.feature_edits import CpuFeaturesWarning
from targets.registry import available_targets, get_target, resolve_target
from targets.target import TargetError
from targets.x86 import tvm_target_json


def test_host_target_uses_llvm_cpu_name_never_native() -> None:
    desc = resolve_target("x86")
    assert desc.cpu not in ("native", "generic", "")
    assert desc.features == frozenset(host_cpu().features)
    facts = desc.to_pass_context()
    assert facts.vector_bytes in (16, 32, 64) and facts.supports("f32")
    assert facts.vector_registers == (32 if "avx512f" in desc.features else 16)


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


# -- --cpu-features and the warning for this host's own LLVM cpu name ----------------------------------

RECORDED = Path(__file__).resolve().parents[1] / "data/cpuinfo"


def test_cpu_features_edit_the_table_and_pin_the_tvm_target() -> None:
    desc = resolve_target("x86", cpu="znver5", cpu_features="+avx512_fp16,-avx_vnni")
    assert desc.features == resolve_target("x86", cpu="znver5").features - {"avx_vnni"} | {"avx512_fp16"}
    assert desc.source == "--cpu znver5 --cpu-features +avx512_fp16,-avx_vnni"
    mattr = tvm_target_json(desc)["mattr"]
    assert "+avx512fp16" in mattr and "-avxvnni" in mattr
    level = resolve_target("x86", cpu="x86-64-v3", cpu_features="+amx,+amx_int8")
    assert {"amx", "amx_int8"} <= level.features and "avx512f" not in level.features


@pytest.mark.parametrize("bad", ["amx", "+amx-tile", "+avx512fp16,", "+"])
def test_cpu_features_name_a_bad_word(bad: str) -> None:
    with pytest.raises(TargetError, match=r"--cpu-features .* is not \+NAME or -NAME of a known feature"):
        resolve_target("x86", cpu="x86-64-v3", cpu_features=bad)


def pretend_host(monkeypatch: pytest.MonkeyPatch, cpuinfo: str, llvm_name: str) -> frozenset[str]:
    """This process sees the recorded `cpuinfo` as its CPU, which LLVM calls `llvm_name`."""
    cpu = parse_cpuinfo((RECORDED / cpuinfo).read_text())
    monkeypatch.setattr(x86, "host_cpu", lambda: cpu)
    monkeypatch.setattr(x86, "llvm_host_cpu", lambda: llvm_name)
    return frozenset(cpu.features)


def test_host_llvm_name_without_host_features_warns(monkeypatch: pytest.MonkeyPatch) -> None:
    host = pretend_host(monkeypatch, "sapphire_rapids_vm.txt", "rocketlake")
    edits = "+avx512_bf16,+avx512_fp16,+avx_vnni,+amx,+amx_bf16,+amx_int8"
    with pytest.warns(
        CpuFeaturesWarning, match=rf"lacks avx512_bf16, .*amx_int8, which this CPU has.*{re.escape(edits)}$"
    ):
        resolve_target("x86", cpu="rocketlake")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert resolve_target("x86", cpu="rocketlake", cpu_features=edits).features == host
        resolve_target("x86", cpu="sapphirerapids")  # another name: a cross-compile, no warning


def test_host_llvm_name_with_features_the_host_lacks_warns(monkeypatch: pytest.MonkeyPatch) -> None:
    pretend_host(monkeypatch, "zen5_epyc.txt", "znver5")
    with pytest.warns(
        CpuFeaturesWarning, match=r"has avx512_fp16, which this CPU lacks \(the artifact would not"
    ):
        resolve_target("x86", cpu="znver5", cpu_features="+avx512_fp16")


def test_compile_options_carry_cpu_features_to_the_target_and_manifest() -> None:
    from hai_compiler.compiler.options import CompileOptions, resolve_compile_target

    options = CompileOptions(cpu="znver5", cpu_features="+avx512_fp16")
    assert "avx512_fp16" in resolve_compile_target(options, None).features
    assert options.manifest_options(None)["cpu_features"] == "+avx512_fp16"
