"""ISA features of a CPU, read from /proc/cpuinfo text and named the way HAI names them everywhere.

HAI feature names (manifest, hardware profile, `Capabilities.features`) are the
issue's spelling: `sse4.2 avx avx2 fma f16c avx512f avx512bw avx512vl avx512dq
avx512cd avx512_vnni avx512_bf16 avx512_fp16 avx_vnni amx amx_bf16 amx_int8` on
x86 and `neon fp16 dotprod i8mm bf16 sve sve2` on Arm. The x86-64 micro-architecture
level (psABI v2/v3/v4) is computed from the kernel's flags. On aarch64 the live
CPU's features come from the kernel's HWCAP bits (runtime/arm_hwcaps.py), which
qemu-user emulates, where /proc/cpuinfo shows the host's. Pure functions over
text and bits, so tests feed fake cpuinfo; imports only the standard library.
"""

from __future__ import annotations

import platform
from collections.abc import Iterable
from dataclasses import dataclass, replace

from runtime.arm_hwcaps import auxv_hwcaps, hwcap_words

# HAI name -> /proc/cpuinfo flag (x86 "flags" line).
X86_FEATURES: dict[str, str] = {
    "sse4.2": "sse4_2",
    "avx": "avx",
    "avx2": "avx2",
    "fma": "fma",
    "f16c": "f16c",
    "avx512f": "avx512f",
    "avx512bw": "avx512bw",
    "avx512vl": "avx512vl",
    "avx512dq": "avx512dq",
    "avx512cd": "avx512cd",
    "avx512_vnni": "avx512_vnni",
    "avx512_bf16": "avx512_bf16",
    "avx512_fp16": "avx512_fp16",
    "avx_vnni": "avx_vnni",
    "amx": "amx_tile",
    "amx_bf16": "amx_bf16",
    "amx_int8": "amx_int8",
}

# HAI name -> any of these /proc/cpuinfo "Features" words (aarch64 spelling first, 32-bit Arm second).
ARM_FEATURES: dict[str, tuple[str, ...]] = {
    "neon": ("asimd", "neon"),
    "fp16": ("asimdhp",),
    "dotprod": ("asimddp",),
    "i8mm": ("i8mm",),
    "bf16": ("bf16",),
    "sve": ("sve",),
    "sve2": ("sve2",),
}

# x86-64 psABI micro-architecture levels, as /proc/cpuinfo flags (pni = SSE3, abm = LZCNT).
X86_64_V1 = frozenset({"cmov", "cx8", "fpu", "fxsr", "mmx", "sse", "sse2", "lm"})
X86_64_V2 = X86_64_V1 | {"cx16", "lahf_lm", "popcnt", "pni", "sse4_1", "sse4_2", "ssse3"}
X86_64_V3 = X86_64_V2 | {"avx", "avx2", "bmi1", "bmi2", "f16c", "fma", "abm", "movbe", "xsave"}
X86_64_V4 = X86_64_V3 | {"avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl"}
X86_64_LEVELS: dict[str, frozenset[str]] = {
    "x86-64": X86_64_V1,
    "x86-64-v2": X86_64_V2,
    "x86-64-v3": X86_64_V3,
    "x86-64-v4": X86_64_V4,
}

# Arm "CPU implementer" 0x41 (Arm Ltd) "CPU part" -> LLVM cpu name, for hosts without TVM to ask.
ARM_PARTS: dict[int, str] = {
    0xD03: "cortex-a53",
    0xD04: "cortex-a35",
    0xD05: "cortex-a55",
    0xD07: "cortex-a57",
    0xD08: "cortex-a72",
    0xD09: "cortex-a73",
    0xD0A: "cortex-a75",
    0xD0B: "cortex-a76",
    0xD0C: "neoverse-n1",
    0xD0D: "cortex-a77",
    0xD40: "neoverse-v1",
    0xD41: "cortex-a78",
    0xD44: "cortex-x1",
    0xD46: "cortex-a510",
    0xD47: "cortex-a710",
    0xD48: "cortex-x2",
    0xD49: "neoverse-n2",
    0xD4F: "neoverse-v2",
}


@dataclass(frozen=True)
class CpuIdentity:
    """What /proc/cpuinfo says about the CPU: architecture, vendor, model, HAI features, ISA level."""

    arch: str  # "x86_64", "aarch64", "arm"
    vendor: str
    model: str
    logical_cpus: int
    features: tuple[str, ...]  # HAI names, sorted
    isa_level: str | None  # x86-64 level; None off x86
    flags: frozenset[str]  # the raw flag words, for anything not named above
    arm_cpu: str | None = None  # LLVM cpu name from the Arm part number, when known


