"""Placement: which device a value lives on, and the cost facts of the devices a graph is split over.

Rule: a placement is a device name `DRIVER[:QUALIFIER]`, written on each value's type
(`TensorType.device`, printed `f32[1,8]{device = "opencl:gpu"}`):

- `cpu`: the host CPU, through the x86/arm64 target (the runtime's host device; graph inputs
  arrive and graph outputs leave here);
- `opencl`: the default OpenCL device; `opencl:gpu`, `opencl:accelerator`, `opencl:cpu`: the
  OpenCL device of that kind (an NPU is an `accelerator`).

A node runs on the device of its results (all of them on one). In a placed graph every node result
and graph input has a device; a node's run-time operands are on its device, except a
`Transfer`'s (ir/ops/layout.py), which copies its operand to another device. Constants carry no
placement: each device that reads a weight holds its own copy.

A `DeviceSet` is what the `partition` pass reads: each device's `DeviceModel` (supported ops and
dtypes, memory budget, peak FLOP/s and bandwidth, launch overhead, and optionally measured node
times that replace the roofline) and the `Link` between each pair. The measured profile of
issue 15 plugs in through `DeviceModel.node_time`; `DeviceSet.from_json` reads the plain numbers.
Imports `ir` only.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ir.errors import HaiError
from ir.graph import Node

HOST = "cpu"
"""The host device: graph inputs and outputs live there."""
DEVICE_NAME = re.compile(r"[a-z][a-z0-9_]*(:[a-z0-9_]+)?\Z")


class DeviceSetError(HaiError):
    """A device set (a JSON file or the objects given) that the partition pass cannot use."""


def check_device_name(name: str, where: str) -> None:
    """Raise a HaiError naming `where` unless `name` is `DRIVER[:QUALIFIER]`."""
    if not DEVICE_NAME.match(name):
        raise HaiError(f"{where}: device {name!r} is not DRIVER[:QUALIFIER] (cpu, opencl:gpu, ...)")


@dataclasses.dataclass(frozen=True)
class DeviceModel:
    """One device's abilities and speed.

    - `flops`: achieved FLOP/s of f32 arithmetic; `dtype_flops` overrides it per dtype name ("f16").
    - `bandwidth`: bytes/s its kernels read and write; `launch`: seconds of overhead per kernel.
    - `memory`: bytes it may hold (weights + activations, see `passes/partition_cost.py`); None: no limit.
    - `ops`, `dtypes`: the op names and dtype names it has kernels for (None: all).
    - `node_time`: measured seconds for a node on this device, or None where not measured
      (the roofline then predicts it).
    - `runs_on`: the device whose processors it computes on (an OpenCL CPU device runs on the host
      `cpu`'s cores), or None: the two then run one unit at a time, never side by side.
    """

    name: str
    flops: float
    bandwidth: float
    launch: float = 0.0
    memory: int | None = None
    ops: frozenset[str] | None = None
    dtypes: frozenset[str] | None = None
    dtype_flops: Mapping[str, float] = dataclasses.field(default_factory=dict)
    node_time: Callable[[Node], float | None] | None = None
    runs_on: str | None = None

    def __post_init__(self) -> None:
        check_device_name(self.name, "device model")
        if not (self.flops > 0 and self.bandwidth > 0 and self.launch >= 0):
            raise DeviceSetError(f"device {self.name}: flops and bandwidth must be > 0, launch >= 0")

    def peak(self, dtype: str) -> float:
        return self.dtype_flops.get(dtype, self.flops)


@dataclasses.dataclass(frozen=True)
class Link:
    """How values move between devices `a` and `b` (both ways): bytes/s, seconds per transfer, and
    whether the two share memory (a zero-copy transfer, which costs nothing)."""

    a: str
    b: str
    bandwidth: float
    latency: float = 0.0
    shared_memory: bool = False

    def seconds(self, nbytes: int) -> float:
        return 0.0 if self.shared_memory else self.latency + nbytes / self.bandwidth


@dataclasses.dataclass(frozen=True)
class DeviceSet:
    """The devices a graph may be split over (the host `cpu` among them) and the links between them."""

    devices: tuple[DeviceModel, ...]
    links: tuple[Link, ...] = ()

    def __post_init__(self) -> None:
        names = [d.name for d in self.devices]
        if HOST not in names or len(set(names)) != len(names):
            raise DeviceSetError(
                f"a device set names each device once, the host {HOST!r} among them: {names}"
            )
        for first in names:
            for second in names:
                if first < second and self.find_link(first, second) is None:
                    raise DeviceSetError(f"no link between devices {first} and {second}: give one")
        for model in self.devices:
            host = model.runs_on
            if host is not None and (host not in names or self.device(host).runs_on is not None):
                raise DeviceSetError(
                    f"device {model.name} runs on {host!r}, which is not a device of the set that "
                    "computes on its own processors"
                )

    def timeline(self, name: str) -> str:
        """The device whose processors `name` computes on: its `runs_on`, else itself."""
        return self.device(name).runs_on or name

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(d.name for d in self.devices)

    def device(self, name: str) -> DeviceModel:
        for model in self.devices:
            if model.name == name:
                return model
        raise DeviceSetError(f"device {name!r} is not one of {', '.join(self.names)}")

    def find_link(self, a: str, b: str) -> Link | None:
        return next((k for k in self.links if {k.a, k.b} == {a, b}), None)

    def link(self, a: str, b: str) -> Link:
        found = self.find_link(a, b)
        assert found is not None, (a, b)
        return found

    @classmethod
    def from_json(cls, path: str | Path) -> DeviceSet:
        """Read `{"devices": [{"name": ..., "flops": ..., ...}], "links": [{"a": ..., ...}]}`."""
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
            return cls.from_dict(data)
        except (OSError, ValueError, TypeError, KeyError) as exc:
            raise DeviceSetError(f"cannot read device set {path}: {type(exc).__name__}: {exc}") from None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DeviceSet:
        devices = tuple(_device_from(d) for d in data["devices"])
        links = tuple(Link(**link) for link in data.get("links", ()))
        return cls(devices, links)


def _device_from(fields: Mapping[str, Any]) -> DeviceModel:
    values = dict(fields)
    for key in ("ops", "dtypes"):
        if values.get(key) is not None:
            values[key] = frozenset(values[key])
    if values.get("memory") is not None:
        values["memory"] = int(values["memory"])
    return DeviceModel(**values)
