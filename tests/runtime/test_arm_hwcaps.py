"""aarch64 features from HWCAP bits: the bit table against the kernel's own header (Debian's
linux-libc-dev-arm64-cross, which scripts/setup.sh installs), the HAI names a few CPUs' bits give,
and the runtime's refusal on a fake aarch64 host. tests/arm64/ runs the same code under qemu."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import pytest

import runtime.cpu_features
from runtime.arm_hwcaps import HWCAP2_BITS, HWCAP_BITS, auxv_hwcaps, hwcap_words
from runtime.cpu_features import aarch64_identity, host_cpu

KERNEL_HEADER = Path("/usr/aarch64-linux-gnu/include/asm/hwcap.h")
DEFINE = re.compile(r"#define\s+(HWCAP2?)_(\w+)\s+\(1U?L?\s*<<\s*(\d+)\)")


def kernel_bits() -> dict[tuple[str, str], int]:
    """(`HWCAP` or `HWCAP2`, NAME) -> bit, as the kernel header defines them."""
    if not KERNEL_HEADER.is_file():
        pytest.skip(f"{KERNEL_HEADER} is missing: install libc6-dev-arm64-cross (scripts/setup.sh)")
    return {(word, name): int(bit) for word, name, bit in DEFINE.findall(KERNEL_HEADER.read_text())}


def test_bit_table_is_the_kernel_header() -> None:
    header = kernel_bits()
    ours = {("HWCAP", name.upper()): bit for bit, name in HWCAP_BITS.items()}
    ours.update({("HWCAP2", name.upper()): bit for bit, name in HWCAP2_BITS.items()})
    assert {key: header.get(key) for key in ours} == ours


def bits(cpu: dict[str, list[str]]) -> tuple[int, int]:
    """(hwcap, hwcap2) with the kernel header's bits of the words `cpu` lists under "hwcap" and "hwcap2"."""
    header = kernel_bits()
    hwcap, hwcap2 = (sum(1 << header[(word.upper(), name.upper())] for name in cpu.get(word, ()))
                     for word in ("hwcap", "hwcap2"))  # fmt: skip
    return hwcap, hwcap2


CORTEX_A53 = {"hwcap": ["fp", "asimd", "evtstrm", "aes", "pmull", "sha1", "sha2", "crc32", "cpuid"]}
CORTEX_A76 = {"hwcap": [*CORTEX_A53["hwcap"], "atomics", "fphp", "asimdhp", "asimdrdm", "lrcpc", "dcpop",
                        "asimddp"]}  # fmt: skip
NEOVERSE_V1 = {"hwcap": [*CORTEX_A76["hwcap"], "sve"], "hwcap2": ["svei8mm", "svebf16", "i8mm", "bf16"]}
NEOVERSE_V2 = {"hwcap": NEOVERSE_V1["hwcap"], "hwcap2": [*NEOVERSE_V1["hwcap2"], "sve2"]}


@pytest.mark.parametrize(
    ("cpu", "features"),
    [
        (CORTEX_A53, ("neon",)),
        (CORTEX_A76, ("dotprod", "fp16", "neon")),
        (NEOVERSE_V1, ("bf16", "dotprod", "fp16", "i8mm", "neon", "sve")),
        (NEOVERSE_V2, ("bf16", "dotprod", "fp16", "i8mm", "neon", "sve", "sve2")),
    ],
)
def test_features_from_bits(cpu: dict[str, list[str]], features: tuple[str, ...]) -> None:
    identity = aarch64_identity("", *bits(cpu))
    assert identity.arch == "aarch64" and identity.features == features
    assert identity.flags == hwcap_words(*bits(cpu))


def test_unknown_bits_are_ignored() -> None:
    assert hwcap_words(1 << 63, 1 << 62) == frozenset()


def test_qemu_user_cpuinfo_names_no_x86_cpu() -> None:
    """Under qemu-user /proc/cpuinfo is the x86 host's: its vendor, model and flags are not the CPU's."""
    x86_text = "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Xeon\nflags\t\t: avx2 avx512f\n"
    cpu = aarch64_identity(x86_text, *bits(CORTEX_A53))
    assert (cpu.arch, cpu.vendor, cpu.model, cpu.arm_cpu, cpu.features) == (
        "aarch64",
        "unknown",
        "unknown",
        None,
        ("neon",),
    )


def test_arm_cpuinfo_keeps_its_cpu_name() -> None:
    arm_text = "processor\t: 0\nFeatures\t: fp asimd\nCPU implementer\t: 0x41\nCPU part\t: 0xd0b\n"
    cpu = aarch64_identity(arm_text, *bits(CORTEX_A76))
    assert cpu.arm_cpu == "cortex-a76" and "dotprod" in cpu.features


def fake_aarch64_host(monkeypatch: pytest.MonkeyPatch, cpu: dict[str, list[str]]) -> None:
    hwcaps = bits(cpu)
    monkeypatch.setattr(runtime.cpu_features.platform, "machine", lambda: "aarch64")
    monkeypatch.setattr(runtime.cpu_features, "auxv_hwcaps", lambda: hwcaps)


def test_live_aarch64_host_reads_hwcaps(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake_aarch64_host(monkeypatch, CORTEX_A76)
    assert host_cpu().features == ("dotprod", "fp16", "neon")
    (tmp_path / "cpuinfo").write_text("processor\t: 0\nFeatures\t: fp asimd\n")
    assert host_cpu(str(tmp_path / "cpuinfo")).features == ("neon",)  # a recorded file is read as text


def test_cortex_a53_refuses_a_dotprod_artifact(monkeypatch: pytest.MonkeyPatch) -> None:
    from runtime.artifact import TargetInfo
    from runtime.devices.cpu import CpuDriver
    from runtime.errors import UnsupportedCpuError
    from runtime.model import check_cpu

    fake_aarch64_host(monkeypatch, CORTEX_A53)
    caps = CpuDriver("/").open().capabilities()
    manifest = SimpleNamespace(target=TargetInfo("arm64", "aarch64", "cortex-a76", ("dotprod", "neon")))
    with pytest.raises(
        UnsupportedCpuError, match=r"needs CPU feature\(s\) dotprod \(compiled for cpu cortex-a76"
    ):
        check_cpu(manifest, caps, Path("model.hai"))  # type: ignore[arg-type]
    fake_aarch64_host(monkeypatch, CORTEX_A76)
    check_cpu(manifest, CpuDriver("/").open().capabilities(), Path("model.hai"))  # type: ignore[arg-type]


def test_auxv_on_this_host() -> None:
    """glibc has getauxval on every host; its bits are the running architecture's."""
    hwcaps = auxv_hwcaps()
    assert hwcaps is not None and all(isinstance(v, int) and v >= 0 for v in hwcaps)
