"""Shared machinery of the data-movement templates (shape, indexing, generate and image families).

Rule: data movement is dtype-generic — a kernel moves *storage* elements. Every
IR dtype is stored as itself except bf16 and i4, which DLPack cannot carry:
their kernel arguments are uint16 / uint8 views of the same bytes (an i4
element is one byte holding the low nibble, as ml_dtypes stores it), and
`pack_weights` views constants the same way. Templates that compute (Resize's
filters, Range) `decode` storage into a compute type and `encode` back.
Every read index a template builds is clamped into its tensor, so a select
that is evaluated eagerly (vectorised) never reads out of bounds. A template
builds its TE outputs from `KernelBuilder.operand(...)` placeholders and calls
`finish`, which makes the PrimFunc, schedules each output block (outer axes
fused and parallel when large, the innermost axis vectorised when the
template says its reads are contiguous) and names the kernel by its workload.
"""

from __future__ import annotations

import functools
import hashlib
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tvm import te, tirx

from ir.dtypes import DType
from ir.graph import Node, Value
from targets.lowering.elementwise import PARALLEL_MIN_ELEMENTS
from targets.lowering.kernel import KernelArg, LoweredKernel, LoweringError, kernel_name, snapshot
from targets.lowering.pointwise import storage_dtype  # the project-wide kernel view of IR dtypes
from targets.target import TargetDescription

Expr = Any
_FAMILY_MODULES = ("movement", "shape", "indexing", "generate", "image")


@functools.cache
def template_version() -> str:
    """A digest of these templates' source: part of every workload, so editing a template
    never reuses a kernel compiled (and cached on disk) from the old code."""
    here = Path(__file__).parent
    digest = hashlib.sha256()
    for module in _FAMILY_MODULES:
        digest.update((here / f"{module}.py").read_bytes())
    return digest.hexdigest()[:12]


def as_storage(array: np.ndarray, dtype: DType) -> np.ndarray:
    """`array` (of IR dtype `dtype`) viewed as its storage dtype, C-contiguous."""
    return np.ascontiguousarray(array, dtype=dtype.numpy).view(storage_dtype(dtype))


def literal(value: Any, dtype: DType) -> Expr:
    """A storage-typed constant holding `value`, already converted to `dtype` the numpy way."""
    bits = as_storage(np.asarray(value, dtype=dtype.numpy).reshape(1), dtype)[0]
    return tirx.const(bits.item(), storage_dtype(dtype))


def decode(x: Expr, dtype: DType) -> Expr:
    """A storage element as a number: bf16 -> float32, i4 -> signed int32, others unchanged."""
    if dtype is DType.BF16:
        return tirx.reinterpret("float32", tirx.Cast("uint32", x) << tirx.const(16, "uint32"))
    if dtype is DType.I4:
        low = tirx.Cast("int32", x) & 15
        return tirx.Select(low >= 8, low - 16, low)
    return x


def encode(x: Expr, dtype: DType) -> Expr:
    """A value already rounded/clamped into `dtype`'s range as storage (float32 for bf16, int for i4)."""
    if dtype is DType.BF16:
        bits = tirx.reinterpret("uint32", tirx.Cast("float32", x))
        rounding = tirx.const(0x7FFF, "uint32") + (
            (bits >> tirx.const(16, "uint32")) & tirx.const(1, "uint32")
        )
        return tirx.Cast("uint16", (bits + rounding) >> tirx.const(16, "uint32"))
    if dtype is DType.I4:
        return tirx.Cast("uint8", tirx.Cast("int32", x) & 15)
    return tirx.Cast(storage_dtype(dtype), x)


def rounded(x: Expr) -> Expr:
    """`x` rounded to its type before any further arithmetic: LLVM may not fuse it into an FMA.

    TVM compiles with FP contraction on, which would make `a * b + c` one rounding
    where numpy (the reference) rounds twice.
    """
    return tirx.call_llvm_pure_intrin(str(x.ty), "llvm.arithmetic.fence", x)


def clamp(index: Expr, size: int) -> Expr:
    """`index` clamped into [0, size)."""
    return te.max(te.min(index, size - 1), 0)


def index_value(x: Expr, dtype: DType, size: int) -> Expr:
    """An index tensor's element as an int32 position into an axis of `size`: negative wraps, then clamps.

    Out-of-range indices are an error in the reference; a kernel cannot raise, so it stays in bounds.
    """
    if not dtype.is_integer and dtype is not DType.BOOL:
        raise LoweringError(f"index tensors must be integers, got {dtype}")
    v = tirx.Cast("int64", decode(x, dtype))
    v = tirx.Select(v < 0, v + size, v)
    return tirx.Cast("int32", te.max(te.min(v, tirx.const(size - 1, "int64")), tirx.const(0, "int64")))


