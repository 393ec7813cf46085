"""Slice/Range bounds computed at run time whose span is a constant (converters/run_time_bounds.py)."""

from __future__ import annotations

import numpy as np
import pytest

from hai_compiler.onnx_import.converters.run_time_bounds import static_span
from ir import Builder, Graph, Value
from ir.dtypes import DType
from ir.types import TensorType


def counter_graph() -> tuple[Graph, Builder]:
    graph = Graph("bounds")
    graph.add_input("i", TensorType(DType.I64, (1,)))
    return graph, Builder(graph)


def const(graph: Graph, name: str, value: object, dtype: type = np.int64) -> Value:
    return graph.add_constant(name, np.array(value, dtype))


def test_the_exporters_counter_plus_one_through_float_and_a_clamp_spans_one() -> None:
    graph, b = counter_graph()
    i = graph.value("i")
    (f,) = b.op("Cast", [i], {"to": DType.F32})
    (g,) = b.op("Add", [f, const(graph, "one", [1.0], np.float32)])
    (h,) = b.op("Cast", [g], {"to": DType.I64})
    (end,) = b.op("Min", [const(graph, "rows", [501]), h])
    (start,) = b.op("Squeeze", [i], {"axes": [0]})
    assert static_span(start, end) == 1
    (later,) = b.op("Add", [end, const(graph, "two", [2])])
    (earlier,) = b.op("Sub", [start, const(graph, "three", 3)])
    assert static_span(earlier, later) == 6


@pytest.mark.parametrize("op", ["bool", "mirror", "other root", "half"])
def test_bounds_that_are_no_shift_of_one_value_have_no_static_span(op: str) -> None:
    graph, b = counter_graph()
    i = graph.value("i")
    if op == "bool":
        (end,) = b.op("Cast", [i], {"to": DType.BOOL})
        (end,) = b.op("Cast", [end], {"to": DType.I64})
    elif op == "mirror":  # 10 - i: not i shifted
        (end,) = b.op("Sub", [const(graph, "ten", [10]), i])
    elif op == "other root":
        (end,) = b.op("Mul", [i, const(graph, "two", [2])])
    else:
        (f,) = b.op("Cast", [i], {"to": DType.F32})
        (end,) = b.op("Add", [f, const(graph, "half", [0.5], np.float32)])
    assert static_span(i, end) is None
