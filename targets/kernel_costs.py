"""Kernel times per device: a kernel's (fusion group's) predicted seconds on a measured device, or its
measured seconds where `hai bench --profile` timed it there.

Rule: a kernel is a fusion group (ir/fusion.py) or a single node that is not a view. Its time is:
1. measured: the median of the `hai bench --profile --json` steps made from its anchor, on this
   device (`MeasuredTimes`); the rest below is a prediction;
2. on a CPU whose target has a measured cost table (targets/cost_model.py), a dense f32 Conv's time is
   that rule's, for the tile the template picks (`choose_dense_tile`): the cost rule that chooses
   templates predicts its kernel too, there is no second one. The table was measured on the CPU
   class (one thread, CPU time); the profile says what this device achieves now (threads, load).
   So the rule's seconds, less its launch, are scaled by the profile's time for its pointwise conv
   microbenchmark (n channels in and out over a 16 x n/16 plane; else its f32 GEMM's rate) over the
   rule's for that conv, and the measured launch is added;
3. otherwise a roofline with launch overhead from the profile's `measured` device (`DeviceSpeed`):
   launch + max(sum over nodes of FLOPs (ir/work.py) / achieved FLOP/s of the node's precision,
   bytes / bandwidth), where bytes are what the kernel reads from outside (constants included) and
   writes for outside, and bandwidth is the measured streaming bandwidth at that working-set size
   (log-interpolated between the measured sizes, held at the ends). A node's precision is int8 for
   integer GEMMs and quantized ops, else its first operand's float type (f16, bf16), else f32.
   An f32 Conv or ConvTranspose computes at the conv microbenchmark's FLOP/s (`dense_conv`: the
   conv template's rate, which is not the MatMul template's);
4. where the built kernel's launches are known (`KernelLaunches`, targets/kernel_launches.py: an
   OpenCL kernel library's record of it, e.g. bench/kernel_costs.py reading a device's artifact),
   the roofline adds the launch once per device kernel and computes at the FLOP/s times the
   occupancy of its narrowest launch (work-groups over compute units x waves). The partition pass
   predicts before any kernel is built: it sees rule 3 alone.
`device_model_from_profile` gives the partition pass a `DeviceModel` whose `node_time` is
`node_seconds`: an anchor carries its kernel's time, the other nodes of its group 0, a view 0.
Imports `ir`, `runtime` and targets only.
"""

from __future__ import annotations

import bisect
import dataclasses
import functools
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from ir.aliasing import is_view
from ir.devices import DeviceModel
from ir.errors import HaiError
from ir.fusion import FUSED_INTO_KEY, GROUP_KEY, PROLOGUE_KEY, anchor_label
from ir.graph import Node
from ir.work import node_flops
from targets.kernel_launches import KernelLaunches
from targets.target import TargetDescription

FLOAT_PRECISIONS = {"f16": "f16", "bf16": "bf16"}
"""IR dtype of a node's first operand -> the profile's precision (others: f32)."""
CONVS = ("Conv", "ConvTranspose")
"""Ops that compute at the conv microbenchmark's rate (the GEMM template differs from the conv's)."""
IR_DTYPES = {"f32": "f32", "f16": "f16", "bf16": "bf16", "int8": "i8"}
"""The profile's precision -> the IR dtype name `DeviceModel.dtype_flops` keys on."""


class KernelCostError(HaiError):
    """A profile without the measured device, or a measured-times file that cannot be read."""


@dataclasses.dataclass(frozen=True, eq=False)
class DeviceSpeed:
    """One measured device: FLOP/s per precision it supports, (bytes, bytes/s) per streaming size in
    ascending order, and seconds per kernel launch."""

    device: str
    flops: Mapping[str, float]
    bandwidth: tuple[tuple[int, float], ...]
    launch: float
    gemm_n: int | None = None  # the n of the GEMM its FLOP/s were measured on
    dense_conv: tuple[int, float] | None = None  # (n, FLOP/s) of its pointwise conv microbenchmark

    @staticmethod
    def from_measured(entry: Mapping[str, Any]) -> DeviceSpeed:
        flops = {k: float(v) for k, v in entry["flops"].items() if isinstance(v, int | float)}
        points = sorted((int(b["bytes"]), float(b["bytes_per_second"])) for b in entry["bandwidth"])
        if "f32" not in flops or not points:
            raise KernelCostError(f"measured device {entry['device']}: no f32 FLOP/s or no bandwidth")
        launch = float(entry["launch_seconds"])
        conv = entry.get("dense_conv")
        dense_conv = (int(conv["n"]), float(conv["flops_per_second"])) if conv else None
        return DeviceSpeed(entry["device"], flops, tuple(points), launch, entry.get("gemm_n"), dense_conv)

    def bytes_per_second(self, nbytes: int) -> float:
        """Streaming bandwidth at a working set of `nbytes` (the module rule)."""
        sizes = [b for b, _ in self.bandwidth]
        at = bisect.bisect_left(sizes, nbytes)
        if at == 0 or at == len(sizes):
            return self.bandwidth[min(at, len(sizes) - 1)][1]
        (b0, s0), (b1, s1) = self.bandwidth[at - 1], self.bandwidth[at]
        f = (math.log(nbytes) - math.log(b0)) / (math.log(b1) - math.log(b0))
        return math.exp(math.log(s0) + f * (math.log(s1) - math.log(s0)))

    def peak(self, precision: str) -> float:
        """Achieved FLOP/s of `precision`, f32's where the device measured none for it."""
        return self.flops.get(precision, self.flops["f32"])


