"""Measuring a compiled artifact: latency percentiles, peak RSS in a fresh process, per-step times,
Python overhead per inference, and the same numbers for onnxruntime on the same inputs and threads.

Rule: benchmarks measure, tests never assert on them. Each engine is measured
in a fresh Python process of its own (`isolated`): peak RSS after loading the
model and running one inference (HAI's child imports the runtime alone, never
the compiler), read from /proc's VmHWM (`ru_maxrss` would keep the parent's
peak across fork and exec), then latency percentiles over timed runs after one
warm-up. Only after measuring does the child compile and run `SAVE_FACTS`,
which saves its first inference's outputs and a paged model's pager counters
(after the first inference and at the end) for the parent. `memory_runs`
(`hai bench --memory`) repeats the fresh process to report the peak RSS's
median and maximum beside the manifest's planned peak (`PlannedMemory`).
Step times and the Python overhead come from calling the loaded
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
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from runtime.step_timing import StepTime, time_steps

REPO_ROOT = Path(__file__).resolve().parents[2]

FACTS_JSON = "facts.json"
FACTS_OUTPUTS = "outputs.npz"

PEAK_RSS = """
import time

def peak_rss_kib():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))

def report(call, runs, counters=dict):
    outputs = call()
    print(peak_rss_kib())  # load + one inference
    first = counters()
    call()  # warm-up of the timed runs
    seconds = []
    for _ in range(runs):
        start = time.perf_counter()
        call()
        seconds.append(time.perf_counter() - start)
    print(*seconds)
    exec(SAVE_FACTS)  # compiled only now: the measured process never held its code
"""

SAVE_FACTS = f"""
import json
values = outputs.values() if isinstance(outputs, dict) else outputs
np.savez({FACTS_OUTPUTS!r}, **{{f"o{{k}}": np.asarray(v) for k, v in enumerate(values)}})
facts = {{"first": first, "last": counters(), "calls": runs + 2, "peak_rss_end_kib": peak_rss_kib()}}
with open({FACTS_JSON!r}, "w") as out:
    json.dump(facts, out)
"""
"""What a measuring child runs after its measurements, in its cwd (argv[5]): saves the first
inference's outputs and its facts (`Isolated.facts`), read back by `child_facts`."""

HAI_RSS_CHILD = (
    PEAK_RSS
    + """
import sys, numpy as np
SAVE_FACTS = sys.argv[5]
import runtime
model = runtime.load(sys.argv[1], threads=int(sys.argv[3]))
with np.load(sys.argv[2]) as data:
    feeds = {b.name: data[f"i{k}"] for k, b in enumerate(model.inputs)}
report(lambda: model.run(feeds), int(sys.argv[4]), model.page_counters)
"""
)

ORT_RSS_CHILD = (
    PEAK_RSS
    + """
import sys, numpy as np
SAVE_FACTS = sys.argv[5]
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


OPENVINO_RSS_CHILD = (
    PEAK_RSS
    + """
import sys, numpy as np
SAVE_FACTS = sys.argv[5]
import openvino as ov
config = {"INFERENCE_NUM_THREADS": int(sys.argv[3]), "PERFORMANCE_HINT": "LATENCY"}
if sys.argv[6] != "default":
    config["INFERENCE_PRECISION_HINT"] = sys.argv[6]
core = ov.Core()
model = core.read_model(sys.argv[1])
with np.load(sys.argv[2]) as data:
    arrays = [data[f"i{k}"] for k in range(len(data.files))]
if any(i.get_partial_shape().is_dynamic for i in model.inputs):
    model.reshape({i: ov.PartialShape(list(a.shape)) for i, a in zip(model.inputs, arrays)})
compiled = core.compile_model(model, "CPU", config)
request = compiled.create_infer_request()

def call():
    result = request.infer(arrays)
    return [np.array(result[o]) for o in compiled.outputs]

report(call, int(sys.argv[4]))
"""
)
"""OpenVINO's CPU plugin in latency mode on `threads` threads, with its precision hint (argv[6]): `f32`,
`bf16`, or `default` (none given: bf16 on CPUs with AVX512_BF16/AMX, f32 elsewhere)."""


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
    """What a fresh process measured: peak RSS in bytes after load + one inference, then latency; the
    outputs of that first inference and the child's facts (`first`/`last`: a paged model's pager
    counters after the first inference and at the end, over `calls` inferences; `peak_rss_end_kib`)."""

    peak_rss_bytes: int
    latency: Latency | None
    outputs: tuple[np.ndarray, ...] = ()
    facts: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def page_counters(self) -> dict[str, float] | None:
        """The pager's counters per inference after the first (steady state; None: not paged)."""
        first, last = self.facts.get("first"), self.facts.get("last")
        if not first or not last:
            return None
        later = max(1, self.facts["calls"] - 1)
        return {name: (last[name] - first[name]) / later for name in last}


