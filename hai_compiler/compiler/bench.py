"""Measuring a compiled artifact: latency percentiles, peak RSS in a fresh process, per-step times,
Python overhead per inference, and the same numbers for onnxruntime on the same inputs and threads.

Rule: benchmarks measure, tests never assert on them. Each engine is measured
in a fresh Python process of its own (`isolated`): peak RSS after loading the
model and running one inference (HAI's child imports the runtime alone, never
the compiler), read from /proc's VmHWM (`ru_maxrss` would keep the parent's
peak across fork and exec), then latency percentiles over timed runs after one
warm-up. Step times and the Python overhead come from calling the loaded
model's kernels again from this process, over its own arena and weights.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[2]

PEAK_RSS = """
import time

def peak_rss_kib():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))

def report(call, runs):
    call()
    print(peak_rss_kib())  # load + one inference
    call()  # warm-up of the timed runs
    seconds = []
    for _ in range(runs):
        start = time.perf_counter()
        call()
        seconds.append(time.perf_counter() - start)
    print(*seconds)
"""

HAI_RSS_CHILD = (
    PEAK_RSS
    + """
import sys, numpy as np
import runtime
model = runtime.load(sys.argv[1], threads=int(sys.argv[3]))
with np.load(sys.argv[2]) as data:
    feeds = {b.name: data[f"i{k}"] for k, b in enumerate(model.inputs)}
report(lambda: model.run(feeds), int(sys.argv[4]))
"""
)

ORT_RSS_CHILD = (
    PEAK_RSS
    + """
import sys, numpy as np
import onnxruntime as ort
options = ort.SessionOptions()
options.intra_op_num_threads = int(sys.argv[3])
options.inter_op_num_threads = 1
session = ort.InferenceSession(sys.argv[1], options, providers=["CPUExecutionProvider"])
with np.load(sys.argv[2]) as data:
    feeds = {i.name: data[f"i{k}"] for k, i in enumerate(session.get_inputs())}
report(lambda: session.run(None, feeds), int(sys.argv[4]))
"""
)


@dataclasses.dataclass(frozen=True)
class Latency:
    """Latency percentiles over `runs` timed runs, in milliseconds."""

    p50_ms: float
    p99_ms: float
    mean_ms: float
    runs: int

    @classmethod
    def of(cls, seconds: list[float]) -> Latency:
        ms = np.asarray(seconds) * 1e3
        return cls(float(np.percentile(ms, 50)), float(np.percentile(ms, 99)), float(ms.mean()), len(ms))


def sample_inputs(bindings: Any, seed: int = 0) -> dict[str, np.ndarray]:
    """Seeded random inputs for a model's input bindings (runtime.artifact.TensorBinding)."""
    from hai_compiler.input_spec import random_input
    from ir import DType, TensorType
    from runtime.artifact import numpy_dtype

    rng = np.random.default_rng(seed)
    return {
        b.name: random_input(TensorType(DType.from_numpy(numpy_dtype(b.dtype)), tuple(b.shape)), rng)
        for b in bindings
    }


def onnxruntime_session(onnx_path: str | Path, threads: int) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])


@dataclasses.dataclass(frozen=True)
class Isolated:
    """What a fresh process measured: peak RSS in bytes after load + one inference, then latency."""

    peak_rss_bytes: int
    latency: Latency | None


def isolated(
    child: str, model_path: str | Path, inputs: Mapping[str, np.ndarray], threads: int, runs: int = 0
) -> Isolated:
    """Run `child` in a fresh process on `model_path`: its peak RSS, and `runs` timed inferences.

    Each engine is measured alone: two runtimes in one process disturb each other (their thread
    pools keep spinning), which once doubled onnxruntime's time on PP-OCR rec after HAI had run.
    """
    with tempfile.TemporaryDirectory() as tmp:
        feeds = Path(tmp) / "inputs.npz"
        np.savez(feeds, **{f"i{k}": a for k, a in enumerate(inputs.values())})
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]))
        arguments = [str(Path(model_path).resolve()), str(feeds), str(threads), str(runs)]
        done = subprocess.run(
            [sys.executable, "-c", child, *arguments], capture_output=True, text=True, env=env, cwd=tmp
        )
    if done.returncode != 0:
        raise RuntimeError(f"measuring child for {model_path} failed: {done.stderr.strip()[-800:]}")
    lines = done.stdout.strip().splitlines()
    peak, timings = lines[-2], lines[-1].split()
    latency = Latency.of([float(t) for t in timings]) if timings else None
    return Isolated(int(peak) * 1024, latency)


