"""Loading a shared library through the descriptor it was verified through, so no other file is loaded.

Rule: a file the runtime verified (runtime/artifact_files.py: opened once, O_NOFOLLOW, hashed through
that descriptor) is loaded by the name `/proc/self/fd/N` of a duplicate of the same descriptor. The
dynamic loader then maps exactly the verified file, even if the artifact's directory entry was
replaced since: there is no window between the check and the use. glibc remembers every name a
library was opened under and answers a later `dlopen` of the same name with that library, so a
number `N` that named a loaded library must never name another file: its descriptor stays open for
the life of the process (ctypes never unloads a library anyway). One library file (device and inode)
is loaded once; a later load of the same file reuses it, as the loader itself would.

Where `/proc/self/fd` does not exist (no procfs mounted), the library is loaded by its path after
checking that the path still names the verified file (same device and inode, not a link); a swap
between that check and the loader's own open is then still possible, and the module says so here.
Imports the standard library and `runtime.errors` only.
"""

from __future__ import annotations

import ctypes
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from runtime.errors import ArtifactIntegrityError

PROC_FD = Path("/proc/self/fd")
_loaded: dict[tuple[int, int], tuple[int, ctypes.CDLL]] = {}  # (device, inode) -> (kept fd, library)
_lock = threading.Lock()


@dataclass(frozen=True)
class OpenFile:
    """A verified file: where it is (for messages and the no-/proc fallback) and its open descriptor."""

    path: Path
    fd: int


def descriptor_name(fd: int, path: Path) -> str:
    """The name under which the loader opens the very file open on `fd` (`path`: that file's place,
    used where there is no /proc; module doc)."""
    if PROC_FD.is_dir():
        return str(PROC_FD / str(fd))
    opened, named = os.fstat(fd), os.stat(path, follow_symlinks=False)
    if (opened.st_dev, opened.st_ino) != (named.st_dev, named.st_ino):
        raise ArtifactIntegrityError(f"{path} was replaced after it was verified; load the artifact again")
    return str(path)


def load_library(fd: int, path: Path, mode: int = ctypes.DEFAULT_MODE) -> ctypes.CDLL:
    """The library open on `fd` (the caller's descriptor of the verified file `path`; the caller keeps
    it and may close it), loaded through a duplicate that stays open (module doc). `OSError` when the
    loader refuses it."""
    status = os.fstat(fd)
    key = (status.st_dev, status.st_ino)
    with _lock:
        if key in _loaded:
            return _loaded[key][1]
        kept = os.dup(fd)
        try:
            library = ctypes.CDLL(descriptor_name(kept, path), mode=mode)
        except BaseException:
            os.close(kept)
            raise
        _loaded[key] = (kept, library)
        return library
