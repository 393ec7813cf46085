"""From lowered kernels over a planned graph to the artifact's static plan, bindings and packed weights.

Rule: every kernel argument becomes a slot with the kernel's view shape and
dtype over the bytes of its IR value: a graph input or output binding when it is
that value whole (a graph input binding for a view of one too: inputs are the
caller's buffers, outside the arena), an arena slot at the value's planned
offset otherwise (a view has its source's offset), a weight slot when the value
is a constant or a view of one. Weights are packed by each kernel's `pack_weights` and stored once per
distinct content, whatever the number of kernels reading them. A graph output
whose bytes are not in the arena (a constant, a view of an input) gets an arena
place past the planned arena and a copy step. The hazard check sees each input
at a place of its own past the arena. Loop spans (targets/plan/loop_spans.py) name their steps
and the slots of the runtime's copies; the hazard check replays their steps twice. In a placed
graph (the `partition` pass) each kernel step runs on the HAI device its anchor's placement maps to
(`drivers`), and each `Transfer` node (a view: its operand's bytes) is a transfer step between two
devices, in node order (runtime/plan_transfers.py). Everything is laid out in step order, so the
plan is a pure function of the graph and the kernels.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from ir import Graph, HaiError, Node, Value
from ir.memory import ARENA_KEY, align_up
from ir.predication import guards_of
from runtime.artifact import ALIGNMENT, ExecutionPlan, Guard, Slot, Step, TensorBinding, kernel_library_file
from targets.plan.hazards import Access, StepAccesses, check_plan, data_root
from targets.plan.loop_spans import LoopPlan
from targets.scratch import scratch_bytes


class PlanBuildError(HaiError):
    """The planned graph and its kernels do not make a static plan (a compiler bug or an unplanned graph)."""


@dataclasses.dataclass
class StaticPlan:
    """The manifest's bindings and plan, the weights to store, and each step's kernel."""

    inputs: tuple[TensorBinding, ...]
    outputs: tuple[TensorBinding, ...]
    plan: ExecutionPlan
    weights: dict[str, np.ndarray]
    kernels: list[Any]  # the LoweredKernel of each step


def dtype_name(value: Value) -> str:
    return value.type.dtype.numpy.name


class WeightStore:
    """Packed weights, each distinct content stored once under the first name that reads it."""

    def __init__(self) -> None:
        self.arrays: dict[str, np.ndarray] = {}
        self._by_content: dict[str, str] = {}

    def add(self, name: str, array: np.ndarray) -> str:
        array = np.ascontiguousarray(array)
        digest = hashlib.sha256(array.tobytes()).hexdigest()
        key = f"{digest}:{array.nbytes}"
        if key in self._by_content:
            return self._by_content[key]
        stored, n = name, 1
        while stored in self.arrays:
            stored, n = f"{name}#{n}", n + 1
        self.arrays[stored] = array
        self._by_content[key] = stored
        return stored


def constant_source(value: Value) -> Value | None:
    """The constant whose bytes `value` is (itself, or the source of a chain of views), else None."""
    root = data_root(value)
    return root if root.is_constant else None


class PlanBuilder:
    """Builds the StaticPlan of one graph; `copy_kernel(source, destination)` makes output copies."""

    def __init__(
        self,
        graph: Graph,
        copy_kernel: Callable[[Value, Value], Any],
        device: str = "cpu",
        alignment: int = ALIGNMENT,
        drivers: Mapping[str, str] | None = None,
    ) -> None:
        self.graph = graph
        self.copy_kernel = copy_kernel
        self.device = device  # the HAI device a step runs on, from its kernel library (the output copies')
        self.drivers = dict(drivers or {})  # a placed graph's: IR device name -> the HAI device running it
        self.alignment = max(alignment, ALIGNMENT)  # of the places it adds (the device's buffer base)
        self.weights = WeightStore()
        self.arena_size = int(graph.metadata.get(ARENA_KEY, "0"))
        self.inputs = tuple(self._input_binding(v) for v in graph.inputs)
        self.output_values: list[Value] = []
        self.outputs: list[TensorBinding] = []
        self.copies: list[tuple[Value, Value]] = []
        for value in graph.outputs:
            self._add_output(value)
        self.bindings = {b.name: b for b in (*self.inputs, *self.outputs)}

        self.input_places = self._input_places()

    def _input_binding(self, value: Value) -> TensorBinding:
        if value.type.offset is not None:
            raise PlanBuildError(
                f"graph input %{value.name} has an arena offset: run plan-memory with arena-inputs=false"
            )
        return TensorBinding(value.name, value.type.shape, dtype_name(value))

    def _input_places(self) -> dict[str, int]:
        """A distinct place past the arena for each input, for the hazard check only."""
        places, end = {}, align_up(self.arena_size, self.alignment)
        for binding in self.inputs:
            places[binding.name] = end
            end = align_up(end + binding.nbytes, self.alignment)
        return places

    def _add_output(self, value: Value) -> None:
        if value.name in (b.name for b in (*self.inputs, *self.outputs)):
            raise PlanBuildError(
                f"graph output %{value.name} is also a graph input or an earlier output; the artifact's "
                "inputs and outputs need distinct names (keep an Identity node before the output)"
            )
        offset = value.type.offset
        if offset is None and constant_source(value) is None and not data_root(value).is_graph_input:
            offset = self._arena_offset_of(value)
        if offset is None:  # a constant or input view: a place past the planned arena, filled by a copy step
            offset = align_up(self.arena_size, self.alignment)
            self.arena_size = align_up(offset + value.type.nbytes, self.alignment)
            self.copies.append((value, value))
        self.outputs.append(TensorBinding(value.name, value.type.shape, dtype_name(value), offset))
        self.output_values.append(value)

    def _arena_offset_of(self, value: Value) -> int:
        root = data_root(value)
        if root.type.offset is None:
            raise PlanBuildError(
                f"%{value.name} has no arena offset and is no constant: the graph is not planned"
            )
        return root.type.offset

    # -- slots -------------------------------------------------------------------------------------------

    def slot(
        self,
        value: Value,
        shape: tuple[int, ...],
        dtype: str,
        packed: dict[str, np.ndarray],
        written: bool,
        key: str | None = None,
    ) -> Slot:
        """The slot viewing `value`'s bytes as `shape`/`dtype` (weights stored on the way); a weight
        is the kernel's packed array `key` (a KernelArg's key: the value's name, or `value:part`)."""
        source = None if written else constant_source(value)
        if source is not None:
            key = key or value.name
            array = packed.get(key)
            if array is None:
                array = source.constant_array().reshape(value.type.shape)
            name = self.weights.add(key, array)
            return Slot("weight", shape, dtype, 0, name)
        root = data_root(value)
        if not written and root.is_graph_input:
            return Slot("input", shape, dtype, 0, root.name)
        if value.name in self.bindings:
            return Slot("output", shape, dtype, 0, value.name, writes=written)
        offset = value.type.offset if value.type.offset is not None else self._arena_offset_of(value)
        return Slot("arena", shape, dtype, offset, writes=written)

    def loop_slot(self, value: Value, written: bool) -> Slot:
        """The slot of a value a loop span's runtime work reads or writes (targets/plan/loop_spans.py)."""
        return self.slot(value, value.type.shape, dtype_name(value), {}, written)

    def absolute_offset(self, slot: Slot) -> int:
        if slot.kind == "arena":
            return slot.offset
        if slot.kind == "input":
            return self.input_places[slot.name] + slot.offset
        offset = self.bindings[slot.name].offset
        assert offset is not None  # outputs live in the arena
        return offset + slot.offset

    def step(self, kernel: Any, group: Any) -> tuple[Step, StepAccesses]:
        """The plan step of one kernel and what it reads and writes in the arena."""
        raw = {}
        for arg in kernel.args:
            value = self.graph.value(arg.value)
            source = constant_source(value)
            if arg.role == "weight" and source is not None:
                raw[arg.value] = source.constant_array().reshape(value.type.shape)
        packed = dict(kernel.pack_weights(raw)) if raw else {}
        slots, reads, writes = [], [], []
        for position, arg in enumerate(kernel.args):
            value = self.graph.value(arg.value)
            key = getattr(arg, "key", arg.value)
            slot = self.slot(value, tuple(arg.shape), arg.dtype, packed, arg.role == "output", key)
            if slot.nbytes != value.type.nbytes and not (slot.kind == "weight" and key in packed):
                raise PlanBuildError(
                    f"kernel {kernel.name} views argument #{position} %{value.name} ({value.type}) as "
                    f"{list(arg.shape)} {arg.dtype}: {slot.nbytes} bytes for {value.type.nbytes}"
                )
            slots.append(slot)
            if slot.kind != "weight":
                access = Access(value, self.absolute_offset(slot), slot.nbytes)
                (writes if arg.role == "output" else reads).append(access)
        guards = self.guards(group.anchor if group is not None else None, reads)
        device = self.driver_of(group.anchor.results[0].type.device) if group is not None else self.device
        step = Step(
            kernel.name, tuple(slots), tuple(kernel.sources), device, kernel_library_file(device), guards
        )
        in_place = tuple(group.in_place_operands()) if group is not None else ()
        return step, StepAccesses(kernel.name, tuple(reads), tuple(writes), step.nodes, in_place)

    def driver_of(self, placement: str | None) -> str:
        """The HAI device that runs what is placed on IR device `placement`; unplaced (or no `drivers`:
        one device), the plan's."""
        return self.drivers[placement] if placement is not None and self.drivers else self.device

    def transfer_step(self, node: Node) -> tuple[Step, StepAccesses]:
        """The step of a `Transfer` node: its operand's bytes made visible on the node's device (no kernel;
        runtime/plan_transfers.py)."""
        (operand,) = node.operands
        assert operand is not None
        slot = self.slot(operand, operand.type.shape, dtype_name(operand), {}, False)
        source, destination = self.driver_of(operand.type.device), self.driver_of(node.attrs["to"])
        named = node.name or f"Transfer %{node.results[0].name}"
        step = Step("transfer", (slot,), (named,), destination, "", transfer_from=source)
        read = Access(operand, self.absolute_offset(slot), slot.nbytes)
        return step, StepAccesses(step.kernel, (read,), (), step.nodes)

    def guards(self, anchor: Node | None, reads: list[Access]) -> tuple[Guard, ...]:
        """The guards of the step of `anchor` (ir/predication.py), each condition's bytes added to `reads`."""
        if anchor is None:
            return ()
        guards = []
        for name, when in guards_of(anchor):
            if not self.graph.has_value(name):
                raise PlanBuildError(
                    f"{anchor.label()} is guarded by %{name}, which the graph does not define"
                )
            value = self.graph.value(name)
            slot = self.slot(value, value.type.shape, dtype_name(value), {}, False)
            if slot.kind == "weight" or slot.nbytes != 1:
                raise PlanBuildError(
                    f"guard %{name} of {anchor.label()} is not one bool computed at run time"
                )
            reads.append(Access(value, self.absolute_offset(slot), slot.nbytes))
            guards.append(Guard(slot, when))
        return tuple(guards)

    def build(self, kernels: Sequence[Any], groups: Sequence[Any]) -> StaticPlan:
        """The StaticPlan: one step per kernel, and per Transfer node where the graph has it, then the
        output copies; checked for hazards. `kernels` of the StaticPlan are the kernel steps'."""
        steps, accesses, step_kernels = [], [], []
        pairs: list[tuple[Any, Any]] = list(zip(kernels, groups, strict=True))
        order = {node: index for index, node in enumerate(self.graph.nodes)}
        transfers = [(None, n) for n in self.graph.nodes if n.op == "Transfer"]
        first = lambda p: order[p[1]] if p[0] is None else min(order[n] for n in p[1].nodes)  # noqa: E731
        pairs = sorted([*pairs, *transfers], key=first)
        pairs += [(self.copy_kernel(source, destination), None) for source, destination in self.copies]
        for kernel, group in pairs:
            if kernel is None:
                step, access = self.transfer_step(group)
            else:
                step, access = self.step(kernel, group)
                step_kernels.append(kernel)
            steps.append(step)
            accesses.append(access)
        # the node each step (before the output copies) comes from: a group's anchor or a Transfer
        anchors = [group if kernel is None else group.anchor for kernel, group in pairs if group is not None]
        loops = LoopPlan(
            self.graph, anchors, self.loop_slot, self.absolute_offset, lambda n: self.guards(n, [])
        )
        off_host = sorted({step.device for step in steps} - {"cpu"})
        if loops.records and off_host:
            names = ", ".join(repr(loop.name) for loop in loops.records)
            raise PlanBuildError(
                f"Loop(s) {names} run at run time, which only the cpu device does yet (the runtime copies "
                f"carried values in host memory between iterations), not {', '.join(off_host)}: compile "
                "for a cpu target, or fix the loop's trip count (--input-value) so that it unrolls"
            )
        check_plan(  # fmt: skip
            [
                Access(v, self.input_places[b.name], b.nbytes)
                for v, b in zip(self.graph.inputs, self.inputs, strict=True)
            ],
            loops.replay(accesses),
            [
                Access(v, b.offset or 0, b.nbytes)
                for v, b in zip(self.output_values, self.outputs, strict=True)
            ],
        )
        scratch = max((scratch_bytes(k.func) for k in step_kernels), default=0)
        return StaticPlan(
            self.inputs,
            tuple(self.outputs),
            ExecutionPlan(self.arena_size, tuple(steps), scratch_bytes=scratch, loops=tuple(loops.records)),
            self.weights.arrays,
            step_kernels,
        )
