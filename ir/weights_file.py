"""The `.hir` weights side file: OUT.weights.npz beside OUT.hir, content-addressed.

Rule: each member is one constant's data, keyed by the sha256 of its bytes (the
hash the `.hir` prints), so identical weights are stored once and the text alone
says which member a constant reads. bfloat16 and int4 arrays are stored as their
same-size integer views (plain numpy cannot name those dtypes); the reader
reinterprets members with the dtype the `.hir` declares. The zip is written with
fixed timestamps and sorted members, so the same weights give the same bytes
(and the same file hash). Imports numpy and `ir` only.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from ir.dtypes import DType
from ir.errors import HaiError
from ir.graph import Value
from ir.types import TensorType


class WeightsFileError(HaiError):
    """A weights file that is missing, altered, or lacks a constant the `.hir` needs."""


_STORAGE_VIEW = {DType.BF16: np.uint16, DType.I4: np.int8}


def weights_path_for(hir_path: Path) -> Path:
    """OUT.hir → OUT.weights.npz (the suffix is replaced, whatever it is)."""
    return (
        hir_path.with_name(hir_path.stem + ".weights.npz")
        if hir_path.suffix
        else Path(str(hir_path) + ".weights.npz")
    )


def confined_weights_path(hir_path: Path, name: str) -> Path:
    """The weights file a `.hir` header names: a path relative to the `.hir`'s directory that stays inside
    it (no absolute path, no `..` or link out of it), or a `WeightsFileError`."""
    directory = hir_path.parent
    path = directory / name
    inside = not Path(name).is_absolute() and path.resolve().is_relative_to(directory.resolve())
    if not inside:
        raise WeightsFileError(
            f"{hir_path} names weights file {name!r}, which is outside the .hir's directory: a weights "
            "file must sit beside its .hir (or below it)"
        )
    return path


def write_weights(path: Path, constants: Iterable[Value]) -> str:
    """Write the constants' data to `path`; returns the sha256 of the file's bytes."""
    members: dict[str, np.ndarray] = {}
    for value in constants:
        if not isinstance(value.const, np.ndarray):
            raise WeightsFileError(
                f"cannot save weights to {path}: constant %{value.name} was read without its data"
            )
        array = np.ascontiguousarray(value.const)
        view = _STORAGE_VIEW.get(value.type.dtype)
        members.setdefault(value.sha256, array.view(view) if view is not None else array)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        for key in sorted(members):
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            member = io.BytesIO()
            np.lib.format.write_array(member, members[key], allow_pickle=False)
            archive.writestr(info, member.getvalue())
    data = buffer.getvalue()
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def read_weights(path: Path, expected_sha256: str, hir_name: str) -> dict[str, np.ndarray]:
    """The members of a weights file by content hash, after checking the file's own hash."""
    if not path.is_file():
        raise WeightsFileError(f"{hir_name} names weights file {path}, which does not exist")
    data = path.read_bytes()
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected_sha256:
        raise WeightsFileError(
            f"weights file {path} does not have the sha256 {expected_sha256[:16]}… that {hir_name} "
            "expects: the weights do not belong to this .hir"
        )
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as archive:
            return {key: archive[key] for key in archive.files}
    except (ValueError, OSError, zipfile.BadZipFile) as exc:
        raise WeightsFileError(f"weights file {path} is not a readable .npz: {exc}") from None


def as_typed(array: np.ndarray, type: TensorType) -> np.ndarray | None:
    """`array` as data of `type`: itself, or its bytes reinterpreted; None when they cannot fit."""
    array = np.asarray(array)
    want = type.dtype.numpy
    if array.dtype == want and tuple(array.shape) == type.shape:
        return array
    if array.nbytes != type.size * want.itemsize:
        return None
    return np.frombuffer(np.ascontiguousarray(array).tobytes(), dtype=want).reshape(type.shape)
