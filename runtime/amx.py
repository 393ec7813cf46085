"""AMX tile state: Linux hands a process the tile registers only after it asks for them.

Rule: an artifact whose target has the `amx` feature may run tile instructions
(the bf16 GEMM's AMX blocks, targets/x86/amx.py); on x86-64 Linux a process's
first tile instruction is SIGILL unless it asked first, with
`arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)` (Linux 5.16 and later; the
permission covers every thread of the process). `check_tile_state` asks once
per process, through the C library's `syscall` (ctypes), before any kernel
runs; a kernel that refuses is an UnsupportedCpuError naming the artifact.
Elsewhere (another OS, another arch, an artifact without `amx`) it does nothing.
"""

from __future__ import annotations

import ctypes
import functools
import os
import platform
import sys
from collections.abc import Iterable
from pathlib import Path

from runtime.errors import UnsupportedCpuError

ARCH_REQ_XCOMP_PERM = 0x1023
XFEATURE_XTILEDATA = 18
SYS_ARCH_PRCTL = 158
"""arch_prctl's system call number on x86-64."""
TILE_FEATURE = "amx"


@functools.cache
def request_tile_state() -> int:
    """Ask Linux for the tile state once per process: 0, or the errno it refused with."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.syscall(SYS_ARCH_PRCTL, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0:
        return 0
    return ctypes.get_errno()


def needs_tile_state(features: Iterable[str]) -> bool:
    """Whether kernels compiled for `features` may run tile instructions on this OS and arch."""
    return TILE_FEATURE in features and sys.platform == "linux" and platform.machine() == "x86_64"


def check_tile_state(features: Iterable[str], directory: Path) -> None:
    """Ask for the tile state when the artifact's kernels may use it (module rule)."""
    if not needs_tile_state(features):
        return
    error = request_tile_state()
    if error:
        raise UnsupportedCpuError(
            f"artifact {directory} may run AMX tile instructions, but Linux refused this process the "
            f"tile state (arch_prctl ARCH_REQ_XCOMP_PERM: {os.strerror(error)}; it needs Linux 5.16 or "
            f"later): recompile it with --cpu-features -amx"
        )
