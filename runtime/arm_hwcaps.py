"""An aarch64 CPU's features from the kernel's HWCAP bits (`getauxval(AT_HWCAP/AT_HWCAP2)`).

Rule: on aarch64 the runtime asks the kernel through the auxiliary vector, never /proc/cpuinfo
alone: under qemu-user /proc/cpuinfo is the x86 host's file, while qemu fills the auxiliary
vector for the CPU it emulates (`-cpu cortex-a53`), as a real kernel does for the real CPU.
The bits are those of Linux's arch/arm64/include/uapi/asm/hwcap.h, each named the way
/proc/cpuinfo's `Features` line spells it, so runtime/cpu_features.py turns them into HAI
names with the same table it uses for cpuinfo text. Standard library only.
"""

from __future__ import annotations

import ctypes

AT_HWCAP = 16  # linux/auxvec.h
AT_HWCAP2 = 26

# AT_HWCAP bit -> /proc/cpuinfo word (hwcap.h `HWCAP_*`).
HWCAP_BITS: dict[int, str] = {
    0: "fp", 1: "asimd", 2: "evtstrm", 3: "aes", 4: "pmull", 5: "sha1", 6: "sha2", 7: "crc32",
    8: "atomics", 9: "fphp", 10: "asimdhp", 11: "cpuid", 12: "asimdrdm", 13: "jscvt", 14: "fcma",
    15: "lrcpc", 16: "dcpop", 17: "sha3", 18: "sm3", 19: "sm4", 20: "asimddp", 21: "sha512",
    22: "sve", 23: "asimdfhm", 24: "dit", 25: "uscat", 26: "ilrcpc", 27: "flagm", 28: "ssbs",
    29: "sb", 30: "paca", 31: "pacg",
}  # fmt: skip

# AT_HWCAP2 bit -> /proc/cpuinfo word (hwcap.h `HWCAP2_*`).
HWCAP2_BITS: dict[int, str] = {
    0: "dcpodp", 1: "sve2", 2: "sveaes", 3: "svepmull", 4: "svebitperm", 5: "svesha3", 6: "svesm4",
    7: "flagm2", 8: "frint", 9: "svei8mm", 10: "svef32mm", 11: "svef64mm", 12: "svebf16", 13: "i8mm",
    14: "bf16", 15: "dgh", 16: "rng", 17: "bti", 18: "mte", 19: "ecv", 20: "afp", 21: "rpres",
}  # fmt: skip


def hwcap_words(hwcap: int, hwcap2: int) -> frozenset[str]:
    """The /proc/cpuinfo feature words whose HWCAP/HWCAP2 bits are set (unknown bits are ignored)."""
    words = {name for bit, name in HWCAP_BITS.items() if hwcap >> bit & 1}
    words.update(name for bit, name in HWCAP2_BITS.items() if hwcap2 >> bit & 1)
    return frozenset(words)


def auxv_hwcaps() -> tuple[int, int] | None:
    """(AT_HWCAP, AT_HWCAP2) of this process, or None where libc has no `getauxval`."""
    getauxval = getattr(ctypes.CDLL(None), "getauxval", None)  # the process's libc (glibc >= 2.16)
    if getauxval is None:
        return None
    getauxval.restype = ctypes.c_ulong
    getauxval.argtypes = [ctypes.c_ulong]
    return int(getauxval(AT_HWCAP)), int(getauxval(AT_HWCAP2))
