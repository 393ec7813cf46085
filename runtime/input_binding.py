"""Binding a run's inputs: the caller's arrays as the kernels may read them, or an error that says why not.

Rule: `feeds` must be a mapping with exactly the model's input names, each a numpy array of exactly
the input's shape and dtype (else a `ModelInputError` naming the inputs and what they take). An array
that is C-contiguous, writable and aligned (64 bytes, or a zero-copy device's base-address alignment)
is bound itself; any other is copied once into an aligned array. Inputs live outside the arena.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from runtime.artifact import ALIGNMENT, Manifest, TensorBinding, numpy_dtype
from runtime.errors import ModelInputError
from runtime.hai import Device
from runtime.kernel_library import aligned_empty
from runtime.plan_devices import HOST_DEVICE


class InputBinder:
    """Checks and binds the inputs of `manifest`'s model for the devices that run it (module rule)."""

    def __init__(self, manifest: Manifest, devices: Mapping[str, Device]) -> None:
        self.model = manifest.name
        self.inputs = manifest.inputs
        self.names = frozenset(b.name for b in manifest.inputs)
        self.dtypes = [(b, numpy_dtype(b.dtype)) for b in manifest.inputs]
        # a device that binds the caller's arrays themselves (zero-copy) may want them aligned further
        shared = [d.capabilities().alignment for n, d in devices.items() if n != HOST_DEVICE and
                  d.capabilities().host_visible]  # fmt: skip
        self.alignment = max([ALIGNMENT, *shared])

    def bind(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Each input as kernels may read it (module rule)."""
        try:
            names = feeds.keys()
        except AttributeError:
            raise ModelInputError(self._not_a_mapping(feeds)) from None
        if names != self.names:
            raise ModelInputError(self._name_mismatch(feeds))
        bound = {}
        for binding, dtype in self.dtypes:
            value = feeds[binding.name]
            if not isinstance(value, np.ndarray) or value.shape != binding.shape or value.dtype != dtype:
                raise ModelInputError(self._value_mismatch(binding, value))
            flags, alignment = value.flags, self.alignment
            if not (flags.c_contiguous and flags.writeable) or (value.size and value.ctypes.data % alignment):
                copy = aligned_empty(binding.shape, dtype, alignment)
                np.copyto(copy, value)
                value = copy
            bound[binding.name] = value
        return bound

    def _not_a_mapping(self, feeds: object) -> str:
        expected = ", ".join(f"{b.name!r}: array" for b in self.inputs)
        return f"model {self.model!r}: run takes a dict {{{expected}}}, got a {type(feeds).__name__}"

    def _name_mismatch(self, feeds: Mapping[str, Any]) -> str:
        given = {str(k) for k in feeds}
        missing = sorted(self.names - given)
        unexpected = sorted(given - self.names)
        parts = [f"missing input(s) {missing}"] if missing else []
        parts += [f"unexpected input(s) {unexpected}"] if unexpected else []
        expected = ", ".join(f"{b.name} {list(b.shape)} {b.dtype}" for b in self.inputs)
        return f"model {self.model!r}: {'; '.join(parts)}; it takes {expected}"

    def _value_mismatch(self, binding: TensorBinding, value: object) -> str:
        want = f"shape {list(binding.shape)} dtype {binding.dtype}"
        if not isinstance(value, np.ndarray):
            got = f"a {type(value).__name__}, not a numpy array"
        else:
            got = f"shape {list(value.shape)} dtype {value.dtype}"
            if value.shape == binding.shape:
                got += f"; convert it with .astype(np.{binding.dtype})"
        return f"model {self.model!r}: input {binding.name!r} must have {want}, got {got}"