class KernelBuilder:
    """Placeholders for a node's operands (one per distinct value) and the kernel that `finish` makes."""

    def __init__(self, node: Node, target: TargetDescription, epilogue: Sequence[Node] = ()) -> None:
        if epilogue:
            raise LoweringError(f"node {node.name!r} ({node.op}) takes no fused epilogue")
        self.node = node
        self.target = target
        self._placeholders: dict[int, tuple[Value, Any]] = {}

    def operand(self, index: int, shape: Sequence[int] | None = None) -> Any:
        """The placeholder of operand `index`, viewed as `shape` (same bytes; default its own shape)."""
        value = self.node.operands[index] if index < len(self.node.operands) else None
        if value is None:
            raise LoweringError(f"node {self.node.name!r} ({self.node.op}): operand {index} is absent")
        if id(value) not in self._placeholders:
            view = tuple(value.type.shape if shape is None else shape)
            tensor = te.placeholder(
                view, storage_dtype(value.type.dtype), name=f"in{len(self._placeholders)}"
            )
            self._placeholders[id(value)] = (value, tensor)
        return self._placeholders[id(value)][1]

    def parameters(self) -> list[Any]:
        """The operand placeholders in kernel-argument order: runtime inputs, then constants."""
        return [t for _, t in self._ordered()]

    def _ordered(self) -> list[tuple[Value, Any]]:
        return sorted(self._placeholders.values(), key=lambda p: p[0].is_constant)

    def operand_dtype(self, index: int = 0) -> str:
        """The storage dtype of operand `index`."""
        return storage_dtype(self.dtype(index))

    def dtype(self, index: int = 0) -> DType:
        value = self.node.operands[index]
        assert value is not None
        return value.type.dtype

    def finish(
        self,
        outputs: Sequence[Any],
        contiguous: bool | Sequence[bool] = False,
        workload: Mapping[str, Any] | None = None,
        func: Any = None,
        schedule: Any = None,
    ) -> LoweredKernel:
        """The kernel writing `outputs` (TE tensors, one per node result, in order).

        `contiguous` (per output) says the innermost axis reads its operands contiguously, so
        vectorising it pays. A ready `func` (an unscheduled PrimFunc over the same placeholders
        and outputs) replaces the TE PrimFunc; a `schedule(sch, block, tensor)` replaces the default one.
        """
        import tvm.s_tir as s_tir

        node = self.node
        if len(outputs) != len(node.results):
            raise LoweringError(
                f"node {node.name!r}: {len(outputs)} kernel outputs for {len(node.results)} results"
            )
        ordered = self._ordered()
        args = [_arg(v, "weight" if v.is_constant else "input", t.shape) for v, t in ordered]
        args += [_arg(v, "output", t.shape) for v, t in zip(node.results, outputs, strict=True)]
        full = {
            "op": node.op,
            "attrs": {k: _jsonable(v) for k, v in sorted(node.attrs.items())},
            "args": [[a.role, list(a.shape), str(v.type.dtype)] for a, v in zip(args, self._values(ordered))],
            "vector_bytes": self.target.vector_bytes,
            "version": template_version(),
            **(workload or {}),
        }
        name = kernel_name(full["op"], full)
        compute = func
        if func is None:
            func = te.create_prim_func([t for _, t in ordered] + list(outputs))
            compute = snapshot(func)
            sch = s_tir.Schedule(func.with_attr("global_symbol", name))
            flags = [contiguous] * len(outputs) if isinstance(contiguous, bool) else list(contiguous)
            for out, flag in zip(outputs, flags, strict=True):
                if schedule is not None:
                    schedule(sch, sch.get_sblock(out.op.name), out)
                else:
                    schedule_output(sch, sch.get_sblock(out.op.name), out, self.target, flag)
            func = sch.mod["main"]
        dtypes = {v.type.dtype for v, _ in ordered} | {r.type.dtype for r in node.results}
        viewed = any(storage_dtype(d) != d.numpy.name for d in dtypes)
        return LoweredKernel(
            name,
            func.with_attr("global_symbol", name),
            tuple(args),
            0,
            (node.name,),
            full,
            layout="any",
            pack_weights=_storage_pack(dtypes) if viewed else _plain_pack,
            compute=compute,
        )

    def _values(self, ordered: Sequence[tuple[Value, Any]]) -> list[Value]:
        return [v for v, _ in ordered] + list(self.node.results)


def _arg(value: Value, role: str, shape: Sequence[Any]) -> KernelArg:
    return KernelArg(value.name, role, tuple(int(d) for d in shape), storage_dtype(value.type.dtype))


def _jsonable(value: Any) -> Any:
    if isinstance(value, (tuple, list)):
        return [_jsonable(v) for v in value]
    if isinstance(value, DType):
        return str(value)
    return value


def _plain_pack(arrays: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {name: np.ascontiguousarray(a) for name, a in arrays.items()}


def _storage_pack(dtypes: set[DType]):  # noqa: ANN202 - a PackFn
    def pack(arrays: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {name: as_storage(a, DType.from_numpy(a.dtype)) for name, a in arrays.items()}

    return pack


def schedule_output(sch: Any, block: Any, out: Any, target: TargetDescription, contiguous: bool) -> None:
    """Outer axes fused and parallel when the output is large; innermost axis vectorised if `contiguous`."""
    shape = [int(d) for d in out.shape]
    if not shape or math.prod(shape) == 0:
        return
    loops = list(sch.get_loops(block))
    outer, inner = loops[:-1], loops[-1]
    dtype = str(out.dtype)
    lanes = target.vector_bytes // max(np.dtype(dtype).itemsize, 1)
    if contiguous and dtype != "bool" and shape[-1] % lanes == 0:
        rest, vec = sch.split(inner, [None, lanes])
        sch.vectorize(vec)
        outer.append(rest)
    if math.prod(shape) >= PARALLEL_MIN_ELEMENTS and outer:
        sch.parallel(sch.fuse(*outer) if len(outer) > 1 else outer[0])
