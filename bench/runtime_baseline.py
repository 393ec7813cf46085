"""The runtime's own resident memory: the `RUNTIME_BASELINE_BYTES` constant of targets/target.py.

Compiles a trivial artifact (`y = Relu(x + c)`, a few bytes of arena and
weights), then, `--repeat` times, runs it in a fresh process that imports only
`runtime` (and numpy), loads it and runs it (hai_compiler/compiler/bench.py
`hai_isolated`), reads that process's peak RSS (VmHWM) and subtracts the
artifact's own terms of the memory account (arena, weights, kernel library,
inputs and outputs: hai_compiler/compiler/memory_budget.py). The largest of
the repeats is the baseline: a budget must hold on every run. Commit it as
`RUNTIME_BASELINE_BYTES`, with the date and the machine.

    .venv/bin/python bench/runtime_baseline.py [--repeat 5] [--threads 2] [--json out.json]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hai_compiler.compiler import CompileOptions, bench, compile_model  # noqa: E402
from hai_compiler.compiler.memory_budget import artifact_account  # noqa: E402


def trivial_model(path: Path) -> Path:
    """y = Relu(x + c), x float32 [1, 16]: the least an artifact can be (one kernel, one weight)."""
    f32 = TensorProto.FLOAT
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "c"], ["s"]), helper.make_node("Relu", ["s"], ["y"])],
        "trivial",
        [helper.make_tensor_value_info("x", f32, [1, 16])],
        [helper.make_tensor_value_info("y", f32, [1, 16])],
        [numpy_helper.from_array(np.linspace(-1, 1, 16, dtype=np.float32).reshape(1, 16), "c")],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def measure(repeat: int, threads: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="hai-baseline-") as tmp:
        model = trivial_model(Path(tmp) / "trivial.onnx")
        artifact = compile_model(model, Path(tmp) / "trivial.hai", CompileOptions()).path
        own = artifact_account(artifact, baseline=0).planned_peak
        inputs = {"x": np.ones((1, 16), np.float32)}
        peaks = [bench.hai_isolated(artifact, inputs, threads, runs=3).peak_rss_bytes for _ in range(repeat)]
    baselines = [peak - own for peak in peaks]
    return {
        "threads": threads,
        "artifact_bytes": own,
        "peak_rss_bytes": peaks,
        "baseline_bytes": max(baselines),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path, help="also write the numbers as JSON")
    args = parser.parse_args()
    result = measure(args.repeat, args.threads)
    peaks = ", ".join(f"{p / 2**20:.2f}" for p in result["peak_rss_bytes"])  # type: ignore[attr-defined]
    print(f"trivial artifact's own terms: {result['artifact_bytes']} bytes; peak RSS MiB per run: {peaks}")
    baseline = int(result["baseline_bytes"])  # type: ignore[call-overload]
    print(f"runtime baseline: {baseline} bytes ({baseline / 2**20:.2f} MiB), {args.threads} threads")
    if args.json:
        bench.write_json(result, args.json)


if __name__ == "__main__":
    main()
