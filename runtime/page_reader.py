"""Reading byte ranges of `weights.bin` into page frames, leaving no second copy in the page cache.

Rule: the file is opened unbuffered (`os.open`); a range is read straight
into the caller's frame with `os.preadv` (positional, so reads need no shared
file position; `os.pread` plus one copy where `preadv` is missing), repeated
over short reads, and then dropped from the kernel's page cache with
`posix_fadvise(DONTNEED)` where the platform has it: the frame is the only
copy the process pays for. A range past the end of the file is an
`ArtifactIntegrityError` naming the file, the range and the file's size.
Imports the standard library only.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol

from runtime.errors import ArtifactIntegrityError


class PageReader(Protocol):
    """Fills a buffer with the file's bytes [offset, offset + len(buffer))."""

    def read_into(self, buffer: memoryview, offset: int) -> None: ...


class WeightsFileReader:
    """`PageReader` over one file (module doc: the rule). Thread-safe: reads are positional."""

    def __init__(self, path: str | Path, fd: int | None = None) -> None:
        """Reads `path`, or with `fd` (a descriptor of `path` already verified) a duplicate of `fd`."""
        self.path = Path(path)
        self._fd = -1
        try:
            self._fd = os.dup(fd) if fd is not None else os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            raise ArtifactIntegrityError(f"cannot open weights file {self.path}: {exc.strerror}") from exc
        self.size = os.fstat(self._fd).st_size

    def check_covers(self, end: int, what: str) -> None:
        """Refuse now, before any read, a file shorter than `end` bytes (`what` names the range)."""
        if self.size < end:
            raise ArtifactIntegrityError(
                f"weights file {self.path} is truncated: {what} ends at byte {end}, but the file has "
                f"{self.size} bytes; recompile or copy the artifact again"
            )

    def read_into(self, buffer: memoryview, offset: int) -> None:
        wanted = len(buffer)
        done = 0
        while done < wanted:
            got = self._read(buffer[done:], offset + done)
            if got == 0:
                raise ArtifactIntegrityError(
                    f"weights file {self.path} is truncated: reading bytes [{offset}, {offset + wanted}) "
                    f"stopped at offset {offset + done} (end of file); recompile or copy the artifact again"
                )
            done += got
        if hasattr(os, "posix_fadvise") and wanted:
            os.posix_fadvise(self._fd, offset, wanted, os.POSIX_FADV_DONTNEED)

    def _read(self, buffer: memoryview, offset: int) -> int:
        if hasattr(os, "preadv"):
            return os.preadv(self._fd, [buffer], offset)
        data = os.pread(self._fd, len(buffer), offset)
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __del__(self) -> None:
        self.close()
