"""The invariants of a manifest's plan, checked once at load: a manifest that passes runs its kernels only
on memory it owns, and every output it returns was written by a step.

Rule: nothing here trusts the manifest. Every offset and size lies inside the arena, `weights.bin` or
the binding it names, aligned; every dtype is one of `DTYPES`; the memory the runtime allocates fits
the planned peak; every file the runtime opens is listed in `files` (a kernel library and the TVM
runtime beside it, `weights.bin` of the stated size). The steps are replayed over the arena's bytes:
a step reads only bytes an earlier step wrote, writes over the bytes it reads only in place (the very
same range, as the compiler's hazard check allows), and after the last step every graph output's bytes
have been written (a loop span's copies count as written when the span starts). A violation is an
`ArtifactError` naming the field, step or argument. The per-inference
path does none of this work. `parse_manifest` reads `manifest.json`'s text into a checked `Manifest`
(the schema, runtime/artifact.py, imports nothing back). Imports the standard library and
`runtime.artifact`.
"""

from __future__ import annotations

import bisect
import itertools
import json
import re
from collections.abc import Callable, Iterable
from typing import NoReturn

from runtime.artifact import (
    ALIGNMENT,
    DTYPES,
    MANIFEST_FILE,
    SIGNATURE_FILE,
    TVM_RUNTIME_DEVICES,
    TVM_RUNTIME_FILE,
    WEIGHTS_FILE,
    Manifest,
    Slot,
    TensorBinding,
    WeightEntry,
    check_format_version,
    from_plain,
    numpy_dtype,
)
from runtime.device_names import HOST_DEVICE
from runtime.errors import ArtifactError
from runtime.loops import check_loops, written_by_loops

Fail = Callable[[str], NoReturn]
SHA256 = re.compile(r"[0-9a-f]{64}")


def parse_manifest(text: str | bytes, source: str = MANIFEST_FILE) -> Manifest:
    """Parse `manifest.json`'s text and check it (schema, format version, then `validate`); any problem
    is an `ArtifactError` naming `source` and what is wrong."""
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:  # bad JSON, an integer of > 4300 digits, deep nesting
        reason = "it nests too deeply" if isinstance(exc, RecursionError) else exc
        raise ArtifactError(f"{source} is not valid JSON ({reason}); the artifact is corrupt") from None
    if not isinstance(data, dict):
        raise ArtifactError(f"{source} is not a JSON object; the artifact is corrupt")
    check_format_version(data.get("format_version"), source)
    try:
        manifest = from_plain(Manifest, data)
    except (KeyError, TypeError, ValueError) as exc:
        raise ArtifactError(f"{source} does not follow the manifest schema: {exc}") from None
    validate(manifest, source)
    return manifest


def validate(manifest: Manifest, source: str) -> None:
    """Check every invariant of the module doc; an `ArtifactError` names the first violation."""

    def fail(message: str) -> NoReturn:
        raise ArtifactError(f"{source}: {message}; the artifact is corrupt")

    check_types(manifest, fail)
    check_sizes(manifest, fail)
    check_ranges(manifest, fail)
    if manifest.plan.paging is not None:
        check_paging(manifest, fail)
    check_dataflow(manifest, fail)
    check_files_listed(manifest, fail)


def check_types(manifest: Manifest, fail: Fail) -> None:
    """Shapes of non-negative ints, dtypes among `DTYPES`."""
    typed: list[tuple[str, TensorBinding | WeightEntry | Slot]] = [
        *((f"input {b.name!r}", b) for b in manifest.inputs),
        *((f"output {b.name!r}", b) for b in manifest.outputs),
        *((f"weight {w.name!r}", w) for w in manifest.weights),
        *((f"argument #{position} of step {index} ({step.kernel})", slot)
          for index, step in enumerate(manifest.plan.steps) for position, slot in enumerate(step.args)),
    ]  # fmt: skip
    for what, item in typed:
        if any(d < 0 for d in item.shape):
            fail(f"{what} has shape {list(item.shape)}, not non-negative ints")
        if item.dtype not in DTYPES:
            fail(f"{what} has dtype {item.dtype!r}; expected one of {', '.join(DTYPES)}")
        numpy_dtype(item.dtype)