def hai_isolated(artifact: str | Path, inputs: Mapping[str, np.ndarray], threads: int, runs: int) -> Isolated:
    return isolated(HAI_RSS_CHILD, artifact, inputs, threads, runs)


def onnxruntime_isolated(
    onnx_path: str | Path, inputs: Mapping[str, np.ndarray], threads: int, runs: int
) -> Isolated:
    return isolated(ORT_RSS_CHILD, onnx_path, inputs, threads, runs)


@dataclasses.dataclass(frozen=True)
class StepTime:
    """One step of the plan, timed alone: its kernel, the IR/ONNX nodes it came from, median µs."""

    index: int
    kernel: str
    nodes: tuple[str, ...]
    median_us: float


def step_calls(model: Any, inputs: Mapping[str, np.ndarray]) -> list[Callable[[], None]]:
    """Every step's kernel bound to its arguments, over the model's arena, weights and `inputs`."""
    from runtime.kernel_library import aligned_empty, kernel_function, kernel_tensor, load_kernel_module
    from runtime.model import typed_view

    manifest = model.manifest
    bindings = {b.name: b for b in manifest.inputs + manifest.outputs}
    bound = {}
    for name, array in inputs.items():
        bound[name] = aligned_empty((array.nbytes,), "u1")
        bound[name][:] = np.ascontiguousarray(array).reshape(-1).view(np.uint8)
    modules = {d: load_kernel_module(model.directory / f) for d, f in manifest.kernel_libraries.items()}
    calls = []
    for step in manifest.plan.steps:
        args = []
        for position, slot in enumerate(step.args):
            base = {"weight": model.weights, "input": bound.get(slot.name)}.get(slot.kind, model.arena)
            offset = slot.offset + (bindings[slot.name].offset or 0 if slot.kind == "output" else 0)
            args.append(
                kernel_tensor(typed_view(base, offset, slot.shape, slot.dtype), position, step.kernel)
            )
        module = modules[step.device]
        calls.append(kernel_function(module, str(model.directory), step.kernel).bind(args))
    return calls


def profile_steps(model: Any, inputs: Mapping[str, np.ndarray], runs: int) -> list[StepTime]:
    """Each step's median time over `runs` calls, after one inference fills the arena with real data."""
    model.run(inputs)
    times = []
    calls = step_calls(model, inputs)
    for index, (step, call) in enumerate(zip(model.manifest.plan.steps, calls)):
        call()
        seconds = []
        for _ in range(runs):
            start = time.perf_counter()
            call()
            seconds.append(time.perf_counter() - start)
        times.append(StepTime(index, step.kernel, tuple(step.nodes), float(np.median(seconds)) * 1e6))
    return times


def python_overhead_us(model: Any, inputs: Mapping[str, np.ndarray], runs: int) -> float:
    """Fastest `model.run` minus the fastest run of its compiled part alone (`model.bind`), in µs.

    The two are timed alternately, so drift hits both, and compared by their minimum, which
    jitter only ever raises.
    """
    compiled = model.bind(inputs)
    model.run(inputs)
    whole, bare = [], []
    for _ in range(runs):
        start = time.perf_counter()
        model.run(inputs)
        middle = time.perf_counter()
        compiled()
        whole.append(middle - start)
        bare.append(time.perf_counter() - middle)
    return (min(whole) - min(bare)) * 1e6


def write_json(data: Any, path: str | Path) -> None:
    Path(path).write_text(json.dumps(data, indent=2, sort_keys=True, default=_plain) + "\n", encoding="utf-8")


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value):
        return dataclasses.asdict(value)  # type: ignore[arg-type]
    raise TypeError(f"cannot write {type(value).__name__} as JSON")
