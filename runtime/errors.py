"""The runtime's own error family: every message names the device, buffer, kernel or file.

The runtime imports nothing of ours (it ships without the compiler), so it cannot
reuse `ir.errors.HaiError`; `HaiRuntimeError` is its root instead. This module
imports nothing.
"""

from __future__ import annotations


class HaiRuntimeError(Exception):
    """A run-time failure a user can act on: a missing device, a bad buffer, a kernel that will not load."""


class DeviceNotFoundError(HaiRuntimeError):
    """No driver or device matches the requested name or index."""


class DeviceBufferError(HaiRuntimeError):
    """Misuse of a device buffer: freed twice, used after free, out-of-range copy or map."""


class KernelError(HaiRuntimeError):
    """A kernel library that does not load, an entry point it lacks, or a launch it refuses."""


class UnsupportedError(HaiRuntimeError):
    """The device lacks an optional HAI extension or a capability the caller asked for."""


class ArtifactError(HaiRuntimeError):
    """An artifact directory that cannot be used: missing or corrupt manifest, missing file, bad plan."""


class ArtifactVersionError(ArtifactError):
    """The manifest's format version is not the one this runtime reads."""


class ArtifactIntegrityError(ArtifactError):
    """A file of the artifact is truncated or its sha256 differs from the manifest's."""


class ArtifactSignatureError(ArtifactError):
    """Trusted keys were given and the artifact is unsigned, or its signature verifies with none of them."""


class UnsupportedCpuError(UnsupportedError):
    """The artifact's kernels need an architecture or ISA features this CPU lacks."""


class InvalidArgumentError(HaiRuntimeError):
    """A runtime call got an argument of the wrong type or value (`load(path, threads="2")`)."""


class ModelInputError(HaiRuntimeError):
    """`Model.run` got inputs with wrong names, shapes or dtypes."""


class ModelClosedError(HaiRuntimeError):
    """`Model.run` on a model that was closed (its devices released)."""


class InsufficientMemoryError(HaiRuntimeError):
    """The machine has less memory available than the artifact's plan needs (checked before running)."""
