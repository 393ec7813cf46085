"""The `partition` pass: place every node on a device by a cost model, with Transfers between devices.

Rule: the devices and their costs are a `DeviceSet` (ir/devices.py): the `devices` option names a
JSON file of one, else the compile target's (`PassContext.devices`). The graph's partition units
(fusion groups or single nodes, passes/partition_cost.py) each get one device that supports
their ops and dtypes, within every device's memory budget, and the one `placement` forces
(`'PATTERN=DEVICE;...'`, fnmatch patterns on node names or op names); the search
(passes/partition_search.py) minimises the `latency` of one inference or the `throughput`
period of a stream. Every result then carries its device (`{device = "..."}` in `.hir`), graph
inputs start and graph outputs end on the host `cpu`, and each value read on another device than
its own goes through one `Transfer` per destination device, shared by every reader there, placed
before the first unit that reads it (a graph output keeps its name: the value on the device is
renamed NAME.DEVICE). `PassContext.results["partition"]` holds a `PartitionSummary`
(`render_summary` prints it). A graph that is already placed is left alone. Imports `ir` and
this package only.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import math

from ir import Builder, Graph, HaiError, Node, Value
from ir.devices import HOST, DeviceSet
from ir.placement import is_placed, node_device
from passes.manager import Pass, PassContext
from passes.partition_cost import Unit, build_problem, check_runnable, partition_units
from passes.partition_search import LATENCY, THROUGHPUT, Result, search

OBJECTIVES = (LATENCY, THROUGHPUT)


@dataclasses.dataclass(frozen=True)
class DeviceShare:
    device: str
    nodes: int
    seconds: float  # predicted seconds of its units per inference


@dataclasses.dataclass(frozen=True)
class PartitionSummary:
    """What the partition chose and what it predicts."""

    objective: str
    predicted: float  # seconds: the makespan (latency) or the period (throughput)
    lower_bound: float
    exact: bool
    units: int
    shares: tuple[DeviceShare, ...]
    transfers: int
    zero_copy: int
    bytes_moved: int

    @property
    def sole_device(self) -> str | None:
        """The one device every node is placed on, or None when the partition uses several."""
        used = [share.device for share in self.shares if share.nodes]
        return HOST if not used else used[0] if len(used) == 1 else None

    @property
    def gap(self) -> float:
        return 0.0 if self.lower_bound <= 0 else max(0.0, self.predicted / self.lower_bound - 1)


def render_summary(summary: PartitionSummary) -> list[str]:
    """The summary as report lines: the prediction, each device's share, the transfers."""
    search = "exact" if summary.exact else f"heuristic, within {summary.gap:.1%} of a lower bound"
    total = math.fsum(s.seconds for s in summary.shares) or 1.0
    lines = [
        f"partition ({summary.objective}): {summary.predicted * 1e3:.3f} ms predicted over "
        f"{summary.units} units ({search})"
    ]
    lines.extend(
        f"  {s.device}: {s.nodes} nodes, {s.seconds * 1e3:.3f} ms ({s.seconds / total:.0%} of the compute)"
        for s in summary.shares
    )
    lines.append(
        f"  transfers: {summary.transfers} ({summary.zero_copy} zero-copy), {summary.bytes_moved} bytes moved"
    )
    return lines


class PartitionOptionError(ValueError):
    """A bad option value (the pipeline parser reports it with the pass name)."""


@dataclasses.dataclass(frozen=True)
class Partition(Pass):
    """Place every node on a device (latency or throughput objective) with Transfer nodes at device
    boundaries."""

    name = "partition"
    requires = ("no-control-flow", "types-inferred")
    ensures = ("placed",)
    devices: str = dataclasses.field(
        default="", metadata={"help": "a device-set JSON file (ir/devices.py); empty: the target's devices"}
    )
    objective: str = dataclasses.field(
        default="latency",
        metadata={"help": "latency: one inference's makespan; throughput: a stream's period"},
    )
    placement: str = dataclasses.field(
        default="", metadata={"help": "forced placements 'PATTERN=DEVICE;...' (fnmatch on node or op names)"}
    )
    exact_units: int = dataclasses.field(
        default=32, metadata={"help": "the most partition units searched exactly; a beam search beyond"}
    )
    max_states: int = dataclasses.field(
        default=1000, metadata={"help": "states kept per unit before the exact search gives way to the beam"}
    )
    beam: int = dataclasses.field(default=64, metadata={"help": "states the heuristic keeps per unit"})

    def __post_init__(self) -> None:
        if self.objective not in OBJECTIVES:
            raise PartitionOptionError(
                f"objective={self.objective!r}: expected one of {', '.join(OBJECTIVES)}"
            )
        if self.exact_units < 0 or self.max_states < 1 or self.beam < 1:
            raise PartitionOptionError("exact-units must be >= 0, max-states and beam >= 1")
        _parse_placement(self.placement)

    def run(self, graph: Graph, ctx: PassContext) -> Graph:
        if is_placed(graph):
            ctx.note(self.name, "the graph is already placed; partition runs once, nothing changed")
            return graph
        devices = self._device_set(ctx)
        units = partition_units(graph)
        allowed = _allowed(units, devices, _parse_placement(self.placement))
        check_runnable(units, allowed, devices)
        problem = build_problem(graph, units, devices, HOST)
        result = search(problem, allowed, self.objective, self.exact_units, self.max_states, self.beam)
        if not math.isfinite(result.value):
            raise HaiError(
                "no placement keeps every device within its memory budget: raise a budget "
                "or force fewer nodes onto the smaller device"
            )
        chosen = [devices.names[d] for d in result.placement]
        _place(graph, units, chosen, devices)
        summary = _summary(graph, units, chosen, devices, result, self.objective)
        ctx.results[self.name] = summary
        ctx.count(self.name, "units", len(units))
        ctx.count(self.name, "transfers", summary.transfers)
        ctx.count(self.name, "bytes-moved", summary.bytes_moved)
        ctx.note(self.name, "; ".join(line.strip() for line in render_summary(summary)))
        return graph

    def _device_set(self, ctx: PassContext) -> DeviceSet:
        if self.devices:
            return DeviceSet.from_json(self.devices)
        if ctx.devices is None:
            raise HaiError(
                "partition needs devices: give partition{devices=FILE.json} or a target with several devices"
            )
        return ctx.devices


