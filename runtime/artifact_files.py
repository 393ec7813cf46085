"""Reading an artifact directory: the manifest, its signature, and every file it lists, before any is used.

Rule: the runtime opens no file of an artifact that the manifest does not list, and none that is a
link or not a regular file (nothing outside the directory is reached). `read_manifest` checks, in
this order and before anything is loaded: the manifest is a plain file; with trusted keys, its
signature (`manifest.sig`, runtime/signing.py) verifies with one of them; it parses and its plan
holds (runtime/manifest_checks.py); every listed file is a plain file of the listed size (always,
so a truncated library never crashes a mapping); with `verify`, every sha256 matches. Files the
manifest does not list are ignored, never opened. Imports the standard library and `runtime` only.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Sequence
from pathlib import Path

from runtime.artifact import MANIFEST_FILE, SIGNATURE_FILE, Manifest
from runtime.errors import ArtifactError, ArtifactIntegrityError
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


def sha256_of(path: Path, chunk: int = 1 << 20) -> str:
    """The sha256 of the plain file `path` (`open_plain`: never through a link)."""
    digest = hashlib.sha256()
    with os.fdopen(open_plain(path), "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def read_manifest(
    directory: str | Path, verify: bool = True, trusted_keys: Sequence[TrustedKey] | None = None
) -> Manifest:
    """The manifest of the artifact at `directory`, after every check of the module doc.

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
    manifest = Manifest.from_json(text, str(path))
    check_files(directory, manifest, verify)
    return manifest


def check_files(directory: Path, manifest: Manifest, verify: bool) -> None:
    """Every listed file is a plain file of its listed size, and (with `verify`) its sha256 matches."""
    for filename, entry in sorted(manifest.files.items()):
        path = directory / filename
        fd = open_plain(path)
        size = os.fstat(fd).st_size
        os.close(fd)
        if size != entry.size:
            raise ArtifactIntegrityError(
                f"{path} has {size} bytes but the manifest says {entry.size}: the file is "
                f"{'truncated' if size < entry.size else 'too long'}"
            )
    if not verify:
        return
    for filename, entry in sorted(manifest.files.items()):
        actual = sha256_of(directory / filename)
        if actual != entry.sha256:
            raise ArtifactIntegrityError(
                f"{directory / filename} does not match its checksum in the manifest "
                f"(sha256 {actual[:16]}…, expected {entry.sha256[:16]}…): the file was changed or corrupted"
            )
