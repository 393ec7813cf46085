"""The artifact format: what `NAME.hai/` holds and the manifest schema, read and checked here.

An artifact is a directory of plain files, all named in `manifest.json`:

| file                     | what it is                                                            |
| ------------------------ | --------------------------------------------------------------------- |
| `manifest.json`          | this schema as JSON (sorted keys, two-space indent, trailing newline) |
| `weights.bin`            | every weight at a 64-byte aligned offset, zero padding between        |
| `kernels.<device>.so`    | the kernel library of each device (`kernels.cpu.so`)                  |
| `libtvm_runtime.so`      | the TVM runtime those libraries need (loaded first, RTLD_GLOBAL)      |
| `model.hir`              | the final IR, for people and tools; the runtime never reads it        |

The manifest's `files` maps every file but itself to its sha256. The execution
plan is static: each step calls one kernel symbol on argument slots, and each slot
is a typed view (byte offset, shape, dtype) into the arena, into `weights.bin`, or
into a graph input's buffer or an output's place in the arena (named by the
binding). Graph inputs live outside the arena (binding offset null): input slots
view the caller's array itself. Every slot offset is a multiple of 64 (vectorised
kernels do aligned loads unchecked). When `plan.entry` names a function of the cpu
library, one call `entry(arena, weights, input_0, ...)` (1-D uint8 tensors, the
inputs in manifest order) runs the whole plan and the steps are kept for
provenance and profiling. When `plan.paging` is set, the weights do not stay
resident: `weights.bin` is laid out in pages (page `p` at byte `p * page_size`),
the runtime reads them into a pool of `frames` page frames by the static
schedule (one `PageStep` per plan step: pages evicted, then `(page, frame)`
loads issued, then the pages the step needs), and a weight slot, whose offset
still names its bytes in `weights.bin`, lies at `frame * page_size + offset %
page_size` of the pool while its page is resident. `plan.segments` then
replaces the entry: each segment calls `symbol(arena, pool, input_0, ...)`
for steps `[start, stop)`, which wait for no page once the first has its
pages. Dtypes are numpy names (`float32`, `int8`, `bfloat16` via ml_dtypes).

The writer is `targets/artifact.py`; this module only reads, so the runtime can
ship alone. It imports the standard library and numpy, nothing of ours but
`runtime.errors`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

import numpy as np

from runtime.errors import ArtifactError, ArtifactIntegrityError, ArtifactVersionError

FORMAT_VERSION = 3
MANIFEST_FILE = "manifest.json"
WEIGHTS_FILE = "weights.bin"
HIR_FILE = "model.hir"
TVM_RUNTIME_FILE = "libtvm_runtime.so"
ALIGNMENT = 64
SlotKind = Literal["arena", "weight", "input", "output"]
SLOT_KINDS = ("arena", "weight", "input", "output")


def kernel_library_file(device: str) -> str:
    """The file name of `device`'s kernel library inside an artifact."""
    return f"kernels.{device}.so"


def numpy_dtype(name: str) -> np.dtype:
    """The numpy dtype a manifest names; `bfloat16` and other extended types need ml_dtypes."""
    try:
        return np.dtype(name)
    except TypeError:
        pass
    try:
        import ml_dtypes
    except ImportError as exc:
        raise ArtifactError(f"dtype {name!r} needs the ml_dtypes package, which is not installed") from exc
    try:
        return np.dtype(getattr(ml_dtypes, name))
    except (AttributeError, TypeError) as exc:
        raise ArtifactError(f"unknown dtype {name!r} in manifest") from exc