def _parse_placement(text: str) -> list[tuple[str, str]]:
    pairs = []
    for entry in filter(None, (e.strip() for e in text.split(";"))):
        pattern, sep, device = (part.strip() for part in entry.partition("="))
        if not sep or not pattern or not device:
            raise PartitionOptionError(f"placement entry {entry!r} is not PATTERN=DEVICE")
        pairs.append((pattern, device))
    return pairs


def _allowed(units: list[Unit], devices: DeviceSet, forced: list[tuple[str, str]]) -> list[tuple[int, ...]]:
    """Each unit's possible device indices: those that support it, or the one forced on it."""
    names = devices.names
    allowed = [
        tuple(i for i, d in enumerate(devices.devices) if unit.unsupported(d) is None) for unit in units
    ]
    for pattern, device in forced:
        if device not in names:
            raise HaiError(f"placement {pattern}={device}: no device {device} (devices: {', '.join(names)})")
        hits = [u for u in units if any(_matches(n, pattern) for n in u.nodes)]
        if not hits:
            raise HaiError(f"placement {pattern}={device}: the pattern matches no node name or op")
        for unit in hits:
            why = unit.unsupported(devices.device(device))
            if why is not None:
                raise HaiError(f"placement {pattern}={device}: {unit.label} cannot run on {device}: {why}")
            if len(allowed[unit.index]) == 1 and names[allowed[unit.index][0]] != device:
                raise HaiError(f"placement {pattern}={device}: {unit.label} is forced onto two devices")
            allowed[unit.index] = (names.index(device),)
    return allowed


def _matches(node: Node, pattern: str) -> bool:
    return fnmatch.fnmatchcase(node.name, pattern) or fnmatch.fnmatchcase(node.op, pattern)


def _place(graph: Graph, units: list[Unit], chosen: list[str], devices: DeviceSet) -> None:
    """Put each unit's results on its device and Transfers where values cross devices."""
    for value in graph.inputs:
        value.type = value.type.with_(device=HOST)
    unit_of: dict[Node, Unit] = {}
    for unit, device in zip(units, chosen, strict=True):
        for node in unit.nodes:
            unit_of[node] = unit
            for result in node.results:
                result.type = result.type.with_(device=device)
    crossing = [*graph.inputs, *(v for u in units for v in u.writes)]
    for value in crossing:
        _transfer_readers(graph, value, unit_of, devices)
    for value in list(graph.outputs):
        if value.type.device != HOST:
            _transfer_output(graph, value, unit_of, devices)


def _transfer_readers(graph: Graph, value: Value, unit_of: dict[Node, Unit], devices: DeviceSet) -> None:
    readers: dict[str, list[tuple[Node, int]]] = {}
    for node, index in value.uses():
        device = node_device(node)
        if device is not None and device != value.type.device:
            readers.setdefault(device, []).append((node, index))
    for device, uses in readers.items():
        first = min((unit_of[n] for n, _ in uses), key=lambda u: u.index).nodes[0]
        moved = _transfer(graph, value, device, devices, before=first)
        for node, index in uses:
            node.set_operand(index, moved)


def _transfer_output(graph: Graph, value: Value, unit_of: dict[Node, Unit], devices: DeviceSet) -> None:
    """Bring graph output `value` to the host; the host's copy keeps the output's name."""
    name = value.name
    assert value.producer is not None and value.type.device is not None
    graph.rename(value, graph.unique_name(f"{name}.{value.type.device.replace(':', '_')}"))
    last = unit_of[value.producer].nodes[-1]
    after = graph.nodes.after(last)
    moved = _transfer(graph, value, HOST, devices, before=after[0] if after else None, result_name=name)
    graph.set_outputs([moved if v is value else v for v in graph.outputs])


def _transfer(
    graph: Graph, value: Value, device: str, devices: DeviceSet, before: Node | None, result_name: str = ""
) -> Value:
    assert value.type.device is not None
    zero_copy = int(devices.link(value.type.device, device).shared_memory)
    name = result_name or graph.unique_name(f"{value.name}.{device.replace(':', '_')}")
    (moved,) = Builder(graph, insert_before=before).op(
        "Transfer", [value], {"to": device, "zero_copy": zero_copy}, result_names=[name]
    )
    return moved


def _summary(
    graph: Graph, units: list[Unit], chosen: list[str], devices: DeviceSet, result: Result, objective: str
) -> PartitionSummary:
    shares = []
    for device in devices.names:
        mine = [u for u, d in zip(units, chosen, strict=True) if d == device]
        seconds = math.fsum(u.seconds(devices.device(device)) for u in mine)
        shares.append(DeviceShare(device, sum(len(u.nodes) for u in mine), seconds))
    transfers = [n for n in graph.nodes if n.op == "Transfer"]
    zero_copy = [n for n in transfers if n.attrs["zero_copy"]]
    moved = sum(n.results[0].type.nbytes for n in transfers if not n.attrs["zero_copy"])
    return PartitionSummary(
        objective, result.value, result.lower_bound, result.exact, len(units), tuple(shares),
        len(transfers), len(zero_copy), moved,
    )  # fmt: skip
