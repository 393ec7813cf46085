"""The `partition` pass's problem: partition units, what each costs on each device, what it reads.

Rule: a *partition unit* is a fusion group (ir/fusion.py: one kernel, so one device) or a single
node outside any group; units are ordered by their first node, a topological order. A unit's
time on a device is the device's measured `node_time` for every node when all are measured,
otherwise a roofline: `launch` per kernel + max(FLOPs / FLOP/s of each node's dtype, bytes it
reads from outside the unit and writes for readers outside / bandwidth) (ir/work.py counts them;
a view is no kernel and costs nothing). A device that lacks an op or a dtype of the unit cannot
take it. Memory (kept simple): a device holds the weights its units read (a constant shared by
several units counts once per unit) plus its largest unit working set (run-time operands and
materialised results), and must stay within `DeviceModel.memory`. A value crossing from device
a to b costs `Link.seconds(bytes)`: latency + bytes / bandwidth, nothing over shared memory.
Imports `ir` and this package only.
"""

from __future__ import annotations

import dataclasses
import math

from ir import Graph, HaiError, Node, Value
from ir.aliasing import is_view
from ir.devices import DeviceModel, DeviceSet
from ir.fusion import GROUP_KEY
from ir.work import node_flops


@dataclasses.dataclass
class Unit:
    """Nodes that run on one device, and what they read and write across the unit's boundary."""

    index: int
    nodes: list[Node]
    reads: list[Value] = dataclasses.field(default_factory=list)  # run-time values made outside
    writes: list[Value] = dataclasses.field(default_factory=list)  # results read outside / outputs
    weights: int = 0  # bytes of the constants it reads

    @property
    def label(self) -> str:
        return self.nodes[0].label()

    @property
    def working_set(self) -> int:
        return sum(v.type.nbytes for v in (*self.reads, *self.writes))

    def unsupported(self, device: DeviceModel) -> str | None:
        """Why `device` cannot run this unit (None when it can)."""
        for node in self.nodes:
            if device.ops is not None and node.op not in device.ops:
                return f"{device.name} has no kernel for op {node.op} ({node.label()})"
            for value in (*node.operands, *node.results):
                if (
                    value is not None
                    and device.dtypes is not None
                    and str(value.type.dtype) not in device.dtypes
                ):
                    return f"{device.name} does not compute {value.type.dtype} ({node.label()})"
        return None

    def seconds(self, device: DeviceModel) -> float:
        if self.unsupported(device) is not None:
            return math.inf
        measured = [device.node_time(n) for n in self.nodes] if device.node_time else [None]
        if all(t is not None for t in measured):
            return math.fsum(t for t in measured if t is not None)
        kernels = [n for n in self.nodes if not is_view(n)]
        if not kernels:
            return 0.0
        compute = math.fsum(node_flops(n) / device.peak(str(n.results[0].type.dtype)) for n in kernels)
        moved = self.weights + self.working_set
        return device.launch + max(compute, moved / device.bandwidth)


def partition_units(graph: Graph) -> list[Unit]:
    """The graph's partition units in node order (fusion groups, else single nodes)."""
    units: list[Unit] = []
    by_group: dict[object, Unit] = {}
    for node in graph.nodes:
        group = node.annotations.get(GROUP_KEY)
        if group is not None and group in by_group:
            by_group[group].nodes.append(node)
            continue
        unit = Unit(len(units), [node])
        units.append(unit)
        if group is not None:
            by_group[group] = unit
    for unit in units:
        _boundary(unit)
    return units


def _boundary(unit: Unit) -> None:
    members = set(unit.nodes)
    reads: dict[Value, None] = {}
    constants: dict[Value, None] = {}
    for node in unit.nodes:
        for operand in node.operands:
            if operand is None or operand.producer in members:
                continue
            (constants if operand.is_constant else reads)[operand] = None
    unit.reads = list(reads)
    unit.weights = sum(v.type.nbytes for v in constants)
    unit.writes = [
        r
        for n in unit.nodes
        for r in n.results
        if r.is_graph_output or any(user not in members for user in r.users())
    ]


@dataclasses.dataclass(frozen=True)
class Problem:
    """The numbers the search reads: per unit and device its seconds (inf: cannot run there), the
    values crossing units, and the transfer seconds of each value between each pair of devices."""

    devices: tuple[str, ...]
    host: int
    seconds: tuple[tuple[float, ...], ...]  # [unit][device]
    reads: tuple[tuple[int, ...], ...]  # [unit] -> value ids
    writes: tuple[tuple[int, ...], ...]  # [unit] -> value ids
    producer: tuple[int, ...]  # [value] -> unit, -1 for a graph input (on the host)
    last_use: tuple[int, ...]  # [value] -> last reading unit (len(units) for graph outputs)
    is_output: tuple[bool, ...]
    transfer: tuple[tuple[tuple[float, ...], ...], ...]  # [value][from][to]
    weights: tuple[int, ...]  # [unit]
    working_set: tuple[int, ...]  # [unit]
    budget: tuple[float, ...]  # [device]
    timeline: tuple[int, ...] = ()  # [device] -> the device whose processors it runs on (default: its own)

    def slot(self, device: int) -> int:
        """The index of the time `device` shares: the device it runs on (ir/devices.py `runs_on`)."""
        return self.timeline[device] if self.timeline else device

    @property
    def processors(self) -> int:
        """How many devices compute side by side (those sharing processors count once)."""
        return len(set(self.timeline)) if self.timeline else len(self.devices)


def build_problem(graph: Graph, units: list[Unit], devices: DeviceSet, host: str) -> Problem:
    """The search's problem for `units` on `devices` (values are numbered inputs first, then by unit)."""
    values: dict[Value, int] = {v: i for i, v in enumerate(graph.inputs)}
    for unit in units:
        for value in unit.writes:
            values[value] = len(values)
    order = list(values)
    names = devices.names
    producer = [-1] * len(order)
    last_use = [-1] * len(order)
    for unit in units:
        for value in unit.writes:
            producer[values[value]] = unit.index
        for value in unit.reads:
            last_use[values[value]] = unit.index
    outputs = {id(v) for v in graph.outputs}
    is_output = tuple(id(v) in outputs for v in order)
    for i, output in enumerate(is_output):
        if output:
            last_use[i] = len(units)
    transfer = tuple(
        tuple(
            tuple(0.0 if a == b else devices.link(a, b).seconds(v.type.nbytes) for b in names) for a in names
        )
        for v in order
    )
    return Problem(
        devices=names,
        host=names.index(host),
        seconds=tuple(tuple(u.seconds(devices.device(n)) for n in names) for u in units),
        reads=tuple(tuple(values[v] for v in u.reads) for u in units),
        writes=tuple(tuple(values[v] for v in u.writes) for u in units),
        producer=tuple(producer),
        last_use=tuple(last_use),
        is_output=is_output,
        transfer=transfer,
        weights=tuple(u.weights for u in units),
        working_set=tuple(u.working_set for u in units),
        budget=tuple(math.inf if d.memory is None else float(d.memory) for d in devices.devices),
        timeline=tuple(names.index(devices.timeline(n)) for n in names),
    )


def check_runnable(units: list[Unit], allowed: list[tuple[int, ...]], devices: DeviceSet) -> None:
    """A HaiError naming the unit that no device can take."""
    for unit, choices in zip(units, allowed, strict=True):
        if not choices:
            reasons = "; ".join(filter(None, (unit.unsupported(d) for d in devices.devices)))
            raise HaiError(f"{unit.label}: no device can run it ({reasons})")
