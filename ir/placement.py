"""The placement invariants the verifier checks (device names: ir/devices.py).

Rule: a graph is *placed* when any node result or graph input has a device. In a placed graph
every graph input and node result has one, each spelled `DRIVER[:QUALIFIER]`; a node's results
share one device (the node's); every run-time operand of a node (not a constant, which carries
no placement) is on the node's device, except a `Transfer`'s, which must be on another device
than its result, and its result is on the device its `to` attribute names. An unplaced graph
has no Transfer. Imports `ir` only.
"""

from __future__ import annotations

from ir.devices import check_device_name
from ir.errors import HaiError, VerificationError
from ir.graph import Graph, Node


def node_device(node: Node) -> str | None:
    """The device `node` runs on: its results' (None when the graph is not placed)."""
    return node.results[0].type.device if node.results else None


def is_placed(graph: Graph) -> bool:
    values = [*graph.inputs, *(r for n in graph.nodes for r in n.results)]
    return any(v.type.device is not None for v in values)


def check_placement(graph: Graph) -> None:
    """Raise VerificationError naming the node or input that breaks a placement invariant."""
    if not is_placed(graph):
        for node in graph.nodes:
            if node.op == "Transfer":
                raise VerificationError(f"{node.label()}: a Transfer in a graph whose values have no device")
        return
    for value in graph.inputs:
        if value.type.device is None:
            raise VerificationError(f"graph input %{value.name} has no device in a placed graph")
        _check_name(value.type.device, f"graph input %{value.name}")
    for node in graph.nodes:
        _check_node(node)


def _check_node(node: Node) -> None:
    where = node.label()
    if any(r.type.device is None for r in node.results):
        raise VerificationError(f"{where}: has a result without a device in a placed graph")
    devices = {r.type.device or "" for r in node.results}
    device = node_device(node)
    if len(devices) > 1:
        raise VerificationError(f"{where}: its results are on several devices ({', '.join(sorted(devices))})")
    assert device is not None
    _check_name(device, where)
    for index, operand in enumerate(node.operands):
        if operand is None or operand.is_constant:
            continue
        source = operand.type.device
        if node.op != "Transfer" and source != device:
            raise VerificationError(
                f"{where}: runs on {device} but operand {index} %{operand.name} is on {source}; "
                "a value crosses devices only through a Transfer"
            )
        if node.op == "Transfer" and source in (device, None):
            raise VerificationError(f"{where}: transfers %{operand.name} from {source} to the same device")
    if node.op == "Transfer" and node.attrs["to"] != device:
        raise VerificationError(f"{where}: its result is on {device}, its `to` says {node.attrs['to']}")


def _check_name(name: str, where: str) -> None:
    try:
        check_device_name(name, where)
    except HaiError as exc:
        raise VerificationError(str(exc)) from None
