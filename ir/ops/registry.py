"""The op registry: every IR op is declared exactly once, here-through `define_op`.

A declaration gives the op's operands (`"X"`, optional `"B?"`, variadic last
`"inputs*"`), its attributes with kinds and defaults, a shape/type inference
function and a numpy reference implementation. Family modules under `ir/ops/`
(conv, matmul, elementwise, ...) call `define_op`; importing `ir.ops` loads them
all. The number of results is whatever inference returns.
"""

from __future__ import annotations

import dataclasses
import enum
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from ir.dtypes import DType
from ir.errors import IRError, UnknownOpError
from ir.types import TensorType


class AttrKind(enum.Enum):
    """The kinds of attribute value; `.hir` prints each with its own syntax."""

    INT = "int"
    FLOAT = "float"
    STR = "str"
    INTS = "ints"
    FLOATS = "floats"
    STRS = "strs"
    DTYPE = "dtype"


REQUIRED = object()
"""Marks an attribute without a default."""


@dataclasses.dataclass(frozen=True)
class Attr:
    """An attribute's kind and default; default `None` means optional and absent."""

    kind: AttrKind
    default: Any = REQUIRED


@dataclasses.dataclass(frozen=True)
class Operand:
    name: str
    optional: bool = False
    variadic: bool = False

    @classmethod
    def parse(cls, spec: str) -> Operand:
        if spec.endswith("?"):
            return cls(spec[:-1], optional=True)
        if spec.endswith("*"):
            return cls(spec[:-1], variadic=True)
        return cls(spec)


InferFn = Callable[[Sequence[TensorType | None], Mapping[str, Any]], list[TensorType]]
ComputeFn = Callable[[Sequence[np.ndarray | None], Mapping[str, Any]], list[np.ndarray]]
TypedComputeFn = Callable[
    [Sequence[np.ndarray | None], Mapping[str, Any], Sequence[TensorType | None]], list[np.ndarray]
]
"""A reference that also reads its operands' types (quantized ops: the scales live in the types)."""


@dataclasses.dataclass(frozen=True)
class OpSchema:
    """Everything the compiler knows about one IR op."""

    name: str
    family: str
    operands: tuple[Operand, ...]
    attributes: Mapping[str, Attr]
    infer: InferFn
    compute: ComputeFn | TypedComputeFn
    doc: str = ""
    typed: bool = False  # compute takes the operand types as a third argument
    foldable: bool = True  # fold-constants may evaluate it over constant operands
    view: bool = False  # its one result is operand 0's bytes under another shape: no kernel, no copy
    pointwise: bool = False  # each result element comes from the operand elements at its index
    epilogue: bool = False  # a float pointwise op a kernel may apply to its result (the `fuse` pass)

    def evaluate(
        self, args: Sequence[np.ndarray | None], attrs: Mapping[str, Any], types: Sequence[TensorType | None]
    ) -> list[np.ndarray]:
        """The op's results by its reference implementation (what the interpreter and folding call)."""
        if self.typed:
            return self.compute(args, attrs, types)  # type: ignore[call-arg]
        return self.compute(args, attrs)  # type: ignore[call-arg]

    def check_operands(self, count: int, present: Sequence[bool], where: str) -> None:
        """Raise an IRError naming `where` unless `count` operands fit this schema."""
        fixed = [o for o in self.operands if not o.variadic]
        variadic = any(o.variadic for o in self.operands)
        required = sum(1 for o in fixed if not o.optional)
        if count < required or (count > len(fixed) and not variadic):
            expected = ", ".join(
                o.name + ("?" if o.optional else "*" if o.variadic else "") for o in self.operands
            )
            raise IRError(f"{where}: {self.name} takes ({expected}), got {count} operands")
        for operand, is_present in zip(fixed, present):
            if not is_present and not operand.optional:
                raise IRError(f"{where}: operand '{operand.name}' of {self.name} is required")

    def normalize_attrs(self, attrs: Mapping[str, Any], where: str) -> dict[str, Any]:
        """Coerce given attributes to their kinds and fill defaults; unknown ones are errors."""
        unknown = sorted(set(attrs) - set(self.attributes))
        if unknown:
            known = ", ".join(sorted(self.attributes)) or "none"
            raise IRError(f"{where}: {self.name} has no attribute {unknown} (known: {known})")
        result: dict[str, Any] = {}
        for key, spec in self.attributes.items():
            if key in attrs and attrs[key] is not None:
                result[key] = coerce_attr(spec.kind, attrs[key], f"{where}: attribute '{key}'")
            elif spec.default is REQUIRED:
                raise IRError(f"{where}: {self.name} needs attribute '{key}'")
            elif spec.default is not None:
                result[key] = spec.default
        return result


def coerce_attr(kind: AttrKind, value: Any, where: str) -> Any:
    """Turn a Python value into the canonical form of attribute `kind`."""
    try:
        if kind is AttrKind.INT:
            return _as_int(value)
        if kind is AttrKind.FLOAT:
            return float(value)
        if kind is AttrKind.STR:
            return value.decode() if isinstance(value, bytes) else str(value)
        if kind is AttrKind.INTS:
            return tuple(_as_int(v) for v in np.asarray(value).reshape(-1).tolist())
        if kind is AttrKind.FLOATS:
            return tuple(float(v) for v in np.asarray(value, dtype=np.float64).reshape(-1))
        if kind is AttrKind.STRS:
            return tuple(v.decode() if isinstance(v, bytes) else str(v) for v in value)
        if kind is AttrKind.DTYPE:
            return value if isinstance(value, DType) else DType.parse(str(value))
    except (TypeError, ValueError) as exc:
        raise IRError(f"{where} must be {kind.value}: {exc}") from None
    raise AssertionError(kind)


def _as_int(value: Any) -> int:
    if isinstance(value, (bool, np.bool_)):
        return int(value)
    as_float = float(value)
    if not math.isfinite(as_float) or int(value) != as_float:
        raise ValueError(f"{value!r} is not an integer")
    return int(value)


_REGISTRY: dict[str, OpSchema] = {}


def define_op(
    name: str,
    *,
    family: str,
    operands: Sequence[str],
    attrs: Mapping[str, Attr] | None = None,
    infer: InferFn,
    compute: ComputeFn | TypedComputeFn,
    doc: str = "",
    typed: bool = False,
    foldable: bool = True,
    view: bool = False,
    pointwise: bool = False,
    epilogue: bool = False,
) -> OpSchema:
    """Declare an IR op; each op name may be declared once (the flags: see OpSchema)."""
    if name in _REGISTRY:
        raise ValueError(f"op {name} is declared twice")
    parsed = tuple(Operand.parse(s) for s in operands)
    if any(o.variadic for o in parsed[:-1]):
        raise ValueError(f"op {name}: only the last operand may be variadic")
    if epilogue and not pointwise:
        raise ValueError(f"op {name}: an epilogue op must be pointwise")
    flags = {"typed": typed, "foldable": foldable, "view": view, "pointwise": pointwise, "epilogue": epilogue}
    schema = OpSchema(name, family, parsed, dict(attrs or {}), infer, compute, doc, **flags)
    _REGISTRY[name] = schema
    return schema


def get_schema(name: str) -> OpSchema:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownOpError(f"unknown op '{name}'") from None


def has_op(name: str) -> bool:
    return name in _REGISTRY


def all_schemas() -> list[OpSchema]:
    return sorted(_REGISTRY.values(), key=lambda s: (s.family, s.name))
