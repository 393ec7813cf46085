"""What `load` checks before it builds a model: its arguments' types and that this CPU runs the kernels.

Rule: a wrong argument is an `InvalidArgumentError` naming it; a CPU of another architecture, or
one that lacks an ISA feature the kernels use, is an `UnsupportedCpuError` naming what is missing and
how to recompile (never SIGILL). Imports the runtime's own modules only.
"""

from __future__ import annotations

import os
from pathlib import Path

from runtime.artifact import Manifest
from runtime.cpu_features import missing_features
from runtime.errors import InvalidArgumentError, UnsupportedCpuError
from runtime.hai import Capabilities


def check_load_arguments(path: object, threads: object, verify: object) -> None:
    """`load`'s arguments have the types it documents (an `InvalidArgumentError` names the wrong one)."""
    if not isinstance(path, str | os.PathLike):
        raise InvalidArgumentError(f"load: path must be a str or a Path, got {type(path).__name__}")
    if threads is not None and (type(threads) is not int or threads < 1):
        raise InvalidArgumentError(f"load: threads must be an int >= 1 or None, got {threads!r}")
    if type(verify) is not bool:
        raise InvalidArgumentError(f"load: verify must be True or False, got {verify!r}")


def check_cpu(manifest: Manifest, caps: Capabilities, directory: Path) -> None:
    """Refuse an artifact whose kernels this CPU cannot execute, naming what is missing."""
    target = manifest.target
    if target.arch != caps.isa:
        raise UnsupportedCpuError(
            f"artifact {directory} was compiled for {target.arch} ({target.name}, cpu {target.cpu}); "
            f"this machine is {caps.isa}: compile it for this machine's target"
        )
    missing = missing_features(target.features, caps.features)
    if missing:
        raise UnsupportedCpuError(
            f"artifact {directory} needs CPU feature(s) {', '.join(missing)} (compiled for cpu "
            f"{target.cpu}), which this CPU lacks; running it would crash with an illegal instruction. "
            f"Recompile with --target {target.name} on this machine, or --cpu with a lower ISA level"
        )
