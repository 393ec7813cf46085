"""How much memory this process may still use, and refusing an artifact whose planned peak exceeds it.

Rule: the limit is the cgroup v2 limit (`/sys/fs/cgroup/memory.max`) when one
is set (`max` means none), else `MemAvailable` of `/proc/meminfo`; both are
read under `root` (default `/`) so tests point it at a fake tree. When neither
can be read the check is skipped (unknown is not "too little"). Imports only
the standard library and `runtime.host_probe` / `runtime.errors`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from runtime.errors import InsufficientMemoryError
from runtime.host_probe import memory


@dataclasses.dataclass(frozen=True)
class AvailableMemory:
    """The bytes this process may use and where that number came from (a file under the probed root)."""

    nbytes: int
    source: str


def available_memory(root: str | Path = "/") -> AvailableMemory | None:
    """The cgroup limit when set, else MemAvailable (module doc); None when neither is readable."""
    facts = memory(Path(root))
    if facts["cgroup_limit_bytes"] is not None:
        return AvailableMemory(facts["cgroup_limit_bytes"], "cgroup memory.max")
    if facts["available_bytes"]:
        return AvailableMemory(int(facts["available_bytes"]), "MemAvailable in /proc/meminfo")
    return None


def check_available_memory(
    planned_peak: int | None,
    artifact: str | Path,
    root: str | Path = "/",
    what: str = "plans a peak of",
    remedy: str = "free memory or raise the limit before loading it",
) -> None:
    """Refuse (InsufficientMemoryError) when less memory is available than `planned_peak` bytes (`what`
    the artifact needs them for, and the `remedy`, word the message)."""
    if planned_peak is None:
        return
    available = available_memory(root)
    if available is None or available.nbytes >= planned_peak:
        return
    raise InsufficientMemoryError(
        f"artifact {artifact} {what} {mib(planned_peak)} ({planned_peak} bytes) but this machine "
        f"has only {mib(available.nbytes)} ({available.nbytes} bytes) available ({available.source}): "
        f"{remedy}"
    )


def mib(nbytes: int) -> str:
    return f"{nbytes / 2**20:.1f} MiB"
