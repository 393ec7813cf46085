"""ISA feature detection from /proc/cpuinfo text: fake cpuinfo for several CPUs, recorded cpuinfo of a
Sapphire Rapids and a Zen 5 (detection and the runtime's refusal of an artifact a CPU cannot run), and
this host checked against two independent readers of cpuid (numpy's dispatcher and glibc's loader)."""

from __future__ import annotations

import platform
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

from runtime.cpu_features import X86_FEATURES, host_cpu, missing_features, parse_cpuinfo, x86_64_level

BASE = (
    "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush mmx fxsr sse sse2 nx lm"
)
V2 = BASE + " pni ssse3 cx16 sse4_1 sse4_2 popcnt lahf_lm"
V3 = V2 + " avx f16c fma movbe xsave abm bmi1 bmi2 avx2"
V4 = V3 + " avx512f avx512dq avx512cd avx512bw avx512vl"


def x86_cpuinfo(flags: str, model: str = "Test CPU", cpus: int = 2, vendor: str = "GenuineIntel") -> str:
    block = "processor\t: {n}\nvendor_id\t: {vendor}\nmodel name\t: {model}\nflags\t\t: {flags}\n"
    return "\n".join(block.format(n=n, vendor=vendor, model=model, flags=flags) for n in range(cpus))


def arm_cpuinfo(features: str, part: str = "0xd0b", cpus: int = 4) -> str:
    block = (
        "processor\t: {n}\nBogoMIPS\t: 50.00\nFeatures\t: {features}\nCPU implementer\t: 0x41\n"
        "CPU architecture: 8\nCPU variant\t: 0x4\nCPU part\t: {part}\nCPU revision\t: 1\n"
    )
    return "\n".join(block.format(n=n, features=features, part=part) for n in range(cpus))


@pytest.mark.parametrize(
    ("flags", "level"),
    [(BASE, "x86-64"), (V2, "x86-64-v2"), (V3, "x86-64-v3"), (V4, "x86-64-v4"), ("fpu sse", None)],
)
def test_x86_64_level_from_flags(flags: str, level: str | None) -> None:
    assert parse_cpuinfo(x86_cpuinfo(flags)).isa_level == level


def test_level_needs_every_flag_of_it() -> None:
    assert x86_64_level(V3.replace(" movbe", "").split()) == "x86-64-v2"
    assert x86_64_level((V4 + " avx512_vnni").replace(" avx512vl", "").split()) == "x86-64-v3"


def test_sapphire_rapids_features() -> None:
    flags = V4 + " avx512_vnni avx512_bf16 avx512_fp16 avx_vnni amx_bf16 amx_tile amx_int8"
    cpu = parse_cpuinfo(x86_cpuinfo(flags, "Intel(R) Xeon(R) Platinum 8480+", cpus=3))
    assert cpu.arch == "x86_64" and cpu.vendor == "GenuineIntel"
    assert cpu.model == "Intel(R) Xeon(R) Platinum 8480+" and cpu.logical_cpus == 3
    assert {"amx", "amx_bf16", "amx_int8", "avx512_fp16", "avx_vnni", "avx512_bf16", "sse4.2"} <= set(
        cpu.features
    )
    assert cpu.features == tuple(sorted(cpu.features))
    assert cpu.arm_cpu is None


def test_haswell_has_no_avx512() -> None:
    cpu = parse_cpuinfo(x86_cpuinfo(V3, "Intel(R) Core(TM) i7-4770"))
    assert cpu.features == ("avx", "avx2", "f16c", "fma", "sse4.2")
    assert cpu.isa_level == "x86-64-v3"


def test_aarch64_cortex_a76() -> None:
    features = (
        "fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp"
    )
    cpu = parse_cpuinfo(arm_cpuinfo(features))
    assert cpu.arch == "aarch64" and cpu.logical_cpus == 4
    assert cpu.features == ("dotprod", "fp16", "neon")
    assert cpu.isa_level is None and cpu.arm_cpu == "cortex-a76"


def test_aarch64_neoverse_v1_with_sve() -> None:
    features = "fp asimd asimdhp asimddp sve i8mm bf16 svei8mm svebf16"
    cpu = parse_cpuinfo(arm_cpuinfo(features, part="0xd40"))
    assert set(cpu.features) == {"neon", "fp16", "dotprod", "sve", "i8mm", "bf16"}
    assert cpu.arm_cpu == "neoverse-v1"


def test_unknown_arm_part_and_empty_text() -> None:
    assert parse_cpuinfo(arm_cpuinfo("fp asimd", part="0xfff")).arm_cpu is None
    empty = parse_cpuinfo("", arch="x86_64")
    assert empty.features == () and empty.isa_level is None and empty.logical_cpus == 1