def isolated(
    child: str,
    model_path: str | Path,
    inputs: Mapping[str, np.ndarray],
    threads: int,
    runs: int = 0,
    extra: Sequence[str] = (),
) -> Isolated:
    """Run `child` in a fresh process on `model_path`: its peak RSS, and `runs` timed inferences.

    Each engine is measured alone: two runtimes in one process disturb each other (their thread
    pools keep spinning), which once doubled onnxruntime's time on PP-OCR rec after HAI had run.
    """
    with tempfile.TemporaryDirectory() as tmp:
        feeds = Path(tmp) / "inputs.npz"
        np.savez(feeds, **{f"i{k}": a for k, a in enumerate(inputs.values())})
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]))
        arguments = [str(Path(model_path).resolve()), str(feeds), str(threads), str(runs), SAVE_FACTS, *extra]
        done = subprocess.run(
            [sys.executable, "-c", child, *arguments], capture_output=True, text=True, env=env, cwd=tmp
        )
        if done.returncode != 0:
            raise RuntimeError(f"measuring child for {model_path} failed: {done.stderr.strip()[-800:]}")
        outputs, facts = child_facts(Path(tmp))
    lines = done.stdout.strip().splitlines()
    peak, timings = lines[-2], lines[-1].split()
    latency = Latency.of([float(t) for t in timings]) if timings else None
    return Isolated(int(peak) * 1024, latency, outputs, facts)


def child_facts(directory: Path) -> tuple[tuple[np.ndarray, ...], dict[str, Any]]:
    """The outputs and facts a measuring child saved in `directory` (none when it saved none)."""
    if not (directory / FACTS_JSON).is_file():
        return (), {}
    with np.load(directory / FACTS_OUTPUTS) as saved:
        outputs = tuple(saved[f"o{k}"] for k in range(len(saved.files)))
    return outputs, json.loads((directory / FACTS_JSON).read_text(encoding="utf-8"))


def hai_isolated(artifact: str | Path, inputs: Mapping[str, np.ndarray], threads: int, runs: int) -> Isolated:
    return isolated(HAI_RSS_CHILD, artifact, inputs, threads, runs)


def onnxruntime_isolated(
    onnx_path: str | Path, inputs: Mapping[str, np.ndarray], threads: int, runs: int
) -> Isolated:
    return isolated(ORT_RSS_CHILD, onnx_path, inputs, threads, runs)


def openvino_isolated(
    onnx_path: str | Path, inputs: Mapping[str, np.ndarray], threads: int, runs: int, hint: str = "f32"
) -> Isolated:
    """OpenVINO on `onnx_path` in a fresh process (`OPENVINO_RSS_CHILD`; `hint`: f32, bf16 or default)."""
    return isolated(OPENVINO_RSS_CHILD, onnx_path, inputs, threads, runs, (hint,))


def geomean(values: Sequence[float]) -> float:
    """The geometric mean of positive `values` (nan when there are none)."""
    return float(np.exp(np.mean(np.log(values)))) if len(values) else float("nan")


def measure_each(names: Sequence[str], measure: Callable[[str], dict[str, Any]]) -> list[dict[str, Any]]:
    """`measure(name)` for every name, in order; a model that fails is a row with its `error`, never the
    end of the run (a benchmark reports every model)."""
    rows = []
    for name in names:
        try:
            rows.append(measure(name))
        except Exception as exc:  # a report: a model that fails is a row, not the end of the run
            rows.append({"model": name, "error": error_line(exc)})
        print(f"{name}: done", file=sys.stderr, flush=True)
    return rows


