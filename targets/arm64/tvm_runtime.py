"""The aarch64 `libtvm_runtime.so` that arm64 artifacts carry, as x86 ones carry the installed TVM's.

Rule: it comes from the aarch64 wheel of the same `apache-tvm` version the compiler runs
(`TVM_REQUIREMENT`, constraints.txt's pin), is extracted once into the cache
(`$HAI_CACHE_DIR/aarch64/`) and its sha256 is checked against `SHA256` on every use, so a
changed or corrupted copy is an error, never a silently different runtime. Moving apache-tvm
means moving both constants (tests/arm64/test_arm64_env.py fails until they agree).
"""

from __future__ import annotations

import hashlib
import os
import zipfile
from pathlib import Path

from ir import HaiError
from targets.kernel_cache import cache_root
from targets.wheels import AARCH64_CP311, cached_wheel

TVM_REQUIREMENT = "apache-tvm==0.27.0.post1"
MEMBER = "tvm/lib/libtvm_runtime.so"
SHA256 = "ba06950fac134b8d71549111fad2c6605cd6f738061fe0482f217c37ccbdff05"


def aarch64_tvm_runtime() -> Path:
    """The cached, sha256-verified aarch64 `libtvm_runtime.so` (extracted from its wheel the first time)."""
    target = cache_root() / "aarch64" / TVM_REQUIREMENT.replace("==", "-") / "libtvm_runtime.so"
    if not target.is_file():
        extract(target)
    digest = hashlib.sha256(target.read_bytes()).hexdigest()
    if digest != SHA256:
        raise HaiError(
            f"{target} has sha256 {digest}, but the aarch64 runtime of {TVM_REQUIREMENT} is pinned at "
            f"{SHA256}; delete the file to extract it again (or update the pin in {__name__})"
        )
    return target


def extract(target: Path) -> None:
    """Write `MEMBER` of the aarch64 apache-tvm wheel to `target` (the ~95 MB wheel is not kept)."""
    wheel = cached_wheel(TVM_REQUIREMENT, target.parent, AARCH64_CP311)
    with zipfile.ZipFile(wheel) as archive:
        data = archive.read(MEMBER)
    tmp = target.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_bytes(data)
    tmp.replace(target)  # atomic: parallel processes may extract at once
    wheel.unlink(missing_ok=True)