def test_missing_features() -> None:
    assert missing_features(["avx2", "avx512f", "avx512_vnni"], ["avx2", "fma"]) == ["avx512_vnni", "avx512f"]
    assert missing_features([], ["avx2"]) == []


def test_host_cpu_on_a_missing_file(tmp_path: Path) -> None:
    cpu = host_cpu(str(tmp_path / "nope"))
    assert cpu.arch == platform.machine() and cpu.features == ()


@pytest.mark.skipif(platform.machine() != "x86_64", reason="x86 host only")
def test_host_features_agree_with_numpy_cpuid() -> None:
    from numpy._core._multiarray_umath import __cpu_features__ as numpy_features

    ours = set(host_cpu().features)
    numpy_names = {
        "sse4.2": "SSE42",
        "avx": "AVX",
        "avx2": "AVX2",
        "fma": "FMA3",
        "f16c": "F16C",
        "avx512f": "AVX512F",
        "avx512bw": "AVX512BW",
        "avx512vl": "AVX512VL",
        "avx512dq": "AVX512DQ",
        "avx512cd": "AVX512CD",
        "avx512_vnni": "AVX512VNNI",
        "avx512_fp16": "AVX512FP16",
    }
    for name, numpy_name in numpy_names.items():
        assert (name in ours) == numpy_features[numpy_name], name


@pytest.mark.skipif(platform.machine() != "x86_64", reason="x86 host only")
def test_host_level_agrees_with_glibc_loader() -> None:
    loader = Path("/lib64/ld-linux-x86-64.so.2")
    if not loader.exists():
        pytest.skip("no glibc loader to ask")
    text = subprocess.run([str(loader), "--help"], capture_output=True, text=True).stdout
    supported = [f"x86-64-v{n}" for n in (2, 3, 4) if f"x86-64-v{n} (supported" in text]
    if "x86-64-v2 (" not in text:
        pytest.skip("this glibc does not report x86-64 levels")
    assert host_cpu().isa_level == (supported[-1] if supported else "x86-64")


# -- recorded /proc/cpuinfo of CPUs this machine need not be (tests/data/cpuinfo) ---------------------

RECORDED = Path(__file__).resolve().parents[1] / "data/cpuinfo"
X86_ALL = set(X86_FEATURES)
ZEN5 = X86_ALL - {"avx512_fp16", "amx", "amx_bf16", "amx_int8"}
"""What AMD documents for Zen 5; Sapphire Rapids has every x86 feature HAI names."""


def recorded_root(tmp_path: Path, name: str) -> Path:
    """A fake root whose /proc/cpuinfo is the recorded file `name` (the rest of /proc and /sys absent)."""
    (tmp_path / "proc").mkdir(parents=True)
    (tmp_path / "proc/cpuinfo").write_text((RECORDED / name).read_text())
    return tmp_path


@pytest.mark.parametrize(
    ("name", "vendor", "features"),
    [("sapphire_rapids_vm.txt", "GenuineIntel", X86_ALL), ("zen5_epyc.txt", "AuthenticAMD", ZEN5)],
)
def test_recorded_cpus_features(name: str, vendor: str, features: set[str]) -> None:
    cpu = parse_cpuinfo((RECORDED / name).read_text())
    assert (cpu.arch, cpu.vendor, cpu.logical_cpus, cpu.isa_level) == ("x86_64", vendor, 2, "x86-64-v4")
    assert set(cpu.features) == features


def refusal(artifact_features: set[str], root: Path) -> str | None:
    """The UnsupportedCpuError message for an artifact needing `artifact_features` on the CPU under `root`."""
    from runtime.artifact import TargetInfo
    from runtime.devices.cpu import CpuDriver
    from runtime.errors import UnsupportedCpuError
    from runtime.model import check_cpu

    manifest = SimpleNamespace(target=TargetInfo("x86", "x86_64", "test", tuple(sorted(artifact_features))))
    caps = CpuDriver(root).open().capabilities()
    try:
        check_cpu(manifest, caps, Path("model.hai"))  # type: ignore[arg-type]
    except UnsupportedCpuError as exc:
        return str(exc)
    return None


def test_recorded_cpus_refuse_what_they_lack(tmp_path: Path) -> None:
    zen5 = recorded_root(tmp_path / "zen5", "zen5_epyc.txt")
    spr = recorded_root(tmp_path / "spr", "sapphire_rapids_vm.txt")
    message = refusal(X86_ALL, zen5)
    assert message is not None and "needs CPU feature(s) amx, amx_bf16, amx_int8, avx512_fp16 " in message
    assert refusal(ZEN5, zen5) is None and refusal(ZEN5, spr) is None and refusal(X86_ALL, spr) is None