def check_sizes(manifest: Manifest, fail: Fail) -> None:
    """Non-negative sizes, and the arena (plus the page pool) within the planned peak when one is set."""
    plan = manifest.plan
    named = {
        "arena size": plan.arena_size,
        "weights size": manifest.weights_size,
        "kernel scratch": plan.scratch_bytes,
        "planned peak": plan.planned_peak_bytes or 0,
    }
    for what, value in named.items():
        if value < 0:
            fail(f"{what} {value} is negative")
    allocated = allocated_bytes(manifest)
    if plan.planned_peak_bytes is not None and allocated > plan.planned_peak_bytes:
        fail(
            f"the arena and page pool take {allocated} bytes, more than the planned peak of "
            f"{plan.planned_peak_bytes} bytes"
        )


def allocated_bytes(manifest: Manifest) -> int:
    """What `load` allocates for the plan: the arena, and the page pool of a paged plan."""
    paging = manifest.plan.paging
    return manifest.plan.arena_size + (paging.frames * paging.page_size if paging is not None else 0)


def check_range(what: str, offset: int, nbytes: int, limit: int, space: str, fail: Fail) -> None:
    if offset < 0 or offset % ALIGNMENT:
        fail(f"{what} has offset {offset}, not a non-negative multiple of {ALIGNMENT}")
    if offset + nbytes > limit:
        fail(f"{what} ({nbytes} bytes at offset {offset}) overruns the {space} of {limit} bytes")


def check_ranges(manifest: Manifest, fail: Fail) -> None:
    """Every binding, weight and slot inside its space; bindings unique; every call from a listed
    kernel library (a step's, that of its device)."""
    arena = manifest.plan.arena_size
    bindings = {b.name: b for b in manifest.inputs + manifest.outputs}
    if len(bindings) != len(manifest.inputs) + len(manifest.outputs):
        fail("graph input and output names are not unique")
    for b in manifest.inputs:
        if b.offset is not None:
            fail(f"input {b.name!r} has arena offset {b.offset}; inputs are the caller's buffers (null)")
    for b in manifest.outputs:
        if b.offset is None:
            fail(f"output {b.name!r} has no arena offset")
        check_range(f"output {b.name!r}", b.offset, b.nbytes, arena, "arena", fail)
    for w in manifest.weights:
        check_range(f"weight {w.name!r}", w.offset, w.nbytes, manifest.weights_size, "weights file", fail)
    weights = {w.name: w for w in manifest.weights}
    for index, step in enumerate(manifest.plan.steps):
        check_step_executable(manifest, index, fail)
        for position, slot in enumerate(step.args):
            what = f"argument #{position} of step {index} ({step.kernel})"
            check_slot(manifest, what, slot, bindings, weights, fail)
            if slot.writes and slot.kind in ("weight", "input"):
                fail(f"{what} writes a {slot.kind}; kernels write only the arena and outputs")
        check_guards(manifest, index, bindings, fail)
    check_call_executables(manifest, fail)
    check_loops(manifest, lambda what, slot: check_slot(manifest, what, slot, bindings, weights, fail), fail)


def check_slot(
    manifest: Manifest,
    what: str,
    slot: Slot,
    bindings: dict[str, TensorBinding],
    weights: dict[str, WeightEntry],
    fail: Fail,
) -> None:
    """One slot inside the arena, `weights.bin` (a listed weight's view) or the binding it names."""
    if slot.kind == "arena":
        check_range(what, slot.offset, slot.nbytes, manifest.plan.arena_size, "arena", fail)
    elif slot.kind == "weight":
        check_range(what, slot.offset, slot.nbytes, manifest.weights_size, "weights file", fail)
        check_weight_view(what, slot, weights.get(slot.name), fail)
    elif slot.name not in bindings or (slot.kind == "input") != (bindings[slot.name].offset is None):
        fail(f"{what} names graph {slot.kind} {slot.name!r}, which the manifest does not list")
    else:
        check_range(what, slot.offset, slot.nbytes, bindings[slot.name].nbytes, slot.kind, fail)


def check_guards(manifest: Manifest, index: int, bindings: dict[str, TensorBinding], fail: Fail) -> None:
    """A step's guards are one bool each, in the arena or in a listed binding; none in an entry's plan."""
    step = manifest.plan.steps[index]
    for position, guard in enumerate(step.guards):
        what = f"guard #{position} of step {index} ({step.kernel})"
        slot = guard.slot
        if slot.dtype != "bool" or slot.nbytes != 1 or slot.writes:
            fail(f"{what} is {slot.dtype}{list(slot.shape)}; a guard reads one bool")
        if slot.kind == "arena":
            check_range(what, slot.offset, slot.nbytes, manifest.plan.arena_size, "arena", fail)
        elif slot.kind == "weight" or slot.name not in bindings:
            fail(f"{what} reads a {slot.kind} {slot.name!r}; a guard reads the arena or a listed binding")
        else:
            check_range(what, slot.offset, slot.nbytes, bindings[slot.name].nbytes, slot.kind, fail)
    if step.guards and (manifest.plan.entry is not None or manifest.plan.segments):
        fail(f"step {index} ({step.kernel}) is guarded, but the plan calls its steps through one entry")


