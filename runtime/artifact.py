"""The artifact format: what `NAME.hai/` holds and the manifest schema (dataclasses <-> JSON).

An artifact is a directory of plain files (never links), all named in `manifest.json`:

| file                     | what it is                                                            |
| ------------------------ | --------------------------------------------------------------------- |
| `manifest.json`          | this schema as JSON (sorted keys, two-space indent, trailing newline) |
| `weights.bin`            | every weight at a 64-byte aligned offset, zero padding between        |
| `kernels.<device>.so`    | each device's kernel library: the executable its steps run from       |
| `libtvm_runtime.so`      | the TVM runtime the cpu's library needs (loaded first, RTLD_GLOBAL)   |
| `model.hir`              | the final IR, for people and tools; the runtime never reads it        |
| `manifest.sig`           | optional: the Ed25519 signature of `manifest.json`'s bytes (not in `files`) |

The cpu's kernel library is a shared library; OpenCL's is JSON (OpenCL C and launch sizes,
targets/opencl/build.py), and an artifact whose kernels are all OpenCL's carries no TVM runtime.
The manifest's `files` maps every file but itself and the signature to its sha256
and size in bytes. The execution
plan is static: each step calls one kernel symbol on argument slots, and each slot
is a typed view (byte offset, shape, dtype) into the arena, into `weights.bin`, or
into a graph input's buffer or an output's place in the arena (named by the
binding); `writes` marks the slots a step writes (the others it only reads). `plan.loops` names
spans of steps the runtime repeats once per iteration of an ONNX Loop, with the copies it makes
between them (`LoopSpan`, runtime/loops.py).
Each step names the device it runs on and the executable it runs from (the
file of that device's kernel library, `kernel_libraries[device]`); the runtime
loads each executable through its device's HAI driver and launches every call
through it (runtime/hai.py, runtime/model.py). A plan over several devices (`--target x86+opencl`)
moves a value from one device to another by a transfer step (`transfer_from`: no kernel, no
executable) where the compiler's `Transfer` node was; its kernel libraries all carry the one digest.
Graph inputs live outside the arena (binding offset null): input slots
view the caller's array itself. Every slot offset is a multiple of 64 (vectorised
kernels do aligned loads unchecked). When `plan.entry` names a function of the
executable `plan.entry_executable` (the cpu library today), one call
`entry(arena, weights, input_0, ...)` (1-D uint8 tensors, the
inputs in manifest order) runs the whole plan and the steps are kept for
provenance and profiling. When `plan.paging` is set, the weights do not stay
resident: `weights.bin` is laid out in pages (page `p` at byte `p * page_size`),
the runtime reads them into a pool of `frames` page frames by the static
schedule (one `PageStep` per plan step: pages evicted, then `(page, frame)`
loads issued, then the pages the step needs), and a weight slot, whose offset
still names its bytes in `weights.bin`, lies at `frame * page_size + offset %
page_size` of the pool while its page is resident. `plan.segments` then
replaces the entry: each segment calls `symbol(arena, pool, input_0, ...)` of its
`executable` for steps `[start, stop)`, which wait for no page once the first has its
pages. Dtypes are numpy names from `DTYPES` (the HAI IR's element types and
the kernels' uint16 view of bfloat16; `bfloat16` and `int4` via ml_dtypes).

The compiled code bakes the plan in (an entry's offsets, sizes and calls), so
the cpu library also exports `hai_plan_digest`, which writes the sha256 of the
facts it was compiled for (the target, every plan field but `planned_peak_bytes`,
the inputs and outputs, the weights' table and size: runtime/plan_digest.py);
`load` refuses a manifest that gives another digest, signed or not, before any
kernel runs. The runtime
reads, maps and loads each file through the descriptor it was checked through
(runtime/artifact_files.py, runtime/fd_library.py), never by its path again.

Format history: version 4 added file sizes to `files` and `writes` to slots;
version 5, the plan digest in the kernel library; version 6, the digest covers
the target and the weights' table too; version 7, the executable each step, the entry and each
segment runs from; version 8, each step's guards; version 9, the plan's device memory
(`device_memory`: runtime/device_memory.py); version 10, loops run at run time (`loops`: spans of
steps the runtime repeats, runtime/loops.py) and transfer steps between devices
(`Step.transfer_from`) (older artifacts are refused with a "recompile" message).

The writer is `targets/artifact.py`; a manifest's text is parsed and its plan's invariants
checked by `runtime/manifest_checks.py` (`parse_manifest`) and an artifact directory is read by
`runtime/artifact_files.py`. This module imports the standard library and numpy,
nothing of ours but `runtime.errors`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields
from types import UnionType
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

import numpy as np

from runtime.errors import ArtifactError, ArtifactVersionError

FORMAT_VERSION = 10
MANIFEST_FILE = "manifest.json"
WEIGHTS_FILE = "weights.bin"
HIR_FILE = "model.hir"
TVM_RUNTIME_FILE = "libtvm_runtime.so"
TVM_RUNTIME_DEVICES = frozenset({"cpu"})
"""Devices whose kernel library is an LLVM shared library that needs `libtvm_runtime.so`."""
SIGNATURE_FILE = "manifest.sig"
ALIGNMENT = 64
SlotKind = Literal["arena", "weight", "input", "output"]
SLOT_KINDS = ("arena", "weight", "input", "output")
DTYPES = ("float32", "float16", "bfloat16", "float64", "int4", "int8", "uint8", "int16", "uint16", "int32",
          "int64", "bool")  # fmt: skip
"""The dtype names a manifest may use: the numpy names of HAI IR's element types (ir/dtypes.py), and
uint16, the view kernels take of bfloat16 (targets/lowering/pointwise.py `storage_dtype`)."""


def kernel_library_file(device: str) -> str:
    """The file name of `device`'s kernel library inside an artifact."""
    return f"kernels.{device}.so"


