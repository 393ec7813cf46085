"""Each step of a loaded model timed alone: what `hai bench --profile` and the device microbenchmarks
(runtime/microbench.py) measure.

Rule: every step's kernel is recorded once on its device (`Device.record`) over the model's arena,
its weights and aligned copies of the inputs; after one whole inference fills the arena with real
data, each step runs once to warm up, then `runs` times, each run timed from its launch until its
device has finished (`Device.synchronize`: an OpenCL launch returns before the kernel ends). A
step's time is the median, or with `best` the fastest run (what the device achieves when nothing
else runs beside it: steadier on a shared host). `clock` is wall time (`time.perf_counter`), or
`time.process_time` for the CPU time of the whole process, every thread (steady where other
processes share the cores; one thread then gives kernel time). Imports numpy, the standard library
and `runtime`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from runtime.kernel_library import aligned_empty
from runtime.model import Model, typed_view


@dataclass(frozen=True)
class StepTime:
    """One step of the plan, timed alone: its kernel, the IR/ONNX nodes it came from, median µs."""

    index: int
    kernel: str
    nodes: tuple[str, ...]
    median_us: float


def step_calls(model: Model, inputs: Mapping[str, np.ndarray]) -> list[Callable[[], None]]:
    """Every step's kernel recorded on its device, each call waiting until its device has finished."""
    manifest = model.manifest
    bindings = {b.name: b for b in manifest.inputs + manifest.outputs}
    bound: dict[str, np.ndarray] = {}
    for name, array in inputs.items():
        bound[name] = aligned_empty((array.nbytes,), "u1")
        bound[name][:] = np.ascontiguousarray(array).reshape(-1).view(np.uint8)
    calls = []
    for step in manifest.plan.steps:
        args = []
        for slot in step.args:
            base = model.weights if slot.kind == "weight" else model.arena
            base = bound[slot.name] if slot.kind == "input" else base
            offset = slot.offset + (bindings[slot.name].offset or 0 if slot.kind == "output" else 0)
            args.append(typed_view(base, offset, slot.shape, slot.dtype))
        executable = model.executables[step.executable]  # loaded and verified by `load`, never reopened
        device = model.devices[step.device]
        calls.append(_waiting(device.record(executable, step.kernel, args).run, device.synchronize))
    return calls


def _waiting(run: Callable[[], None], synchronize: Callable[[], None]) -> Callable[[], None]:
    def call() -> None:
        run()
        synchronize()

    return call


def time_steps(
    model: Model,
    inputs: Mapping[str, np.ndarray],
    runs: int,
    best: bool = False,
    clock: Callable[[], float] = time.perf_counter,
) -> list[StepTime]:
    """Each step's median (`best`: fastest) time over `runs` calls (the module rule); in `median_us`."""
    model.run(inputs)
    times = []
    calls = step_calls(model, inputs)
    for index, (step, call) in enumerate(zip(model.manifest.plan.steps, calls, strict=True)):
        call()
        seconds = []
        for _ in range(max(int(runs), 1)):
            start = clock()
            call()
            seconds.append(clock() - start)
        figure = min(seconds) if best else float(np.median(seconds))
        times.append(StepTime(index, step.kernel, tuple(step.nodes), figure * 1e6))
    return times
