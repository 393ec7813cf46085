"""Reading an artifact directory: the manifest, its signature, and every file it lists, before any is used.

Rule: the runtime opens no file of an artifact that the manifest does not list, and none that is a
link or not a regular file (nothing outside the directory is reached). `open_artifact` checks, in
this order and before anything is loaded: the manifest is a plain file; with trusted keys, its
signature (`manifest.sig`, runtime/signing.py) verifies with one of them; it parses and its plan
holds (runtime/manifest_checks.py); every listed file is a plain file of the listed size (always,
so a truncated library never crashes a mapping); with `verify`, every sha256 matches. Each file is
opened once (O_NOFOLLOW) and its size and hash are read through that descriptor, which it hands on:
the runtime maps, reads and loads (runtime/fd_library.py) the very files checked, never a path
again, so a file swapped after the check is never used. Files the manifest does not list are
ignored, never opened. Imports the standard library and `runtime` only.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Sequence
from pathlib import Path

from runtime.artifact import MANIFEST_FILE, SIGNATURE_FILE, Manifest
from runtime.errors import ArtifactError, ArtifactIntegrityError
from runtime.fd_library import OpenFile
from runtime.manifest_checks import parse_manifest
from runtime.signing import TrustedKey, verify_signature

MAX_MANIFEST_BYTES = 64 << 20  # far above any real plan; a bigger file is refused unread


def open_plain(path: Path) -> int:
    """A read-only descriptor of `path`, which must be a regular file and not a link (ArtifactError)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise ArtifactError(
            f"artifact {path.parent} is missing {path.name}, which its manifest lists"
        ) from None
    except OSError as exc:
        reason = "it is a link; artifacts hold plain files only" if path.is_symlink() else exc.strerror
        raise ArtifactError(f"cannot open {path}: {reason}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise ArtifactError(f"{path} is not a regular file; artifacts hold plain files only")
    return fd


def read_plain(path: Path, limit: int) -> bytes:
    """The bytes of the plain file `path` (`open_plain`), refusing one of more than `limit` bytes."""
    fd = open_plain(path)
    with os.fdopen(fd, "rb") as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise ArtifactError(f"{path} has more than {limit} bytes; the artifact is corrupt")
    return data


def sha256_of(path: Path) -> str:
    """The sha256 of the plain file `path` (`open_plain`: never through a link)."""
    fd = open_plain(path)
    try:
        return sha256_of_fd(fd)
    finally:
        os.close(fd)


def sha256_of_fd(fd: int, chunk: int = 1 << 20) -> str:
    """The sha256 of the whole file open on `fd`, read by position (the descriptor's offset is not used)."""
    digest = hashlib.sha256()
    offset = 0
    while block := os.pread(fd, chunk, offset):
        digest.update(block)
        offset += len(block)
    return digest.hexdigest()


class ArtifactFiles:
    """A checked artifact: its manifest and a read-only descriptor of every listed file, opened once.

    Each file was opened (`open_plain`), size-checked and hashed through the descriptor it keeps, so
    what the runtime later reads, maps or loads from `fd(name)` is the file that was checked, whatever
    happens to the directory meanwhile (runtime/fd_library.py loads libraries this way). `close()`
    closes them all (also on leaving a `with` block); a user of a descriptor past that dups it.
    """

    def __init__(self, directory: Path, manifest: Manifest, descriptors: dict[str, int]) -> None:
        self.directory = directory
        self.manifest = manifest
        self._descriptors = descriptors

    def path(self, name: str) -> Path:
        return self.directory / name

    def fd(self, name: str) -> int:
        """The descriptor of listed file `name` (a `KeyError` for a file the manifest does not list)."""
        return self._descriptors[name]

    def open_file(self, name: str) -> OpenFile:
        return OpenFile(self.path(name), self.fd(name))

    def close(self) -> None:
        for fd in self._descriptors.values():
            os.close(fd)
        self._descriptors = {}

    def __enter__(self) -> ArtifactFiles:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_manifest(
    directory: str | Path, verify: bool = True, trusted_keys: Sequence[TrustedKey] | None = None
) -> Manifest:
    """The manifest of the artifact at `directory`, after every check of the module doc (`open_artifact`,
    its descriptors closed again)."""
    with open_artifact(directory, verify, trusted_keys) as files:
        return files.manifest


def open_artifact(
    directory: str | Path, verify: bool = True, trusted_keys: Sequence[TrustedKey] | None = None
) -> ArtifactFiles:
    """The artifact at `directory` with every listed file open, after every check of the module doc.

    Refuses, with an `ArtifactError` naming the file: a missing directory or manifest, a link, a
    corrupt manifest or plan, a wrong format version (`ArtifactVersionError`), an unsigned or wrongly
    signed manifest when `trusted_keys` are given (`ArtifactSignatureError`), a missing file, a file of
    the wrong size or whose sha256 differs (`ArtifactIntegrityError`).
    """
    directory = Path(directory)
    path = directory / MANIFEST_FILE
    if not directory.is_dir():
        raise ArtifactError(f"artifact {directory} does not exist or is not a directory")
    if not path.exists() and not path.is_symlink():
        raise ArtifactError(f"{directory} is not a HAI artifact: it has no {MANIFEST_FILE}")
    text = read_plain(path, MAX_MANIFEST_BYTES)
    if trusted_keys is not None:
        signature = directory / SIGNATURE_FILE
        exists = signature.exists() or signature.is_symlink()
        verify_signature(text, read_plain(signature, 1024) if exists else None, trusted_keys, str(directory))
    manifest = parse_manifest(text, str(path))
    files = ArtifactFiles(directory, manifest, {})
    try:
        for filename in sorted(manifest.files):
            files._descriptors[filename] = open_plain(directory / filename)
        check_files(files, verify)
    except BaseException:
        files.close()
        raise
    return files


def check_files(files: ArtifactFiles, verify: bool) -> None:
    """Every listed file is of its listed size, and (with `verify`) its sha256 matches; both through
    the descriptor `files` keeps of it."""
    listed = sorted(files.manifest.files.items())
    for filename, entry in listed:
        size = os.fstat(files.fd(filename)).st_size
        if size != entry.size:
            raise ArtifactIntegrityError(
                f"{files.path(filename)} has {size} bytes but the manifest says {entry.size}: the file is "
                f"{'truncated' if size < entry.size else 'too long'}"
            )
    if not verify:
        return
    for filename, entry in listed:
        actual = sha256_of_fd(files.fd(filename))
        if actual != entry.sha256:
            raise ArtifactIntegrityError(
                f"{files.path(filename)} does not match its checksum in the manifest "
                f"(sha256 {actual[:16]}…, expected {entry.sha256[:16]}…): the file was changed or corrupted"
            )