def numpy_dtype(name: str) -> np.dtype:
    """The numpy dtype a manifest names (one of `DTYPES`); `bfloat16` and `int4` need ml_dtypes."""
    known = _NUMPY_DTYPES.get(name) if isinstance(name, str) else None
    if known is not None:
        return known
    if name not in DTYPES:
        raise ArtifactError(f"unknown dtype {name!r} in manifest (expected one of {', '.join(DTYPES)})")
    if hasattr(np, name):
        return _NUMPY_DTYPES.setdefault(name, np.dtype(name))
    try:
        import ml_dtypes
    except ImportError as exc:
        raise ArtifactError(f"dtype {name!r} needs the ml_dtypes package, which is not installed") from exc
    return _NUMPY_DTYPES.setdefault(name, np.dtype(getattr(ml_dtypes, name)))


_NUMPY_DTYPES: dict[str, np.dtype] = {}


def nbytes_of(shape: tuple[int, ...], dtype: str) -> int:
    """Bytes of a `shape` array of `dtype`, exact (Python ints: a huge shape cannot wrap around)."""
    return math.prod(shape) * numpy_dtype(dtype).itemsize


@dataclass(frozen=True)
class TensorBinding:
    """A graph input or output: name, shape, dtype and where it lives in the arena (None: outside it)."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    offset: int | None = None

    @property
    def nbytes(self) -> int:
        return nbytes_of(self.shape, self.dtype)


@dataclass(frozen=True)
class WeightEntry:
    """One weight of `weights.bin`: byte offset (64-aligned), shape and dtype as the kernels want it."""

    name: str
    offset: int
    shape: tuple[int, ...]
    dtype: str

    @property
    def nbytes(self) -> int:
        return nbytes_of(self.shape, self.dtype)


@dataclass(frozen=True)
class Slot:
    """One kernel argument: a typed view at byte `offset` of the arena or of `weights.bin`, or of a binding.

    `name` is the weight's name for weight slots (for people), the binding's name for input and
    output slots (there `offset` is relative to the binding's own place in the arena). `writes`:
    the step writes this slot (else it only reads it).
    """

    kind: SlotKind
    shape: tuple[int, ...]
    dtype: str
    offset: int = 0
    name: str = ""
    writes: bool = False

    @property
    def nbytes(self) -> int:
        return nbytes_of(self.shape, self.dtype)


CPU_EXECUTABLE = kernel_library_file("cpu")


@dataclass(frozen=True)
class Guard:
    """A condition a step runs under: the one bool at `slot` (an arena or input slot) equals `when`."""

    slot: Slot
    when: bool


@dataclass(frozen=True)
class Step:
    """One kernel call of the plan, with the IR/ONNX node names it was compiled from; it runs on `device`
    from `executable`, that device's kernel library file, and only when all its `guards` hold (a
    branch of an If decided at run time: the step may be skipped, its results then unread). A
    transfer step (`transfer_from`) moves a value between two devices instead."""

    kernel: str
    args: tuple[Slot, ...]
    nodes: tuple[str, ...] = ()
    device: str = "cpu"
    executable: str = CPU_EXECUTABLE
    guards: tuple[Guard, ...] = ()
    transfer_from: str = ""
    """Set on a transfer step (a `Transfer` node of a plan over several devices): it launches no kernel
    and has no executable (""); it makes the bytes of its one slot, written on device `transfer_from`,
    visible on `device` (runtime/plan_transfers.py)."""


@dataclass(frozen=True)
class Copy:
    """Bytes the runtime copies between steps: `source`'s into `destination` (the same byte count)."""

    source: Slot
    destination: Slot