def cpuinfo_records(text: str) -> list[dict[str, str]]:
    """/proc/cpuinfo as one `key: value` dict per blank-line separated block."""
    records: list[dict[str, str]] = []
    current: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if current:
                records.append(current)
            current = {}
            continue
        key, sep, value = line.partition(":")
        if sep:
            current[key.strip().lower()] = value.strip()
    if current:
        records.append(current)
    return records


def x86_64_level(flags: Iterable[str]) -> str | None:
    """The highest x86-64 psABI level whose flags are all present, or None when even the baseline is not."""
    present = set(flags)
    best = None
    for name, required in X86_64_LEVELS.items():
        if required <= present:
            best = name
    return best


def hai_features(flags: Iterable[str], arch: str) -> tuple[str, ...]:
    """The HAI names of the features in `flags` (x86 `flags` or Arm `Features` words), sorted."""
    present = set(flags)
    if arch == "x86_64":
        names = [name for name, flag in X86_FEATURES.items() if flag in present]
    else:
        names = [name for name, words in ARM_FEATURES.items() if present.intersection(words)]
    return tuple(sorted(names))


def missing_features(required: Iterable[str], available: Iterable[str]) -> list[str]:
    """The required HAI features this CPU lacks, sorted (empty when an artifact can run here)."""
    return sorted(set(required) - set(available))


def infer_arch(record: dict[str, str]) -> str:
    """Architecture from a cpuinfo block's keys: x86 has `flags`, Arm has `features`."""
    if "flags" in record:
        return "x86_64"
    if "features" in record:
        return "aarch64" if "asimd" in record["features"].split() else "arm"
    return platform.machine()


def arm_cpu_name(record: dict[str, str]) -> str | None:
    """LLVM cpu name for an Arm Ltd core from its implementer and part numbers, when in the table."""
    try:
        implementer = int(record.get("cpu implementer", ""), 16)
        part = int(record.get("cpu part", ""), 16)
    except ValueError:
        return None
    return ARM_PARTS.get(part) if implementer == 0x41 else None


def parse_cpuinfo(text: str, arch: str | None = None) -> CpuIdentity:
    """Identify the CPU from /proc/cpuinfo `text`; `arch` defaults to what the text shows."""
    records = [r for r in cpuinfo_records(text) if "processor" in r] or cpuinfo_records(text) or [{}]
    first = records[0]
    arch = arch or infer_arch(first)
    words = frozenset((first.get("flags") or first.get("features") or "").split())
    processors = sum(1 for r in records if r.get("processor", "").isdigit())
    vendor = first.get("vendor_id") or first.get("cpu implementer") or "unknown"
    model = first.get("model name") or first.get("hardware") or first.get("cpu part") or "unknown"
    return CpuIdentity(
        arch=arch,
        vendor=vendor,
        model=model,
        logical_cpus=max(processors, 1),
        features=hai_features(words, arch),
        isa_level=x86_64_level(words) if arch == "x86_64" else None,
        flags=words,
        arm_cpu=arm_cpu_name(first) if arch != "x86_64" else None,
    )


LIVE_CPUINFO = "/proc/cpuinfo"


def host_cpu(cpuinfo_path: str = LIVE_CPUINFO) -> CpuIdentity:
    """Identify this machine's CPU; an unreadable cpuinfo gives an identity with no features.

    On aarch64 the live machine's features come from the kernel's HWCAP bits instead
    (`aarch64_identity`): under qemu-user /proc/cpuinfo describes the x86 host.
    """
    try:
        with open(cpuinfo_path, encoding="utf-8", errors="replace") as f:
            text = f.read()
    except OSError:
        text = ""
    hwcaps = auxv_hwcaps() if cpuinfo_path == LIVE_CPUINFO and platform.machine() == "aarch64" else None
    if hwcaps is not None:
        return aarch64_identity(text, *hwcaps)
    return parse_cpuinfo(text, arch=platform.machine() if not text else None)


def aarch64_identity(cpuinfo_text: str, hwcap: int, hwcap2: int) -> CpuIdentity:
    """An aarch64 CPU whose features are its HWCAP bits; vendor, model and Arm cpu name come from the
    cpuinfo text only when that describes an Arm CPU (under qemu-user it is the host's: "unknown")."""
    words = hwcap_words(hwcap, hwcap2)
    records = cpuinfo_records(cpuinfo_text)
    cpu = parse_cpuinfo(cpuinfo_text, arch="aarch64")
    if not records or infer_arch(records[0]) != "aarch64":
        cpu = replace(cpu, vendor="unknown", model="unknown", arm_cpu=None)
    return replace(cpu, features=hai_features(words, "aarch64"), flags=words)
