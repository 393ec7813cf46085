"""The kernel contract every lowering template returns: `LoweredKernel`, its `KernelArg`s, its name.

Rule: a kernel's arguments are its inputs, then its weights, then its output,
each with the IR value it binds and the shape the kernel views it as (same bytes
in C order as the IR value; e.g. MatMul views (1, 40, 120) as (40, 120)).
Weights the template wants in another layout come with a pure numpy
`pack_weights`, applied once at compile time. The kernel name is derived from
the workload, so identical workloads share one compiled kernel (build_kernels
dedups by name). TVM indexes buffers with int32, so no tensor a kernel reads or
writes may hold more than `MAX_KERNEL_ELEMENTS` elements. This module imports
no template and no TVM.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ir.errors import HaiError
from ir.graph import Value

PackFn = Callable[[Mapping[str, np.ndarray]], dict[str, np.ndarray]]


MAX_KERNEL_ELEMENTS = 2**31 - 1
"""The most elements of one kernel buffer: TVM's int32 index range."""


class LoweringError(HaiError):
    """An IR node the target's templates cannot lower (unsupported op, dtype or attribute)."""


@dataclass(frozen=True)
class KernelArg:
    """One kernel argument: the IR value it binds, its role, and the kernel's view of it.

    `part` names a second array a weight constant is stored as (e.g. "scales": the group scales
    of an INT4 weight, targets/lowering/weight_only.py); `pack_weights` returns it under `key`."""

    value: str  # IR value name
    role: str  # "input" | "weight" | "output"
    shape: tuple[int, ...]
    dtype: str  # numpy dtype name, e.g. "float32"
    part: str | None = None

    @property
    def key(self) -> str:
        """The name `pack_weights` gives this argument's array: the value's, or `value:part`."""
        return self.value if self.part is None else f"{self.value}:{self.part}"


def identity_pack(arrays: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {name: np.ascontiguousarray(a) for name, a in arrays.items()}


@dataclass
class LoweredKernel:
    """A scheduled TVM PrimFunc for one node (and its fused epilogue), with everything a driver needs.

    `func` is the PrimFunc whose `global_symbol` is `name`; `args` lists its
    parameters in order; `pack_weights` maps the weight constants (by IR value
    name, in the IR's layout) to the arrays the kernel wants (by each weight arg's `key`);
    `flops` counts multiply-adds as two; `sources` are the IR node names fused in.
    """

    name: str
    func: Any
    args: tuple[KernelArg, ...]
    flops: int
    sources: tuple[str, ...]
    workload: dict[str, Any]
    layout: str = "NCHW"
    pack_weights: PackFn = identity_pack
    notes: dict[str, Any] = field(default_factory=dict)
    compute: Any = None
    """The PrimFunc before the CPU schedule (None where a template has not recorded it): a target that
    binds threads itself (OpenCL, targets/opencl/threads.py) schedules this instead of `func`."""

    @property
    def inputs(self) -> tuple[KernelArg, ...]:
        return tuple(a for a in self.args if a.role == "input")

    @property
    def weights(self) -> tuple[KernelArg, ...]:
        return tuple(a for a in self.args if a.role == "weight")

    @property
    def outputs(self) -> tuple[KernelArg, ...]:
        return tuple(a for a in self.args if a.role == "output")

    @property
    def key(self) -> str:
        return workload_hash(self.workload)


def snapshot(func: Any) -> Any:
    """A deep copy of the PrimFunc `func`: a schedule may edit the statements of the function it is
    given in place, so a template keeps this copy as its kernel's `compute`."""
    import tvm

    return tvm.ir.load_json(tvm.ir.save_json(func))


def workload_hash(workload: Mapping[str, Any]) -> str:
    """sha256 of the workload's canonical JSON (sorted keys, no whitespace)."""
    text = json.dumps(workload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def kernel_name(op: str, workload: Mapping[str, Any]) -> str:
    """A C identifier naming the workload: `conv_3f9a0c...` (identical workloads, identical names)."""
    return f"hai_{op.lower()}_{workload_hash(workload)[:16]}"


def arg(value: Value, role: str, shape: Sequence[int]) -> KernelArg:
    return KernelArg(value.name, role, tuple(int(d) for d in shape), value.type.dtype.numpy.name)


def unravel(flat: Any, dims: Sequence[int]) -> list[Any]:
    """Indices into `dims` (C order) of a flat index expression."""
    index = []
    for size in reversed(dims):
        index.append(flat % size if size != 1 else 0)
        flat = flat // size
    return index[::-1]
