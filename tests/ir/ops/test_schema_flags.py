"""The op-schema flags passes and the planner read (ir/ops/registry.py): each one checked against the
op's own numpy reference, so a flag that lies about an op fails here."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from ir.dtypes import DType
from ir.errors import IRError
from ir.ops.registry import OpSchema, all_schemas, get_schema
from ir.types import TensorType

X = np.arange(24, dtype=np.float32).reshape(1, 2, 3, 4)
VIEW_CASES: dict[str, dict[str, Any]] = {
    "Identity": {},
    "Reshape": {"shape": (6, 4)},
    "Flatten": {"axis": 2},
    "Squeeze": {"axes": (0,)},
    "Unsqueeze": {"axes": (1,)},
    "Transfer": {"to": "opencl:gpu"},
}


def evaluate(op: str, args: list[np.ndarray], attrs: dict[str, Any]) -> list[np.ndarray]:
    schema = get_schema(op)
    types = [TensorType(DType.from_numpy(a.dtype), a.shape) for a in args]
    return schema.evaluate(args, schema.normalize_attrs(attrs, op), types)


def takes_f32(schema: OpSchema, attrs: dict[str, Any]) -> bool:
    try:
        schema.infer([TensorType(DType.F32, (2, 3))], schema.normalize_attrs(attrs, schema.name))
    except IRError:
        return False
    return True


UNARY_POINTWISE = [s for s in all_schemas() if s.pointwise and len(s.operands) == 1]


def test_every_view_op_has_a_case() -> None:
    assert {s.name for s in all_schemas() if s.view} == set(VIEW_CASES)


@pytest.mark.parametrize("op", sorted(VIEW_CASES))
def test_a_view_is_its_operands_bytes_in_order(op: str) -> None:
    (result,) = evaluate(op, [X], VIEW_CASES[op])
    assert result.dtype == X.dtype and result.tobytes() == X.tobytes()


@pytest.mark.parametrize("schema", UNARY_POINTWISE, ids=lambda s: s.name)
def test_a_unary_pointwise_op_computes_each_element_alone(schema: OpSchema) -> None:
    """Each result element depends on the operand element at its index only: the op over the whole
    tensor equals the op over each element on its own."""
    attrs: dict[str, Any] = {"to": DType.F16} if schema.name == "Cast" else {}
    if not takes_f32(schema, attrs):
        pytest.skip(f"{schema.name} takes no f32 operand")
    x = np.linspace(0.1, 0.9, 6, dtype=np.float32).reshape(2, 3)
    (whole,) = evaluate(schema.name, [x], attrs)
    alone = [evaluate(schema.name, [x.reshape(-1)[i : i + 1]], attrs)[0] for i in range(x.size)]
    np.testing.assert_array_equal(whole.reshape(-1), np.concatenate(alone))
