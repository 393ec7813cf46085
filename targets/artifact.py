"""The artifact writer: `write_artifact` turns a compiled plan, weights and kernel libraries into `NAME.hai/`.

The format itself (file names, manifest schema, alignment) is `runtime/artifact.py`;
this module only writes it. Rule: the output is a pure function of the inputs —
nothing measured, no time stamps, no absolute paths, weights laid out in the
order given, manifest text with sorted keys — so the same inputs give a
byte-identical directory. The directory is built beside its final place and
moved there when complete, so a reader never sees half an artifact.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ir.errors import HaiError
from runtime.artifact import (
    ALIGNMENT,
    HIR_FILE,
    MANIFEST_FILE,
    SIGNATURE_FILE,
    TVM_RUNTIME_DEVICES,
    TVM_RUNTIME_FILE,
    WEIGHTS_FILE,
    CompilerInfo,
    ExecutionPlan,
    FileEntry,
    Manifest,
    Slot,
    TargetInfo,
    TensorBinding,
    WeightEntry,
    kernel_library_file,
)
from runtime.artifact_files import read_plain
from runtime.errors import HaiRuntimeError
from runtime.kernel_library import tvm_runtime_candidates
from runtime.manifest_checks import validate
from runtime.signing import TrustedKey, private_key, sign
from targets.plan.loop_spans import with_slots


class ArtifactWriteError(HaiError):
    """The compiled parts do not make a valid artifact, or the output directory cannot be written."""


@dataclass(frozen=True)
class ManifestParts:
    """What the compiler decides; the writer adds the weights layout, file names and checksums.

    In `plan`, a weight slot names its weight and its `offset` is relative to that weight's start
    (0 for the whole weight); the writer turns it into the absolute offset in `weights.bin`.
    """

    name: str
    compiler: CompilerInfo
    target: TargetInfo
    inputs: tuple[TensorBinding, ...]
    outputs: tuple[TensorBinding, ...]
    plan: ExecutionPlan


def align_up(value: int, alignment: int = ALIGNMENT) -> int:
    return -(-value // alignment) * alignment


def layout_weights(
    weights: Mapping[str, np.ndarray], alignment: int = ALIGNMENT
) -> tuple[tuple[WeightEntry, ...], int]:
    """Each weight at the next `alignment`-byte boundary (64, or a device's buffer base alignment), in
    the order given; returns the entries and the file size."""
    entries = []
    end = 0
    for name, array in weights.items():
        offset = align_up(end, max(alignment, ALIGNMENT))
        entries.append(WeightEntry(name, offset, tuple(int(d) for d in array.shape), array.dtype.name))
        end = offset + array.nbytes
    return tuple(entries), end


def resolve_weight_slots(plan: ExecutionPlan, layout: tuple[WeightEntry, ...]) -> ExecutionPlan:
    """The plan with every weight slot's offset made absolute in `weights.bin` (the steps' and the
    loop spans')."""
    by_name = {w.name: w for w in layout}

    def resolve(slot: Slot, where: str) -> Slot:
        if slot.kind != "weight":
            return slot
        weight = by_name.get(slot.name)
        if weight is None:
            raise ArtifactWriteError(f"{where} names weight {slot.name!r}, which is not in the weights")
        if slot.offset + slot.nbytes > weight.nbytes:
            raise ArtifactWriteError(
                f"{where} views {slot.nbytes} bytes at offset {slot.offset} of weight "
                f"{slot.name!r}, which has {weight.nbytes} bytes"
            )
        return dataclasses.replace(slot, offset=weight.offset + slot.offset)

    steps = []
    for index, step in enumerate(plan.steps):
        args = [
            resolve(slot, f"argument #{k} of step {index} ({step.kernel})")
            for k, slot in enumerate(step.args)
        ]
        steps.append(dataclasses.replace(step, args=tuple(args)))
    loops = tuple(
        with_slots(loop, functools.partial(resolve, where=f"loop {loop.name}")) for loop in plan.loops
    )
    return dataclasses.replace(plan, steps=tuple(steps), loops=loops)


def write_weights(
    path: Path, weights: Mapping[str, np.ndarray], layout: tuple[WeightEntry, ...], size: int
) -> str:
    """Write `weights.bin` (each weight's C-order bytes at its offset, zeros between) one weight at a
    time, so no second copy of the weights is made; returns its sha256."""
    digest = hashlib.sha256()
    end = 0
    with path.open("wb") as out:
        for entry in sorted(layout, key=lambda e: e.offset):
            data = np.ascontiguousarray(weights[entry.name]).reshape(-1).view(np.uint8)
            for chunk in (bytes(entry.offset - end), data):
                out.write(chunk)
                digest.update(chunk)
            end = entry.offset + entry.nbytes
        tail = bytes(size - end)
        out.write(tail)
        digest.update(tail)
    return digest.hexdigest()


def file_entry(data: bytes) -> FileEntry:
    return FileEntry(hashlib.sha256(data).hexdigest(), len(data))


def find_tvm_runtime(kernel_libraries: Mapping[str, Path]) -> Path:
    """The `libtvm_runtime.so` the kernels need: $HAI_TVM_RUNTIME, beside a library, or the tvm package's."""
    first = Path(next(iter(kernel_libraries.values()), "."))
    for candidate in tvm_runtime_candidates(first):
        if candidate.is_file():
            return candidate
    raise ArtifactWriteError(
        f"cannot find {TVM_RUNTIME_FILE} to put in the artifact; set HAI_TVM_RUNTIME to its path"
    )


def write_artifact(
    out_dir: str | os.PathLike[str],
    manifest_parts: ManifestParts,
    weights: Mapping[str, np.ndarray],
    kernel_libraries: Mapping[str, str | os.PathLike[str]],
    hir_text: str,
    tvm_runtime: str | os.PathLike[str] | None = None,
    layout: tuple[tuple[WeightEntry, ...], int] | None = None,
) -> Path:
    """Write the artifact directory `out_dir` (conventionally `NAME.hai`) and return its path.

    `kernel_libraries` maps a device name to its compiled library; `tvm_runtime` defaults to the
    installed TVM's `libtvm_runtime.so`, carried only where a library needs it (the cpu's,
    TVM_RUNTIME_DEVICES); `layout` (the entries and the file size) defaults to
    `layout_weights(weights)`, a paged plan gives its page layout. An existing artifact at `out_dir`
    is replaced; any other existing non-empty directory is refused.
    """
    out = Path(out_dir)
    libraries = {device: Path(path) for device, path in sorted(kernel_libraries.items())}
    for device, path in libraries.items():
        if not path.is_file():
            raise ArtifactWriteError(f"kernel library {path} of device {device!r} does not exist")
    needs_runtime = not libraries or bool(set(libraries) & TVM_RUNTIME_DEVICES)  # OpenCL's alone: none

    entries, size = layout if layout is not None else layout_weights(weights)
    contents: dict[str, bytes] = {HIR_FILE: hir_text.encode("utf-8")}
    copies = {kernel_library_file(device): path for device, path in libraries.items()}
    if needs_runtime:
        runtime_library = Path(tvm_runtime) if tvm_runtime is not None else find_tvm_runtime(libraries)
        copies[TVM_RUNTIME_FILE] = runtime_library
    files = {name: file_entry(data) for name, data in contents.items()}
    files.update({name: file_entry(path.read_bytes()) for name, path in copies.items()})
    staging = staging_directory(out)
    files[WEIGHTS_FILE] = FileEntry(write_weights(staging / WEIGHTS_FILE, weights, entries, size), size)

    manifest = Manifest(
        name=manifest_parts.name,
        compiler=manifest_parts.compiler,
        target=manifest_parts.target,
        inputs=tuple(manifest_parts.inputs),
        outputs=tuple(manifest_parts.outputs),
        plan=resolve_weight_slots(manifest_parts.plan, entries),
        weights=entries,
        weights_size=size,
        kernel_libraries={device: kernel_library_file(device) for device in libraries},
        files=dict(sorted(files.items())),
    )
    try:
        validate(manifest, f"artifact {out}")
    except Exception as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise ArtifactWriteError(f"the compiled plan is not a valid artifact: {exc}") from exc
    contents[MANIFEST_FILE] = manifest.to_json().encode("utf-8")
    return publish(out, staging, contents, copies)


def staging_directory(out: Path) -> Path:
    """A fresh sibling directory of `out` to build the artifact in (refusing to replace a non-artifact)."""
    if out.exists() and not is_replaceable(out):
        raise ArtifactWriteError(f"{out} exists and is not a HAI artifact; refusing to overwrite it")
    staging = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        staging.mkdir(parents=True)
    except OSError as exc:
        raise ArtifactWriteError(f"cannot write artifact {out}: {exc}") from exc
    return staging


def publish(out: Path, staging: Path, contents: Mapping[str, bytes], copies: Mapping[str, Path]) -> Path:
    """Write the files into `staging` (a sibling of `out`), then put it in place of `out`."""
    try:
        for name, data in sorted(contents.items()):
            (staging / name).write_bytes(data)
        for name, source in sorted(copies.items()):
            shutil.copyfile(source, staging / name)
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise ArtifactWriteError(f"cannot write artifact {out}: {exc}") from exc
    return out


def is_replaceable(path: Path) -> bool:
    """An existing artifact directory or an empty directory may be replaced."""
    return path.is_dir() and ((path / MANIFEST_FILE).is_file() or not any(path.iterdir()))


def signing_key(key: TrustedKey) -> Any:
    """The Ed25519 private key file (or PEM bytes) `key`, loaded and checked for `sign_artifact`: load it
    before compiling, so a missing, unreadable or wrong key fails before the long work, naming the file."""
    try:
        return private_key(key)
    except HaiRuntimeError as exc:
        raise ArtifactWriteError(f"cannot sign the artifact: {exc}") from None


def sign_artifact(directory: str | os.PathLike[str], key: Any) -> Path:
    """Sign the artifact at `directory` with `key` (from `signing_key`, or a private key file): write
    `manifest.sig`, the signature of `manifest.json`'s bytes (runtime/signing.py). Nothing else changes."""
    directory = Path(directory)
    try:
        signature = sign(read_plain(directory / MANIFEST_FILE, 1 << 30), key)
        path = directory / SIGNATURE_FILE
        staging = directory / f".{SIGNATURE_FILE}.tmp-{os.getpid()}"
        staging.write_bytes(signature)
        staging.replace(path)
    except HaiRuntimeError as exc:
        raise ArtifactWriteError(f"cannot sign {directory}: {exc}") from None
    except OSError as exc:
        raise ArtifactWriteError(f"cannot sign {directory}: {exc}") from None
    return path