@dataclass(frozen=True)
class LoopSpan:
    """Steps `[start, stop)` run once per iteration of an ONNX Loop (runtime/loops.py runs them).

    Before the first iteration the runtime reads the trip count (`trip_count`, one int64; None: no
    limit) and the condition (`condition`, one bool; None: true) and makes the `enter` copies (initial
    carried values). Each iteration it writes its number into `iteration` and the condition into
    `body_condition` (None: the body reads neither), runs the steps, reads `next_condition`, writes
    each `scans` source as row i of its destination and makes the `carry` copies (all sources read
    before any destination is written). It runs while the condition holds and fewer than the trip
    count iterations ran; with scan outputs, more than `max_trips` (their rows) is an error, and so
    is fewer. After the last iteration, the `exit` copies (the results). A span whose `guards` do
not all hold (a Loop in a branch of an If decided at run time) is skipped whole. `parent`: the index in
    `ExecutionPlan.loops` of the span around this one (-1: none); `name`: the Loop, for errors.
    """

    name: str
    start: int
    stop: int
    next_condition: Slot
    parent: int = -1
    max_trips: int = -1
    trip_count: Slot | None = None
    condition: Slot | None = None
    iteration: Slot | None = None
    body_condition: Slot | None = None
    enter: tuple[Copy, ...] = ()
    carry: tuple[Copy, ...] = ()
    scans: tuple[Copy, ...] = ()
    exit: tuple[Copy, ...] = ()
    guards: tuple[Guard, ...] = ()


@dataclass(frozen=True)
class PageStep:
    """What happens before one step of a paged plan: pages evicted, then `(page, frame)` loads issued
    (some for later steps: prefetch); `needs` are the pages the step reads, resident when it runs."""

    needs: tuple[int, ...]
    evictions: tuple[int, ...] = ()
    loads: tuple[tuple[int, int], ...] = ()


@dataclass(frozen=True)
class Paging:
    """Weights paged from `weights.bin` into `frames` frames of `page_size` bytes (module doc)."""

    page_size: int
    frames: int
    page_bytes: tuple[int, ...]  # the bytes of page p, at p * page_size in weights.bin
    schedule: tuple[PageStep, ...]  # one per plan step

    def placements(self) -> list[dict[int, int]]:
        """For each step, the frame of every page resident when it runs."""
        frame_of: dict[int, int] = {}
        result = []
        for step in self.schedule:
            for page in step.evictions:
                frame_of.pop(page, None)
            frame_of.update(step.loads)
            result.append(dict(frame_of))
        return result


@dataclass(frozen=True)
class Segment:
    """Steps `[start, stop)` of a paged plan, run by one call of `symbol(arena, pool, inputs...)` of the
    kernel library file `executable`."""

    symbol: str
    start: int
    stop: int
    executable: str


@dataclass(frozen=True)
class DeviceMemory:
    """What the plan holds in the own memory of `device` (runtime/device_memory.py): `total_bytes` in
    all, `largest_buffer_bytes` in its largest buffer, planned against `budget_bytes` (None: none)."""

    device: str
    total_bytes: int
    largest_buffer_bytes: int
    budget_bytes: int | None = None


@dataclass(frozen=True)
class ExecutionPlan:
    """The static schedule: steps in order over one arena of `arena_size` bytes; optional one-call entry
    (a function of the kernel library file `entry_executable`), or paged weights (`paging`) with the
    steps called in `segments` (module doc).

    `planned_peak_bytes` (optional; None in artifacts that predate it) is the compiler's bound on the
    process's resident memory while running the plan: `load` refuses a machine with less available.
    `device_memory`: what the plan holds on each device with memory of its own (`load` refuses a
    device with less).
    """

    arena_size: int
    steps: tuple[Step, ...]
    entry: str | None = None
    planned_peak_bytes: int | None = None
    paging: Paging | None = None
    scratch_bytes: int = 0  # the most any one kernel allocates while it runs (targets/scratch.py)
    segments: tuple[Segment, ...] = ()
    entry_executable: str | None = None
    device_memory: tuple[DeviceMemory, ...] = ()
    loops: tuple[LoopSpan, ...] = ()  # steps repeated at run time (ONNX Loops), outermost first