def measured_device(profile: Mapping[str, Any], device: str) -> DeviceSpeed:
    """The `measured` entry of `device` ("cpu", "opencl:0") in a hardware profile, or in the bare
    `measured` section a bundle's `measure_device.py` writes."""
    entries = profile.get("measured", profile).get("devices", [])
    for entry in entries:
        if entry["device"] == device:
            return DeviceSpeed.from_measured(entry)
    found = ", ".join(e["device"] for e in entries) or "none"
    raise KernelCostError(
        f"the hardware profile has no measured device {device!r} (measured: {found}); "
        f"run `hai doctor --measure > profile.json` on the machine"
    )


@dataclasses.dataclass(frozen=True)
class MeasuredTimes:
    """Measured seconds per kernel, keyed by the first node name of its steps (a kernel's source)."""

    seconds: Mapping[str, float]

    def kernel(self, nodes: Sequence[Node]) -> float | None:
        """The measured seconds of the kernel made of `nodes`, None where it was not measured."""
        found = [self.seconds[label] for label in {anchor_label(n) for n in nodes} if label in self.seconds]
        return math.fsum(found) if found else None

    @staticmethod
    def from_bench_json(path: str | Path) -> MeasuredTimes:
        """Read `hai bench model.hai --profile --json FILE` (its `steps`: nodes and median_us); steps
        made from the same anchor (a kernel lowered as several steps) add up."""
        try:
            steps = json.loads(Path(path).read_text(encoding="utf-8"))["steps"]
            return MeasuredTimes.from_steps((tuple(s["nodes"]), float(s["median_us"])) for s in steps)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise KernelCostError(
                f"measured kernel times {path}: {type(exc).__name__}: {exc}; give the JSON of "
                f"`hai bench MODEL.hai --profile --json FILE` run on the device"
            ) from None

    @staticmethod
    def from_steps(steps: Any) -> MeasuredTimes:
        """From (node names, median µs) per step."""
        seconds: dict[str, float] = {}
        for nodes, median_us in steps:
            if nodes:
                seconds[nodes[0]] = seconds.get(nodes[0], 0.0) + median_us * 1e-6
        return MeasuredTimes(seconds)


def anchor_of(node: Node) -> Node:
    """The anchor of `node`'s kernel (`node` itself outside a fusion group)."""
    return next((n for n in kernel_nodes(node) if not is_member(n)), node)


def is_member(node: Node) -> bool:
    """A fused epilogue or prologue node (its kernel is its group's anchor's)."""
    return FUSED_INTO_KEY in node.annotations or PROLOGUE_KEY in node.annotations


def kernel_nodes(anchor: Node) -> list[Node]:
    """The nodes of `anchor`'s kernel: its fusion group (walked through operands and users), or itself."""
    group = anchor.annotations.get(GROUP_KEY)
    if group is None:
        return [anchor]
    found, todo = {id(anchor): anchor}, [anchor]
    while todo:
        node = todo.pop()
        near = [v.producer for v in node.operands if v is not None and v.producer is not None]
        near += [user for r in node.results for user in r.users()]
        for other in near:
            if other.annotations.get(GROUP_KEY) == group and id(other) not in found:
                found[id(other)] = other
                todo.append(other)
    return list(found.values())


def kernel_bytes(nodes: Sequence[Node]) -> int:
    """Bytes a kernel reads from outside it (constants included) and writes for readers outside."""
    inside = {id(n) for n in nodes}
    read = {id(v): v for n in nodes for v in n.operands if v is not None and id(v.producer) not in inside}
    written = [r for n in nodes for r in n.results
               if r.is_graph_output or any(id(u) not in inside for u in r.users())]  # fmt: skip
    return sum(v.type.nbytes for v in read.values()) + sum(r.type.nbytes for r in written)


def precision(node: Node) -> str:
    """The profile precision a node computes in (the module rule)."""
    if node.op.startswith("QLinear") or node.op.endswith("Integer"):
        return "int8"
    first = node.operands[0] if node.operands else None
    return FLOAT_PRECISIONS.get(str(first.type.dtype), "f32") if first is not None else "f32"


