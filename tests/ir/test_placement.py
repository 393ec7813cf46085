"""Placement in the IR: device facts round-trip through `.hir`, the verifier checks that values cross
devices only through Transfers, and a Transfer is the identity in the interpreter."""

from __future__ import annotations

import numpy as np
import pytest

from ir import Builder, DType, Graph, TensorType, VerificationError, run_graph, verify
from ir.parser import HirParseError, parse_hir
from ir.printer import print_graph

GPU = "opencl:gpu"


def f32(device: str | None) -> TensorType:
    return TensorType(DType.F32, (2, 3), device=device)


def placed_graph(relu_device: str = GPU) -> Graph:
    """x (cpu) -> Transfer to the GPU -> Relu there -> Transfer back -> y (cpu)."""
    g = Graph()
    x = g.add_input("x", f32("cpu"))
    (moved,) = Builder(g).op("Transfer", [x], {"to": GPU})
    (r,) = Builder(g).op("Relu", [moved], result_types=[f32(relu_device)], name="relu")
    (y,) = Builder(g).op("Transfer", [r], {"to": "cpu", "zero_copy": 1}, result_names=["y"])
    g.set_outputs([y])
    return g


def test_a_placed_graph_verifies_round_trips_and_runs() -> None:
    g = placed_graph()
    verify(g)
    text = print_graph(g)
    assert 'Transfer(%x) {to = "opencl:gpu", zero_copy = 0} : f32[2,3]{device = "opencl:gpu"}' in text
    assert 'Relu(%transfer) : f32[2,3]{device = "opencl:gpu"} loc("relu")' in text
    parsed = parse_hir(text)
    verify(parsed)
    assert print_graph(parsed) == text
    x = np.random.default_rng(0).standard_normal((2, 3)).astype(np.float32)
    np.testing.assert_array_equal(run_graph(parsed, {"x": x})["y"], np.maximum(x, 0))


def test_a_value_read_on_another_device_without_a_transfer_is_refused() -> None:
    with pytest.raises(
        VerificationError, match=r"Relu node 'relu': runs on cpu but operand 0 %transfer is on"
    ):
        verify(placed_graph(relu_device="cpu"))


def test_a_transfer_to_its_own_device_is_refused() -> None:
    g = Graph()
    x = g.add_input("x", f32("cpu"))
    (y,) = Builder(g).op("Transfer", [x], {"to": "cpu"})
    g.set_outputs([y])
    with pytest.raises(VerificationError, match="from cpu to the same device"):
        verify(g)


def test_a_partly_placed_graph_is_refused() -> None:
    g = Graph()
    x = g.add_input("x", f32("cpu"))
    (y,) = Builder(g).op("Relu", [x], name="relu")  # inference gives no device
    g.set_outputs([y])
    with pytest.raises(VerificationError, match="Relu node 'relu': has a result without a device"):
        verify(g)
    unplaced = Graph()
    x = unplaced.add_input("x", f32(None))
    (y,) = Builder(unplaced).op("Transfer", [x], {"to": GPU})
    unplaced.set_outputs([y])
    with pytest.raises(VerificationError, match="input %x has no device"):
        verify(unplaced)


def test_device_names_follow_the_vocabulary() -> None:
    g = Graph()
    x = g.add_input("x", f32("cpu"))
    with pytest.raises(Exception, match=r"device 'GPU 0' is not DRIVER\[:QUALIFIER\]"):
        Builder(g).op("Transfer", [x], {"to": "GPU 0"})
    text = print_graph(placed_graph()).replace('device = "opencl:gpu"} loc', 'device = "gpu#1"} loc')
    with pytest.raises(VerificationError, match="'gpu#1' is not DRIVER"):
        verify(parse_hir(text))
    with pytest.raises(HirParseError, match="device must be a quoted string"):
        parse_hir(print_graph(placed_graph()).replace('device = "opencl:gpu"} loc', "device = gpu} loc"))
