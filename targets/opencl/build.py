"""Building OpenCL kernels: each kernel's thread-bound schedule -> OpenCL C and launch sizes, cached as JSON.

Rule: a kernel compiles alone (`tvm.compile` for `{"kind": "opencl", "host": {"kind": "llvm"}}`) and
only its device half is kept: the OpenCL C of `lib.mod.imports[0].inspect_source()`, and for each
device kernel TVM split it into (`<name>_kernel`, `<name>_kernel_1`, ... in the order they run) its
launch sizes (targets/opencl/threads.py) and its arguments, each a parameter of the PrimFunc or a
scratch buffer of its own (an intermediate TVM would have the host allocate), with its element size:
every buffer comes with the element offset of the view it stands for (`with_offsets`). A kernel that
gives no device code is refused naming it (threads.py refuses a rule whose kernels would hang a GPU:
`check_converged`). The kernel library of a plan (`link_library`) is one JSON file:
`format`, the device `profile`, the program `source` (every kernel's, then `hai_plan_digest`, which
writes the plan digest, runtime/plan_digest.py) and each kernel's launches: what the OpenCL driver
(runtime/devices/opencl.py) builds and runs. Identical inputs give identical bytes.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from targets.kernel_cache import cache_key, cached_file
from targets.lowering.kernel import LoweredKernel
from targets.opencl.threads import ThreadBindingError, buffer_names, describe, launch_sizes, thread_schedule
from targets.target import TargetDescription

LIBRARY_FORMAT = "hai-opencl-2"
PLAN_DIGEST_SYMBOL = "hai_plan_digest"
_IDENTIFIER = re.compile(r"[A-Za-z_]\w*")
_NOT_IDENTIFIER = re.compile(r"\W")
_SIGNATURE = re.compile(r"__kernel void (\w+)\(([^)]*)\)\s*\{")
_DECLARATION = re.compile(r"__kernel void (\w+)\(([^)]*)\)(\s*)([;{])")
ITEMSIZE = {"char": 1, "uchar": 1, "bool": 1, "short": 2, "ushort": 2, "half": 2, "int": 4, "uint": 4,
            "float": 4, "long": 8, "ulong": 8, "double": 8}  # fmt: skip
"""Bytes of the OpenCL C element types a kernel parameter may point to."""
SCHEDULE_MODULES = (
    "threads.py",
    "tiled.py",
    "int_gemm.py",
    "flat.py",
    "rows.py",
    "tir_walk.py",
    "legalize.py",
    "build.py",
)
"""The modules whose code shapes a kernel record: part of each record's cache key (`_threads_version`)."""


def kernel_record(
    kernel: LoweredKernel, target_json: dict[str, Any], int8_dot: bool = False, compute_units: int = 0
) -> dict[str, Any]:
    """The OpenCL C and launches of one kernel (module doc); `int8_dot`: the device has integer dot
    products; `compute_units`: the device's (the tiled rule's work-group count aims at them)."""
    import tvm

    scheduled, lib = thread_schedule(kernel, tvm.target.Target(target_json), int8_dot, compute_units)
    if not lib.mod.imports:
        raise ThreadBindingError(f"{describe(kernel)}: compiled into host code only (no OpenCL kernel)")
    source, aliases = c_identifiers(lib.mod.imports[0].inspect_source())
    params, scratch = buffer_names(scheduled)
    sizes = launch_sizes(scheduled)
    defined = {name: args for name, args in _SIGNATURE.findall(source)}
    order = [f"{kernel.name}_kernel"] + [f"{kernel.name}_kernel_{i}" for i in range(1, len(sizes))]
    if sorted(defined) != sorted(order):
        raise ThreadBindingError(
            f"{describe(kernel)}: TVM emitted kernels {sorted(defined)} for {len(sizes)} thread-bound nests"
        )
    types = {name: _parameter_types(text) for name, text in defined.items()}
    buffers = [("param", i, name) for i, name in enumerate(params)]
    buffers += [("scratch", i, name) for i, (name, _) in enumerate(scratch)]
    launches = []
    for name, size in zip(order, sizes, strict=True):
        args = []
        for parameter in _parameters(defined[name]):
            found = _buffer_of(aliases.get(parameter, parameter), buffers)
            if found is None:
                raise ThreadBindingError(f"{describe(kernel)}: device kernel {name} takes {parameter!r}, "
                                         f"which names no buffer of the kernel")  # fmt: skip
            args.append([*found, ITEMSIZE[types[name][parameter]]])
        launches.append({
            "kernel": name, "global": list(size.global_size), "local": list(size.local_size), "args": args,
        })  # fmt: skip
    return {
        "name": kernel.name,
        "source": with_offsets(source),
        "launches": launches,
        "scratch": [nbytes for _, nbytes in scratch],
        "params": len(params),
        "schedule": str(scheduled.attrs["hai.schedule"]),
        "tile": json.loads(str(scheduled.attrs["hai.tile"])) if "hai.tile" in scheduled.attrs else None,
    }


