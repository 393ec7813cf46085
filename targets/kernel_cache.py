"""On-disk cache of compiled kernels: one object file per workload, one shared library per kernel set.

Rule: a kernel's entry is keyed by sha256 over its workload (op, shapes, dtypes,
attributes, schedule knobs, fused epilogue), the TVM target JSON and the HAI,
TVM and LLVM versions, so any change to one of them misses. Entries are written
atomically (a temp file in the same directory, then `os.replace`), so parallel
processes (pytest-xdist, two `hai compile`s) share the cache safely: at worst
both compile and the last rename wins with identical bytes. The directory is
`$HAI_CACHE_DIR/kernels`, default `~/.cache/hai/kernels`.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Mapping
from functools import cache
from pathlib import Path
from typing import Any

HAI_CACHE_ENV = "HAI_CACHE_DIR"
CACHE_FORMAT = 1


def cache_root() -> Path:
    """`$HAI_CACHE_DIR`, or `~/.cache/hai`: the folder of HAI's caches (kernels, models, wheels)."""
    return Path(os.environ.get(HAI_CACHE_ENV) or Path.home() / ".cache" / "hai")


def cache_dir() -> Path:
    """`$HAI_CACHE_DIR/kernels`, or `~/.cache/hai/kernels`; created on first use."""
    path = cache_root() / "kernels"
    path.mkdir(parents=True, exist_ok=True)
    return path


@cache
def toolchain_versions() -> dict[str, str]:
    """HAI, TVM and LLVM versions: a compiled kernel is only reused under the same three."""
    from importlib.metadata import PackageNotFoundError, version

    import tvm
    from tvm.target import codegen

    try:
        hai = version("hai-compiler")
    except PackageNotFoundError:  # not installed as a distribution (running from the tree)
        hai = "dev"
    return {
        "hai": hai,
        "tvm": tvm.__version__,
        "llvm": str(codegen.llvm_version_major()),
        "format": str(CACHE_FORMAT),
    }


def cache_key(workload: Mapping[str, Any], target_json: Mapping[str, Any]) -> str:
    """sha256 over the workload, the target JSON and the toolchain versions."""
    text = json.dumps(
        {"workload": workload, "target": target_json, "versions": toolchain_versions()},
        sort_keys=True,
        separators=(",", ":"),
        default=str,
    )
    return hashlib.sha256(text.encode()).hexdigest()


def write_atomically(path: Path, produce: Callable[[Path], None]) -> Path:
    """Call `produce(tmp)` on a temp path beside `path`, then rename it over `path`."""
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        produce(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def cached_file(key: str, suffix: str, produce: Callable[[Path], None]) -> tuple[Path, bool]:
    """(path of the cache entry `key + suffix`, whether it was already there), producing it if not."""
    path = cache_dir() / key[:2] / f"{key}{suffix}"
    if path.is_file() and path.stat().st_size > 0:
        return path, True
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_atomically(path, produce), False