def error_line(exc: BaseException) -> str:
    """`Type: the message's last non-empty line` (a measuring child's error ends its stderr), for one cell."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return f"{type(exc).__name__}: {lines[-1] if lines else ''}"


@dataclasses.dataclass(frozen=True)
class PlannedMemory:
    """What an artifact's manifest promises about memory: the planned peak, the budget it was compiled
    for (None: unbounded) and, for paged weights, the page pool (`frames` x `page_size`)."""

    planned_peak_bytes: int | None
    budget_bytes: int | None
    frames: int = 0
    page_size: int = 0

    @classmethod
    def of(cls, artifact: str | Path) -> PlannedMemory:
        from runtime.artifact_files import read_manifest

        manifest = read_manifest(Path(artifact), verify=False)
        paging = manifest.plan.paging
        pool = (paging.frames, paging.page_size) if paging is not None else (0, 0)
        budget = manifest.compiler.options.get("memory_budget")
        return cls(manifest.plan.planned_peak_bytes, budget, *pool)

    @property
    def paged(self) -> bool:
        return self.frames > 0


@dataclasses.dataclass(frozen=True)
class MemoryRuns:
    """Fresh processes each loading a model and running it (`isolated` with one timed run): every
    process's peak RSS, the latency over their timed runs, the median pager counters per inference."""

    peaks: tuple[int, ...]
    latency: Latency
    page_counters: dict[str, float] | None
    median_peak_bytes: int
    max_peak_bytes: int


def memory_runs(measure: Callable[[int], Isolated], processes: int) -> MemoryRuns:
    """`processes` fresh processes of `measure(runs)` (hai_isolated or onnxruntime_isolated, bound to
    a model, inputs and threads), each timing one inference after its warm-up."""
    runs = [measure(1) for _ in range(processes)]
    seconds = [r.latency.p50_ms / 1e3 for r in runs if r.latency is not None]
    counters = [r.page_counters for r in runs if r.page_counters is not None]
    median = (
        {name: float(np.median([c[name] for c in counters])) for name in counters[0]} if counters else None
    )
    peaks = [r.peak_rss_bytes for r in runs]
    return MemoryRuns(tuple(peaks), Latency.of(seconds), median, int(np.median(peaks)), max(peaks))


def memory_bench(
    artifact: str | Path, onnx_path: str | Path | None, threads: int, processes: int, seed: int = 0
) -> dict[str, Any]:
    """`hai bench --memory`: the artifact's planned memory, then `processes` fresh processes of HAI (and
    of onnxruntime on `onnx_path`) on seeded random inputs. The parent loads nothing but the manifest."""
    from runtime.artifact_files import read_manifest

    inputs = sample_inputs(read_manifest(Path(artifact)).inputs, seed)
    results: dict[str, Any] = {"artifact": str(artifact), "threads": threads, "processes": processes}
    results["planned"] = PlannedMemory.of(artifact)
    results["hai"] = memory_runs(lambda runs: hai_isolated(artifact, inputs, threads, runs), processes)
    if onnx_path is not None:
        measure = lambda runs: onnxruntime_isolated(onnx_path, inputs, threads, runs)  # noqa: E731
        results["onnxruntime"] = memory_runs(measure, processes)
    return results


def relative_error(actual: Sequence[np.ndarray], expected: Sequence[np.ndarray]) -> float:
    """max |actual - expected| / max |expected| over all outputs (in float64)."""
    pairs = [
        (np.asarray(a, np.float64), np.asarray(e, np.float64)) for a, e in zip(actual, expected, strict=True)
    ]
    difference = max((float(np.max(np.abs(a - e), initial=0.0)) for a, e in pairs), default=0.0)
    scale = max((float(np.max(np.abs(e), initial=0.0)) for _, e in pairs), default=0.0)
    return difference / scale if scale else difference


def profile_steps(model: Any, inputs: Mapping[str, np.ndarray], runs: int) -> list[StepTime]:
    """Each step's median time over `runs` calls (runtime/step_timing.py)."""
    return time_steps(model, inputs, runs)


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


def transfers_per_inference(model: Any, inputs: Mapping[str, np.ndarray]) -> dict[str, int]:
    """The transfer steps one run makes between devices and their bytes (runtime/plan_transfers.py)."""
    before = model.transfer_counters()
    model.run(inputs)
    return {key: value - before[key] for key, value in model.transfer_counters().items()}


def write_json(data: Any, path: str | Path) -> None:
    """`data` as JSON into the file `path`, or onto stdout when `path` is `-`."""
    text = json.dumps(data, indent=2, sort_keys=True, default=_plain) + "\n"
    if str(path) == "-":
        sys.stdout.write(text)
    else:
        Path(path).write_text(text, encoding="utf-8")


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value):
        return dataclasses.asdict(value)  # type: ignore[arg-type]
    raise TypeError(f"cannot write {type(value).__name__} as JSON")