def nbytes_of(shape: tuple[int, ...], dtype: str) -> int:
    return int(np.prod(shape, dtype=np.int64)) * numpy_dtype(dtype).itemsize


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
    output slots (there `offset` is relative to the binding's own place in the arena).
    """

    kind: SlotKind
    shape: tuple[int, ...]
    dtype: str
    offset: int = 0
    name: str = ""

    @property
    def nbytes(self) -> int:
        return nbytes_of(self.shape, self.dtype)


@dataclass(frozen=True)
class Step:
    """One kernel call of the plan, with the IR/ONNX node names it was compiled from."""

    kernel: str
    args: tuple[Slot, ...]
    nodes: tuple[str, ...] = ()
    device: str = "cpu"


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
    """Steps `[start, stop)` of a paged plan, run by one call of `symbol(arena, pool, inputs...)`."""

    symbol: str
    start: int
    stop: int


@dataclass(frozen=True)
class ExecutionPlan:
    """The static schedule: steps in order over one arena of `arena_size` bytes; optional one-call entry,
    or paged weights (`paging`) with the steps called in `segments` (module doc).

    `planned_peak_bytes` (optional; None in artifacts that predate it) is the compiler's bound on the
    process's resident memory while running the plan: `load` refuses a machine with less available.
    """

    arena_size: int
    steps: tuple[Step, ...]
    entry: str | None = None
    planned_peak_bytes: int | None = None
    paging: Paging | None = None
    scratch_bytes: int = 0  # the most any one kernel allocates while it runs (targets/scratch.py)
    segments: tuple[Segment, ...] = ()


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
class Manifest:
    """Everything `manifest.json` says; `to_json`/`from_json` round-trip exactly."""

    name: str
    compiler: CompilerInfo
    target: TargetInfo
    inputs: tuple[TensorBinding, ...]
    outputs: tuple[TensorBinding, ...]
    plan: ExecutionPlan
    weights: tuple[WeightEntry, ...]
    weights_size: int
    kernel_libraries: Mapping[str, str]  # device -> file name
    files: Mapping[str, str]  # file name -> sha256 hex, every file but the manifest
    format_version: int = FORMAT_VERSION

    def to_json(self) -> str:
        """Stable text: sorted keys, two-space indent, trailing newline (equal manifests, equal bytes)."""
        return json.dumps(to_plain(self), sort_keys=True, indent=2, ensure_ascii=False) + "\n"

    @classmethod
    def from_json(cls, text: str, source: str = MANIFEST_FILE) -> Manifest:
        """Parse and check a manifest; any schema problem is an `ArtifactError` naming `source`."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ArtifactError(f"{source} is not valid JSON ({exc}); the artifact is corrupt") from exc
        if not isinstance(data, dict):
            raise ArtifactError(f"{source} is not a JSON object; the artifact is corrupt")
        check_format_version(data.get("format_version"), source)
        try:
            manifest = from_plain(cls, data)
        except (KeyError, TypeError, ValueError) as exc:
            raise ArtifactError(f"{source} does not follow the manifest schema: {exc}") from exc
        validate(manifest, source)
        return manifest


def check_format_version(version: object, source: str) -> None:
    if version != FORMAT_VERSION:
        raise ArtifactVersionError(
            f"{source} has format version {version!r}; this runtime reads version {FORMAT_VERSION}: "
            f"recompile the model with a matching HAI or use the runtime that built it"
        )


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


# field name -> dataclass of its items (tuple fields) or of its value (nested fields)
NESTED: dict[str, type] = {}


def from_plain(cls: type, data: Any) -> Any:
    """Build dataclass `cls` from JSON data, checking keys; lists become tuples."""
    if not isinstance(data, dict):
        raise TypeError(f"{cls.__name__} must be an object, got {type(data).__name__}")
    known = {f.name for f in fields(cls)}
    unknown = set(data) - known
    if unknown:
        raise KeyError(f"{cls.__name__} has no field(s) {sorted(unknown)}")
    values = {}
    for f in fields(cls):
        if f.name not in data:
            continue  # a missing required field is a TypeError from the constructor
        raw = data[f.name]
        nested = NESTED.get(f"{cls.__name__}.{f.name}")
        if nested is not None and isinstance(raw, list):
            values[f.name] = tuple(from_plain(nested, item) for item in raw)
        elif nested is not None and raw is not None:
            values[f.name] = from_plain(nested, raw)
        elif isinstance(raw, list):
            values[f.name] = as_tuples(raw)
        else:
            values[f.name] = raw
    return cls(**values)


def as_tuples(items: list) -> tuple:
    """A JSON list as a tuple, its nested lists too."""
    return tuple(as_tuples(item) if isinstance(item, list) else item for item in items)


NESTED.update(
    {
        "Manifest.compiler": CompilerInfo,
        "Manifest.target": TargetInfo,
        "Manifest.inputs": TensorBinding,
        "Manifest.outputs": TensorBinding,
        "Manifest.plan": ExecutionPlan,
        "Manifest.weights": WeightEntry,
        "ExecutionPlan.steps": Step,
        "ExecutionPlan.paging": Paging,
        "ExecutionPlan.segments": Segment,
        "Paging.schedule": PageStep,
        "Step.args": Slot,
    }
)


# -- semantic checks ------------------------------------------------------------------------------------


def validate(manifest: Manifest, source: str) -> None:
    """Check that every offset is aligned and every view fits; an `ArtifactError` names the first misfit."""

    def fail(message: str) -> None:
        raise ArtifactError(f"{source}: {message}; the artifact is corrupt")

    def check_range(what: str, offset: int, nbytes: int, limit: int, space: str) -> None:
        if not isinstance(offset, int) or offset < 0 or offset % ALIGNMENT:
            fail(f"{what} has offset {offset!r}, not a non-negative multiple of {ALIGNMENT}")
        if offset + nbytes > limit:
            fail(f"{what} ({nbytes} bytes at offset {offset}) overruns the {space} of {limit} bytes")

    typed: list[TensorBinding | WeightEntry | Slot] = [*manifest.inputs, *manifest.outputs, *manifest.weights]
    typed += [slot for step in manifest.plan.steps for slot in step.args]
    for item in typed:
        if not all(isinstance(d, int) and d >= 0 for d in item.shape):
            fail(f"{item.name or type(item).__name__} has shape {list(item.shape)}, not non-negative ints")
        numpy_dtype(item.dtype)
    arena = manifest.plan.arena_size
    if not isinstance(arena, int) or arena < 0:
        fail(f"arena size {arena!r} is not a non-negative int")
    peak = manifest.plan.planned_peak_bytes
    if peak is not None and (not isinstance(peak, int) or peak < 0):
        fail(f"planned peak {peak!r} is not a non-negative int")
    scratch = manifest.plan.scratch_bytes
    if not isinstance(scratch, int) or scratch < 0:
        fail(f"kernel scratch {scratch!r} is not a non-negative int")
    bindings = {b.name: b for b in manifest.inputs + manifest.outputs}
    if len(bindings) != len(manifest.inputs) + len(manifest.outputs):
        fail("graph input and output names are not unique")
    for b in manifest.inputs:
        if b.offset is not None:
            fail(f"input {b.name!r} has arena offset {b.offset}; inputs are the caller's buffers (null)")
    for b in manifest.outputs:
        if b.offset is None:
            fail(f"output {b.name!r} has no arena offset")
        else:
            check_range(f"binding {b.name!r}", b.offset, b.nbytes, arena, "arena")
    for w in manifest.weights:
        check_range(f"weight {w.name!r}", w.offset, w.nbytes, manifest.weights_size, "weights file")
    for index, step in enumerate(manifest.plan.steps):
        if step.device not in manifest.kernel_libraries:
            fail(f"step {index} ({step.kernel}) runs on device {step.device!r}, which has no kernel library")
        for position, slot in enumerate(step.args):
            what = f"argument #{position} of step {index} ({step.kernel})"
            if slot.kind not in SLOT_KINDS:
                fail(f"{what} has slot kind {slot.kind!r}; expected one of {', '.join(SLOT_KINDS)}")
            if slot.kind == "arena":
                check_range(what, slot.offset, slot.nbytes, arena, "arena")
            elif slot.kind == "weight":
                check_range(what, slot.offset, slot.nbytes, manifest.weights_size, "weights file")
            elif slot.name not in bindings:
                fail(f"{what} names graph {slot.kind} {slot.name!r}, which the manifest does not list")
            else:
                check_range(what, slot.offset, slot.nbytes, bindings[slot.name].nbytes, slot.kind)
    if manifest.plan.paging is not None:
        validate_paging(manifest, fail)
    if manifest.plan.entry is not None and "cpu" not in manifest.kernel_libraries:
        fail(f"entry function {manifest.plan.entry!r} needs a cpu kernel library, and there is none")
    for device, filename in manifest.kernel_libraries.items():
        if filename not in manifest.files:
            fail(f"kernel library {filename!r} of device {device!r} has no checksum in 'files'")


def validate_paging(manifest: Manifest, fail: Callable[[str], None]) -> None:
    """A paged plan: pages inside `weights.bin` and a frame, one schedule entry per step, every step's
    weights on pages it needs and resident in frames, segments covering the steps in order."""
    plan = manifest.plan
    paging = plan.paging
    assert paging is not None
    size = paging.page_size
    if not isinstance(size, int) or size <= 0 or size % ALIGNMENT or paging.frames < 0:
        fail(f"paging has page size {size!r} and {paging.frames!r} frames")
    for page, nbytes in enumerate(paging.page_bytes):
        if not 0 <= nbytes <= size or page * size + nbytes > manifest.weights_size:
            fail(f"page {page} ({nbytes} bytes at {page * size}) overruns its frame or the weights file")
    if len(paging.schedule) != len(plan.steps):
        fail(f"the page schedule has {len(paging.schedule)} entries for {len(plan.steps)} steps")
    for index, (step, frames) in enumerate(zip(plan.steps, paging.placements(), strict=True)):
        for page, frame in paging.schedule[index].loads:
            if not (0 <= page < len(paging.page_bytes) and 0 <= frame < paging.frames):
                fail(f"step {index} loads page {page} into frame {frame}: no such page or frame")
        for position, slot in enumerate(step.args):
            if slot.kind != "weight":
                continue
            page = slot.offset // size
            if (slot.offset + slot.nbytes - 1) // size != page and slot.nbytes:
                fail(f"argument #{position} of step {index} ({step.kernel}) spans pages")
            if page not in paging.schedule[index].needs or page not in frames:
                fail(f"argument #{position} of step {index} ({step.kernel}) is on page {page}, "
                     "which the schedule does not make resident for it")  # fmt: skip
    covered = [i for segment in plan.segments for i in range(segment.start, segment.stop)]
    if plan.segments and covered != list(range(len(plan.steps))):
        fail("the segments do not cover the steps once, in order")


# -- reading an artifact directory ----------------------------------------------------------------------


def sha256_of(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def read_manifest(directory: str | Path, verify: bool = True) -> Manifest:
    """The manifest of the artifact at `directory`, after checking it and (with `verify`) every file's sha256.

    Refuses, with an `ArtifactError` naming the file: a missing directory or manifest, a corrupt
    manifest, a wrong format version (`ArtifactVersionError`), a missing file, a truncated
    `weights.bin` or a file whose sha256 differs (`ArtifactIntegrityError`).
    """
    directory = Path(directory)
    path = directory / MANIFEST_FILE
    if not directory.is_dir():
        raise ArtifactError(f"artifact {directory} does not exist or is not a directory")
    if not path.is_file():
        raise ArtifactError(f"{directory} is not a HAI artifact: it has no {MANIFEST_FILE}")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ArtifactError(f"cannot read {path}: {exc}") from exc
    manifest = Manifest.from_json(text, str(path))
    check_files(directory, manifest, verify)
    return manifest


def check_files(directory: Path, manifest: Manifest, verify: bool) -> None:
    """Every listed file exists, `weights.bin` has its full size, and (with `verify`) every sha256 matches."""
    for filename in sorted(manifest.files):
        if Path(filename).name != filename or filename == MANIFEST_FILE:
            raise ArtifactError(f"{directory / MANIFEST_FILE}: bad file name {filename!r} in 'files'")
        if not (directory / filename).is_file():
            raise ArtifactError(f"artifact {directory} is missing {filename}, which its manifest lists")
    weights = directory / WEIGHTS_FILE
    if WEIGHTS_FILE in manifest.files:
        size = weights.stat().st_size
        if size != manifest.weights_size:
            raise ArtifactIntegrityError(
                f"{weights} has {size} bytes but the manifest says {manifest.weights_size}: "
                f"the file is {'truncated' if size < manifest.weights_size else 'too long'}"
            )
    elif manifest.weights_size:
        raise ArtifactError(f"{directory / MANIFEST_FILE} lists weights but no {WEIGHTS_FILE}")
    if not verify:
        return
    for filename, expected in sorted(manifest.files.items()):
        actual = sha256_of(directory / filename)
        if actual != expected:
            raise ArtifactIntegrityError(
                f"{directory / filename} does not match its checksum in the manifest "
                f"(sha256 {actual[:16]}…, expected {expected[:16]}…): the file was changed or corrupted"
            )