@dataclass(frozen=True)
class CompilerInfo:
    """Who built the artifact and how: HAI and TVM versions and the options the user gave."""

    hai_version: str
    tvm_version: str
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TargetInfo:
    """The target the kernels were compiled for and the ISA features they need (cpu_features names)."""

    name: str  # "x86", "arm64", "opencl"
    arch: str  # "x86_64", "aarch64"
    cpu: str  # LLVM cpu name or ISA level: "znver4", "x86-64-v3"
    features: tuple[str, ...] = ()


@dataclass(frozen=True)
class FileEntry:
    """One file of the artifact: its sha256 (hex) and its size in bytes."""

    sha256: str
    size: int


@dataclass(frozen=True)
class Manifest:
    """Everything `manifest.json` says; `to_json` and `runtime.manifest_checks.parse_manifest` round-trip
    exactly."""

    name: str
    compiler: CompilerInfo
    target: TargetInfo
    inputs: tuple[TensorBinding, ...]
    outputs: tuple[TensorBinding, ...]
    plan: ExecutionPlan
    weights: tuple[WeightEntry, ...]
    weights_size: int
    kernel_libraries: Mapping[str, str]  # device -> file name
    files: Mapping[str, FileEntry]  # every file but the manifest and its signature
    format_version: int = FORMAT_VERSION

    def to_json(self) -> str:
        """Stable text: sorted keys, two-space indent, trailing newline (equal manifests, equal bytes)."""
        return json.dumps(to_plain(self), sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def check_format_version(version: object, source: str) -> None:
    if type(version) is not int or version != FORMAT_VERSION:
        older = type(version) is int and 0 < version < FORMAT_VERSION
        raise ArtifactVersionError(
            f"{source} has format version {version!r}; this runtime reads version {FORMAT_VERSION}: "
            + ("recompile the model with this HAI" if older else
               "recompile the model with a matching HAI or use the runtime that built it")
        )  # fmt: skip


# -- dataclasses <-> plain JSON data --------------------------------------------------------------------


def to_plain(value: Any) -> Any:
    """Dataclasses to dicts, tuples to lists, mappings to dicts, recursively."""
    if hasattr(value, "__dataclass_fields__"):
        return {f.name: to_plain(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, Mapping):
        return {str(k): to_plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_plain(v) for v in value]
    return value


def from_plain(cls: type, data: Any) -> Any:
    """Build dataclass `cls` from JSON data, checking keys and every value against the field's type
    (an int is never a bool or a float; lists become tuples); a `TypeError` names the field."""
    if not isinstance(data, dict):
        raise TypeError(f"{cls.__name__} must be an object, got {type(data).__name__}")
    hints = get_type_hints(cls)
    unknown = set(data) - set(hints)
    if unknown:
        raise KeyError(f"{cls.__name__} has no field(s) {sorted(map(str, unknown))}")
    required = [f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING]
    missing = [name for name in required if name not in data]
    if missing:
        raise TypeError(f"{cls.__name__} lacks field(s) {missing}")
    return cls(**{name: typed(raw, hints[name], f"{cls.__name__}.{name}") for name, raw in data.items()})


def typed(raw: Any, hint: Any, where: str) -> Any:
    """`raw` (JSON data) as a value of type `hint`, or a `TypeError` naming `where`."""
    origin, args = get_origin(hint), get_args(hint)
    if hint is Any:
        return raw
    if isinstance(hint, type) and hasattr(hint, "__dataclass_fields__"):
        return from_plain(hint, raw)
    if origin in (UnionType, Union):
        if raw is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return typed(raw, inner, where)
    if origin is Literal:
        if raw not in args:
            raise TypeError(f"{where} is {short(raw)}; expected one of {', '.join(map(str, args))}")
        return raw
    if origin is tuple:
        if not isinstance(raw, list) or (args[-1] is not Ellipsis and len(raw) != len(args)):
            raise TypeError(f"{where} must be a list of {len(args) if args[-1] is not Ellipsis else 'any'} "
                            f"item(s), got {short(raw)}")  # fmt: skip
        kinds = [args[0]] * len(raw) if args[-1] is Ellipsis else list(args)
        return tuple(typed(item, kind, f"{where}[{i}]") for i, (item, kind) in enumerate(zip(raw, kinds)))
    if origin is Mapping:
        if not isinstance(raw, dict):
            raise TypeError(f"{where} must be an object, got {short(raw)}")
        return {key: typed(value, args[1], f"{where}[{key!r}]") for key, value in raw.items()}
    if type(raw) is not hint:
        raise TypeError(f"{where} must be a {hint.__name__}, got {short(raw)}")
    return raw


def short(value: Any) -> str:
    """A value for a message, cut to 60 characters."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