def with_offsets(source: str) -> str:
    """Every kernel of `source` takes, after its buffers, one `int <buffer>_off` each, the element its
    view starts at, and shifts the pointer by it first: the driver passes a view of the arena or
    the weights as that buffer and offset, never as a sub-buffer (NVIDIA's OpenCL gave wrong results
    with overlapping sub-buffers of one arena)."""

    def rewrite(match: re.Match[str]) -> str:
        name, text, space, end = match.groups()
        names = _parameters(text)
        signature = f"__kernel void {name}({text}, {', '.join(f'int {p}_off' for p in names)}){space}{end}"
        return signature + ("".join(f" {p} += {p}_off;" for p in names) if end == "{" else "")

    return _DECLARATION.sub(rewrite, source)


def _parameter_types(text: str) -> dict[str, str]:
    """Each pointer parameter's element type (`__global float* restrict x_ptr` -> float)."""
    types = {}
    for each in text.split(","):
        words = each.replace("*", " * ").split()
        if "*" in words:
            types[words[-1]] = words[words.index("*") - 1]
    return types


def _parameters(text: str) -> list[str]:
    """The argument names of a kernel's parameter list (`__global float* restrict x_ptr, ...`)."""
    return [each.strip().split()[-1].lstrip("*") for each in text.split(",") if each.strip()]


def _buffer_of(parameter: str, buffers: list[tuple[str, int, str]]) -> tuple[str, int] | None:
    """The (kind, index) of the buffer a device-kernel parameter names: TVM names it `<buffer>_ptr`
    with characters that are no C identifier's replaced by `_`, and a `_<n>` suffix where that
    name was taken; one buffer must match."""
    if not parameter.endswith("_ptr"):
        return None
    stem = parameter[: -len("_ptr")]
    for candidate in (stem, re.sub(r"_\d+$", "", stem)):
        matches = [
            (kind, i) for kind, i, name in buffers if candidate in (name, _NOT_IDENTIFIER.sub("_", name))
        ]
        if len(matches) == 1:
            return matches[0]
    return None


def c_identifiers(source: str) -> tuple[str, dict[str, str]]:
    """The source with every kernel parameter that is no C identifier (TVM keeps some IR value names,
    e.g. `Add@3_0_ptr`, as they are) renamed `hai_buf<i>_ptr`, and the new names' old ones."""
    aliases: dict[str, str] = {}
    for _, text in _SIGNATURE.findall(source):
        for parameter in _parameters(text):
            if not _IDENTIFIER.fullmatch(parameter) and parameter not in aliases.values():
                aliases[f"hai_buf{len(aliases)}_ptr"] = parameter
    for safe, name in aliases.items():
        source = re.sub(rf"(?<![\w@.]){re.escape(name)}(?!\w)", safe, source)
    return source, aliases


def kernel_file(
    kernel: LoweredKernel, desc: TargetDescription, target_json: dict[str, Any]
) -> tuple[Path, bool]:
    """The cached JSON record of one kernel (compiled now if missing) and whether it was a hit."""
    compute = kernel.compute.script() if kernel.compute is not None else kernel.func.script()
    int8_dot = "int8_dot" in desc.features
    units = int(dict(desc.device).get("compute_units", 0)) if desc.device else 0
    facts = {
        "name": kernel.name,
        "workload": kernel.workload,
        "compute": hashlib.sha256(compute.encode()).hexdigest(),
        "threads": _threads_version(),
        "int8_dot": int8_dot,
        "compute_units": units,
    }
    key = cache_key(
        facts,
        target_json,
    )  # fmt: skip
    return cached_file(
        key,
        ".json",
        writer(lambda: json.dumps(kernel_record(kernel, target_json, int8_dot, units), sort_keys=True)),
    )


def digest_source(digest: bytes) -> str:
    """`hai_plan_digest(out, out_off)`: writes the 32 bytes of `digest` (one work-item)."""
    stores = " ".join(f"out[{i}] = {byte}u;" for i, byte in enumerate(digest))
    return with_offsets(f"__kernel void {PLAN_DIGEST_SYMBOL}(__global uchar* restrict out) {{ {stores} }}\n")


def link_library(
    files: Sequence[Path], desc: TargetDescription, profile: dict[str, Any], digest: bytes | None
) -> Path:
    """The plan's kernel library: one JSON file of every kernel record and the digest kernel (cached)."""
    records = sorted((json.loads(path.read_text()) for path in files), key=lambda r: r["name"])
    library = {
        "format": LIBRARY_FORMAT,
        "profile": profile,
        "source": "\n".join([*(r["source"] for r in records), digest_source(digest or bytes(32))]),
        "kernels": {
            r["name"]: {
                k: r[k] for k in ("launches", "scratch", "params", "schedule", "tile") if r.get(k) is not None
            }
            for r in records
        },
    }
    text = json.dumps(library, sort_keys=True, indent=1)
    key = hashlib.sha256(text.encode()).hexdigest()
    path, _ = cached_file(key, ".json", writer(lambda: text))
    return path


def writer(text: Callable[[], str]) -> Callable[[Path], None]:
    """A cache entry's producer: writes `text()` to the path it is given."""

    def write(path: Path) -> None:
        path.write_text(text())

    return write


def _threads_version() -> str:
    """A digest of the schedule and legalize modules: editing them never reuses a stale kernel."""
    here = Path(__file__).parent
    digest = hashlib.sha256()
    for module in SCHEDULE_MODULES:
        digest.update((here / module).read_bytes())
    return digest.hexdigest()[:12]