def check_step_executable(manifest: Manifest, index: int, fail: Fail) -> None:
    """Step `index` runs on a device with a kernel library, from that very library; a transfer step
    runs from none, reads one slot, and moves it between two devices of the plan (the host's or ones
    with a kernel library), never in an entry's plan."""
    step = manifest.plan.steps[index]
    if step.transfer_from:
        check_transfer(manifest, index, fail)
        return
    library = manifest.kernel_libraries.get(step.device)
    if library is None:
        fail(f"step {index} ({step.kernel}) runs on device {step.device!r}, which has no kernel library")
    if step.executable != library:
        fail(f"step {index} ({step.kernel}) runs on device {step.device!r} from {step.executable!r}, "
             f"not from that device's kernel library {library!r}")  # fmt: skip


def check_transfer(manifest: Manifest, index: int, fail: Fail) -> None:
    """Transfer step `index` (`Step.transfer_from`): see check_step_executable."""
    step = manifest.plan.steps[index]
    where = f"transfer step {index} ({step.kernel})"
    devices = {HOST_DEVICE, *manifest.kernel_libraries}
    if step.device == step.transfer_from or not {step.device, step.transfer_from} <= devices:
        fail(f"{where} moves a value from {step.transfer_from!r} to {step.device!r}; a transfer joins two "
             f"devices of the plan ({', '.join(sorted(devices))})")  # fmt: skip
    if step.executable or len(step.args) != 1 or step.args[0].writes or step.args[0].kind == "weight":
        fail(f"{where} has executable {step.executable!r} and {len(step.args)} argument(s); a transfer "
             "reads one arena, input or output slot and runs no kernel")  # fmt: skip
    if manifest.plan.entry is not None or manifest.plan.segments:
        fail(f"{where} is in a plan whose steps one entry calls")


def check_call_executables(manifest: Manifest, fail: Fail) -> None:
    """The entry and every segment name the kernel library they are a function of (an entry only with
    its executable, and an executable only with an entry)."""
    plan = manifest.plan
    libraries = set(manifest.kernel_libraries.values())
    if (plan.entry is None) != (plan.entry_executable is None):
        fail(f"the plan has entry {plan.entry!r} and entry executable {plan.entry_executable!r}; "
             "an entry function names the kernel library it is in, and only an entry does")  # fmt: skip
    calls = [(f"entry function {plan.entry!r}", plan.entry_executable)] if plan.entry is not None else []
    calls += [(f"segment {s.symbol!r}", s.executable) for s in plan.segments]
    for what, executable in calls:
        if executable not in libraries:
            fail(f"{what} is in {executable!r}, which is not a kernel library of the manifest")


def check_weight_view(what: str, slot: Slot, weight: WeightEntry | None, fail: Fail) -> None:
    """A weight slot views bytes of the weight it names, never a neighbour's."""
    if weight is None:
        fail(f"{what} names weight {slot.name!r}, which the manifest does not list")
    if not weight.offset <= slot.offset <= slot.offset + slot.nbytes <= weight.offset + weight.nbytes:
        fail(
            f"{what} views bytes [{slot.offset}, {slot.offset + slot.nbytes}) of weights.bin, outside weight "
            f"{slot.name!r} at [{weight.offset}, {weight.offset + weight.nbytes})"
        )


def check_paging(manifest: Manifest, fail: Fail) -> None:
    """A paged plan: pages inside `weights.bin` and a frame, one schedule entry per step, every step's
    weights on pages it needs and resident in frames, segments covering the steps in order."""
    plan = manifest.plan
    paging = plan.paging
    assert paging is not None
    size = paging.page_size
    if size <= 0 or size % ALIGNMENT or paging.frames < 0:
        fail(f"paging has page size {size} and {paging.frames} frames")
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


