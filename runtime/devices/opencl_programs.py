"""OpenCL programs of an artifact's kernel library, built at load through a program-binary cache.

Rule: the library (targets/opencl/build.py) is JSON: `format`, the device `profile`, the program
`source` and each kernel's launches. `build_program` builds the source for one device, reusing a
binary cached under `$HAI_CACHE_DIR/opencl` (or `~/.cache/hai/opencl`) keyed by the device's name,
platform, driver version and the source's sha256; a cached binary is used only when its own sha256
(kept beside it) matches, like any file the runtime loads, else it is rebuilt. A source that fails to
build raises a `KernelError` carrying the driver's build log; one that enables an OpenCL extension the
device lacks is refused before it is built (`check_extensions`). Imports numpy-free stdlib and pyopencl.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

from runtime.errors import ArtifactError, KernelError, UnsupportedError

LIBRARY_FORMAT = "hai-opencl-2"
EXTENSION_PRAGMA = re.compile(r"#pragma\s+OPENCL\s+EXTENSION\s+(\w+)\s*:\s*enable")


def read_library(data: bytes, where: str) -> dict[str, Any]:
    """The parsed kernel library, checked for its format."""
    try:
        library = json.loads(data)
    except ValueError as exc:
        raise ArtifactError(f"{where} is not an OpenCL kernel library (JSON): {exc}") from None
    if not isinstance(library, dict) or library.get("format") != LIBRARY_FORMAT:
        raise ArtifactError(f"{where} is not an OpenCL kernel library of format {LIBRARY_FORMAT!r}")
    return library


def required_extensions(source: str) -> list[tuple[str, ...]]:
    """The extensions `source` enables, each as the alternatives that satisfy it: a pragma inside an
    `#ifdef A` / `#elif defined(B)` chain (TVM's fp16 prologue: cl_khr_fp16, else cl_amd_fp16) needs
    one of the chain's names, a pragma outside any chain its own."""
    needed: list[tuple[str, ...]] = []
    chain: list[str] | None = None
    for line in source.splitlines():
        text = line.strip()
        if text.startswith("#ifdef "):
            chain = [text.split()[1]]
        elif text.startswith("#elif defined(") and chain is not None:
            chain.append(text[len("#elif defined(") :].rstrip(")"))
        elif text.startswith("#endif") and chain is not None:
            if tuple(chain) not in needed:
                needed.append(tuple(chain))
            chain = None
        elif chain is None and (match := EXTENSION_PRAGMA.search(text)) and (match.group(1),) not in needed:
            needed.append((match.group(1),))
    return needed


def check_extensions(device: Any, source: str, where: str) -> None:
    """Refuse a program whose source enables an OpenCL extension `device` lacks (an fp16 artifact on a
    device without cl_khr_fp16), naming both, before the driver fails to build it."""
    present = set(device.extensions.split())
    missing = [" or ".join(names) for names in required_extensions(source) if not present & set(names)]
    if missing:
        raise UnsupportedError(
            f"{where} needs the OpenCL extension(s) {', '.join(missing)}, which device "
            f"{device.name.strip()!r} ({device.platform.name.strip()}) lacks; run it on a device that has "
            f"them, or recompile for this device's profile (hai doctor; fp16: --precision fp32)"
        )


def cache_folder() -> Path:
    root = os.environ.get("HAI_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "hai")
    return Path(root) / "opencl"


def binary_key(device: Any, source: str) -> str:
    facts = [
        device.name,
        device.platform.name,
        device.platform.version,
        device.driver_version,
        device.version,
    ]
    text = json.dumps([*facts, hashlib.sha256(source.encode()).hexdigest()])
    return hashlib.sha256(text.encode()).hexdigest()


def cached_binary(key: str) -> bytes | None:
    """The cached binary of `key` when its recorded sha256 matches its bytes, else None."""
    folder = cache_folder()
    try:
        binary = (folder / f"{key}.bin").read_bytes()
        recorded = (folder / f"{key}.sha256").read_text().strip()
    except OSError:
        return None
    return binary if hashlib.sha256(binary).hexdigest() == recorded else None


def store_binary(key: str, binary: bytes) -> None:
    """Keep `binary` with its sha256 (best effort: a cache that cannot be written is skipped)."""
    folder = cache_folder()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for name, data in (
            (f"{key}.bin", binary),
            (f"{key}.sha256", hashlib.sha256(binary).hexdigest().encode()),
        ):
            tmp = folder / f".{name}.{os.getpid()}"
            tmp.write_bytes(data)
            tmp.replace(folder / name)
    except OSError:
        return


def build_errors(log: str) -> str:
    """The lines of a driver's build log that say what failed (NVIDIA's log leads with a warning per
    kernel), or its first line when none says "error"."""
    errors = [
        line.strip()
        for line in log.splitlines()
        if "error" in line.lower() and "build_program" not in line.lower()
    ]
    return "; ".join(errors) or log.strip().split("\n", 1)[0]


def build_program(context: Any, device: Any, source: str, where: str) -> tuple[Any, bool]:
    """The built program of `source` on `device` and whether its binary came from the cache."""
    import pyopencl as cl

    key = binary_key(device, source)
    binary = cached_binary(key)
    if binary is not None:
        try:
            return cl.Program(context, [device], [binary]).build(), True
        except cl.Error:
            pass  # a binary the driver no longer takes: build the source again
    try:
        program = cl.Program(context, source).build(devices=[device])
    except cl.Error as exc:
        raise KernelError(
            f"the OpenCL program of {where} failed to build on {device.name.strip()}: "
            f"{build_errors(str(exc))}\nthe driver's whole log:\n{exc}"
        ) from None
    binaries = program.get_info(cl.program_info.BINARIES)
    if binaries and binaries[0]:
        store_binary(key, bytes(binaries[0]))
    return program, False
