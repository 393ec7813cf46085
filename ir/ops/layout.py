"""Op family: layout — ops that change how a tensor is stored, never what it holds.

Rule: `Relayout{layout = L}` is logically the identity (its reference returns
the operand and its result has the operand's dtype and shape); physically it
permutes the elements into storage order L: a key of `ir.types.LAYOUTS`
("NHWC": a rank-4 NCHW tensor stored channels-last), or "NCHW" for the logical
order itself (a result type without a layout). Only a layout pass inserts it,
at the boundaries of a region whose kernels store their activations in L.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ir.devices import check_device_name
from ir.errors import IRError
from ir.ops.common import like
from ir.ops.registry import Attr, AttrKind, define_op
from ir.types import LAYOUTS, TensorType

FAMILY = "layout"
LOGICAL = "NCHW"
"""The spelling of the logical storage order (a type whose `layout` is None) in `Relayout`."""


def stored_layout(attrs: Mapping[str, Any]) -> str | None:
    """The result type's `layout` for a Relayout's `layout` attribute (None for the logical order)."""
    layout = attrs["layout"]
    return None if layout == LOGICAL else layout


def _relayout_infer(types: Sequence[TensorType | None], attrs: Mapping[str, Any]) -> list[TensorType]:
    x = types[0]
    assert x is not None
    layout = attrs["layout"]
    if layout != LOGICAL and layout not in LAYOUTS:
        raise IRError(f"layout {layout!r} is not one of {', '.join([LOGICAL, *LAYOUTS])}")
    if layout != LOGICAL and x.rank != len(LAYOUTS[layout]):
        raise IRError(f"layout {layout} needs a rank-{len(LAYOUTS[layout])} operand, got {x}")
    return [like(x).with_(layout=stored_layout(attrs))]


define_op(
    "Relayout",
    family=FAMILY,
    operands=["input"],
    attrs={"layout": Attr(AttrKind.STR)},
    infer=_relayout_infer,
    compute=lambda args, attrs: [args[0]],
    doc="The operand, stored in `layout` (NCHW: the logical order; NHWC: channels-last).",
)


def _transfer_infer(types: Sequence[TensorType | None], attrs: Mapping[str, Any]) -> list[TensorType]:
    x = types[0]
    assert x is not None
    check_device_name(attrs["to"], "Transfer")
    return [x.with_(device=attrs["to"], offset=None, page=None)]


define_op(
    "Transfer",
    family=FAMILY,
    operands=["input"],
    attrs={"to": Attr(AttrKind.STR), "zero_copy": Attr(AttrKind.INT, 0)},
    infer=_transfer_infer,
    compute=lambda args, attrs: [args[0].copy()],
    foldable=False,
    view=True,
    doc="The operand, copied to device `to` (zero_copy 1: the devices share memory, nothing moves). A "
    "view: the copy on `to` has the operand's place in the arena, which a device with memory of its "
    "own mirrors, so no kernel runs (a plan's transfer step makes those bytes visible there).",
)