class Written:
    """The arena bytes written so far, as sorted disjoint half-open ranges (touching ones merged)."""

    def __init__(self) -> None:
        self.starts: list[int] = []
        self.ends: list[int] = []

    def covers(self, start: int, end: int) -> bool:
        i = bisect.bisect_right(self.starts, start) - 1
        return start >= end or (i >= 0 and self.ends[i] >= end)

    def add(self, start: int, end: int) -> None:
        lo = bisect.bisect_left(self.ends, start)  # first range that ends at or after `start`
        hi = bisect.bisect_right(self.starts, end)  # ranges from lo to hi touch [start, end)
        if lo < hi:
            start, end = min(start, self.starts[lo]), max(end, self.ends[hi - 1])
        self.starts[lo:hi], self.ends[lo:hi] = [start], [end]


def mark_written(written: Written, slots: Iterable[Slot], outputs: dict[str, int]) -> None:
    for slot in slots:
        if slot.kind in ("arena", "output"):
            start = slot.offset + (outputs[slot.name] if slot.kind == "output" else 0)
            written.add(start, start + slot.nbytes)


def check_dataflow(manifest: Manifest, fail: Fail) -> None:
    """Replay the steps over the arena's bytes (module doc): reads after writes, in-place writes only,
    every output written."""
    outputs = {b.name: b.offset or 0 for b in manifest.outputs}
    written = Written()
    loop_writes = written_by_loops(manifest.plan.loops)
    for index, step in enumerate(manifest.plan.steps):
        mark_written(written, loop_writes.get(index, ()), outputs)  # the runtime's copies (loops)
        ranges = []
        guard_slots = [g.slot for g in step.guards]  # read first: numbered after the arguments
        for position, slot in enumerate((*step.args, *guard_slots)):
            if slot.kind in ("arena", "output") and slot.nbytes:
                start = slot.offset + (outputs[slot.name] if slot.kind == "output" else 0)
                ranges.append((position, start, start + slot.nbytes, slot.writes))
        where = f"step {index} ({step.kernel})"
        for position, start, end, writes in ranges:
            if not writes and not written.covers(start, end):
                fail(f"argument #{position} of {where} reads arena bytes [{start}, {end}), which no earlier "
                     "step writes")  # fmt: skip
        written_ranges = [(p, s, e) for p, s, e, writes in ranges if writes]
        read_ranges = [(p, s, e) for p, s, e, writes in ranges if not writes]
        for (position, start, end), (other, o_start, o_end) in itertools.product(written_ranges, read_ranges):
            if start < o_end and o_start < end and (start, end) != (o_start, o_end):
                fail(f"argument #{position} of {where} writes arena bytes [{start}, {end}) over part of "
                     f"argument #{other} [{o_start}, {o_end}), which it reads")  # fmt: skip
        for _, start, end, writes in ranges:
            if writes:
                written.add(start, end)
    mark_written(written, loop_writes.get(len(manifest.plan.steps), ()), outputs)
    for b in manifest.outputs:
        start = outputs[b.name]
        if not written.covers(start, start + b.nbytes):
            fail(f"output {b.name!r} (arena bytes [{start}, {start + b.nbytes})) is not written by any step")


def check_files_listed(manifest: Manifest, fail: Fail) -> None:
    """Plain file names with a sha256 and a size; every file the runtime opens among them."""
    for name, entry in manifest.files.items():
        if "/" in name or name in ("", ".", "..", MANIFEST_FILE, SIGNATURE_FILE):
            fail(f"bad file name {name!r} in 'files'")
        if not SHA256.fullmatch(entry.sha256) or entry.size < 0:
            fail(f"file {name!r} has sha256 {entry.sha256!r} and size {entry.size}")
    for device, filename in manifest.kernel_libraries.items():
        if filename not in manifest.files:
            fail(f"kernel library {filename!r} of device {device!r} is not listed in 'files'")
    if set(manifest.kernel_libraries) & TVM_RUNTIME_DEVICES and TVM_RUNTIME_FILE not in manifest.files:
        fail(f"{TVM_RUNTIME_FILE}, which the kernel libraries need, is not listed in 'files'")
    weights = manifest.files.get(WEIGHTS_FILE)
    if weights is None and manifest.weights_size:
        fail(f"the weights take {manifest.weights_size} bytes but {WEIGHTS_FILE} is not listed in 'files'")
    if weights is not None and weights.size != manifest.weights_size:
        fail(f"{WEIGHTS_FILE} is listed with {weights.size} bytes, the weights with {manifest.weights_size}")