def cost_rule_seconds(
    anchor: Node, target: TargetDescription, speed: DeviceSpeed, threads: int | None
) -> float | None:
    """The measured cost rule's seconds for a dense f32 Conv on a CPU that has a table, scaled to the
    measured device (the module rule); None for other kernels and targets."""
    from targets.cost_model import cost_table

    if anchor.op != "Conv" or bool(target.device) or cost_table(target).cpu == "nominal":
        return None
    from targets.lowering.conv import conv_template
    from targets.lowering.conv_geometry import Geometry

    x = anchor.operands[0]
    if x is None or x.type.rank != 4 or conv_template(anchor) != "dense":
        return None
    layout = anchor.results[0].type.layout or "NCHW"
    rule = rule_compute_seconds(Geometry(anchor), layout, target, threads)
    return speed.launch + rule * rule_scale(target, speed, threads)


def rule_compute_seconds(g: Any, layout: str, target: TargetDescription, threads: int | None) -> float:
    """The cost rule's seconds for conv `g` in `layout` with the tile the template picks, less the
    table's launch."""
    from targets.cost_model import cost_table, predict_seconds
    from targets.lowering.conv_tiles import choose_dense_tile, tile_work

    work = tile_work(g, choose_dense_tile(g, layout, target), layout)
    return predict_seconds(target, work, threads) - cost_table(target).launch_us * 1e-6


@functools.lru_cache(maxsize=32)
def rule_scale(target: TargetDescription, speed: DeviceSpeed, threads: int | None) -> float:
    """Measured seconds of the profile's pointwise conv (else its f32 GEMM at that rate) of n channels
    in and out over 16 rows of n / 16, over the rule's for that conv; 1 where the profile has neither."""
    from targets.cost_model import cost_table
    from targets.lowering.conv_geometry import Geometry

    n, rate = speed.dense_conv or (speed.gemm_n, speed.flops["f32"])
    if not n:
        return 1.0
    layout = "NHWC" if cost_table(target).channels_last_dense else "NCHW"
    attrs = {"strides": (1, 1), "pads": (0, 0, 0, 0), "dilations": (1, 1), "group": 1}
    plane = (1, n, 16, max(n // 16, 1))  # hai_compiler/microbench.py's conv_shape
    shaped = [SimpleNamespace(type=SimpleNamespace(rank=4, shape=s)) for s in (plane, (n, n, 1, 1))]
    result = SimpleNamespace(type=SimpleNamespace(shape=plane))
    conv = Geometry(SimpleNamespace(operands=shaped, results=[result], attrs=attrs))  # type: ignore[arg-type]
    return 2 * n * n * plane[2] * plane[3] / rate / rule_compute_seconds(conv, layout, target, threads)


def kernel_seconds(
    anchor: Node,
    speed: DeviceSpeed,
    target: TargetDescription | None = None,
    threads: int | None = None,
    measured: MeasuredTimes | None = None,
    launches: KernelLaunches | None = None,
) -> float:
    """Seconds of `anchor`'s kernel on the device (the module rule: measured, cost rule, roofline, and
    with `launches`, the built kernel's launch count and occupancy)."""
    nodes = [n for n in kernel_nodes(anchor) if not is_view(n)]
    timed = measured.kernel(nodes) if measured is not None else None
    if timed is not None:
        return timed
    if target is not None:
        rule = cost_rule_seconds(anchor, target, speed, threads)
        if rule is not None:
            return rule
    compute = math.fsum(node_flops(n) / node_peak(n, speed) for n in nodes)
    moved = kernel_bytes(nodes)
    memory = moved / speed.bytes_per_second(moved)
    if launches is None:
        return speed.launch + max(compute, memory)
    return speed.launch * launches.count + max(compute / launches.occupancy(), memory)


def node_peak(node: Node, speed: DeviceSpeed) -> float:
    """The FLOP/s `node` computes at: an f32 conv's the conv microbenchmark's, else its precision's."""
    if node.op in CONVS and speed.dense_conv is not None and precision(node) == "f32":
        return speed.dense_conv[1]
    return speed.peak(precision(node))


def node_seconds(
    node: Node,
    speed: DeviceSpeed,
    target: TargetDescription | None = None,
    threads: int | None = None,
    measured: MeasuredTimes | None = None,
) -> float:
    """`node`'s share of the time: its kernel's for an anchor (or a lone node), 0 for a fused member or
    a view (so a unit's nodes add up to its kernels' time)."""
    if is_view(node) or is_member(node):
        return 0.0
    return kernel_seconds(node, speed, target, threads, measured)


def device_model_from_profile(
    profile: Mapping[str, Any],
    device: str,
    name: str | None = None,
    target: TargetDescription | None = None,
    threads: int | None = None,
    measured: MeasuredTimes | None = None,
    **limits: Any,
) -> DeviceModel:
    """The partition pass's `DeviceModel` of the profile's measured `device`, named `name` (the IR's
    device name, default `device`'s driver); `limits` are DeviceModel's `memory`, `ops`, `dtypes`."""
    speed = measured_device(profile, device)
    return DeviceModel(
        name or device.partition(":")[0],
        flops=speed.flops["f32"],
        bandwidth=speed.bandwidth[-1][1],
        launch=speed.launch,
        dtype_flops={IR_DTYPES[p]: f for p, f in speed.flops.items()},
        node_time=lambda node: node_seconds(node, speed, target, threads, measured),
        **limits,
    )
