"""The runtime's own resident memory: the `RUNTIME_BASELINE_BYTES` and `RUNTIME_BYTES_PER_CALL`
constants of targets/target.py.

Compiles a trivial artifact (`y = Relu(x + c)`, a few bytes of arena and
weights), then, `--repeat` times, runs it in a fresh process that imports only
`runtime` (and numpy), loads it and runs it (hai_compiler/compiler/bench.py
`hai_isolated`), reads that process's peak RSS (VmHWM) and subtracts the
artifact's own terms of the memory account (arena, weights, kernel library,
inputs and outputs: targets/plan/memory_budget.py). The largest of
the repeats plus HEADROOM (peaks of identical runs spread by up to about 1 MiB) is
the baseline: a budget must hold on every run. Commit it as
`RUNTIME_BASELINE_BYTES`, with the date and the machine. Measure in a freshly
made venv (a fresh clone's `scripts/setup.sh`), as CI and a new install run:
the shared libraries of a fresh install map about 6 MiB more resident pages.

Then the same for a chain of `--calls` small MatMul layers, compiled twice:
with `entry=off` (one kernel call each) and paged (a budget 1 MiB under its
resident peak, 16 KiB pages, so one page per weight and segments between page
waits). What each peak holds beyond its own terms and the baseline, divided by
its steps and pages, is the runtime's state per plan item (the step, its
argument headers, its share of the parsed manifest, its page bookkeeping); the
largest is `RUNTIME_BYTES_PER_CALL`.

    .venv/bin/python bench/runtime_baseline.py [--repeat 5] [--threads 2] [--calls 400] [--json out.json]
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
from runtime.artifact_files import read_manifest  # noqa: E402
from targets.plan.memory_budget import artifact_account  # noqa: E402

HEADROOM = 2**20
"""Added to the largest measured baseline: peaks of identical fresh processes spread by ~0.1 MiB on
small plans and up to ~1 MiB on a 500 MiB paged one (transparent huge pages at the pool's edges)."""


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


WIDTH = 64
"""The chain's activations are [1, WIDTH], its weights WIDTH x WIDTH float32 (16 KiB each)."""


def chain_model(path: Path, calls: int) -> Path:
    """`calls` MatMul layers of x float32 [1, WIDTH] by distinct square weights: one kernel call each."""
    f32 = TensorProto.FLOAT
    rng = np.random.default_rng(0)
    nodes, weights, current = [], [], "x"
    for index in range(calls):
        out = "y" if index == calls - 1 else f"h{index}"
        nodes.append(helper.make_node("MatMul", [current, f"w{index}"], [out]))
        weights.append(
            numpy_helper.from_array(rng.standard_normal((WIDTH, WIDTH), dtype=np.float32) / 8, f"w{index}")
        )
        current = out
    graph = helper.make_graph(
        nodes, "chain", [helper.make_tensor_value_info("x", f32, [1, WIDTH])],
        [helper.make_tensor_value_info("y", f32, [1, WIDTH])], weights,
    )  # fmt: skip
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def beyond_own_terms(
    model: Path, options: CompileOptions, repeat: int, threads: int
) -> tuple[int, list[int], int]:
    """(the artifact's own planned bytes without the runtime's, each repeat's peak RSS, its steps and
    pages)."""
    artifact = compile_model(model, model.with_suffix(".hai"), options).path
    own = artifact_account(artifact, baseline=0, per_call=0).planned_peak
    inputs = {"x": np.ones(read_manifest(artifact, verify=False).inputs[0].shape, np.float32)}
    peaks = [bench.hai_isolated(artifact, inputs, threads, runs=3).peak_rss_bytes for _ in range(repeat)]
    plan = read_manifest(artifact, verify=False).plan
    return own, peaks, len(plan.steps) + (len(plan.paging.page_bytes) if plan.paging is not None else 0)


def paged_options(chain: Path) -> CompileOptions:
    """A budget 1 MiB under the chain's resident peak, in 16 KiB pages (a weight each): it pages."""
    resident = compile_model(chain, chain.with_name("resident.hai"), CompileOptions(memory_budget=None))
    peak = artifact_account(resident.path).planned_peak
    return CompileOptions(memory_budget=peak - 2**20, page_size="16KiB")


def measure(repeat: int, threads: int, calls: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="hai-baseline-") as tmp:
        trivial = trivial_model(Path(tmp) / "trivial.onnx")
        own, peaks, _ = beyond_own_terms(trivial, CompileOptions(), repeat, threads)
        baseline = max(peak - own for peak in peaks) + HEADROOM
        chain = chain_model(Path(tmp) / "chain.onnx", calls)
        per_item = {}
        for kind, options in (("calls", CompileOptions(entry="off")), ("paged", paged_options(chain))):
            chain_own, chain_peaks, items = beyond_own_terms(chain, options, repeat, threads)
            per_item[kind] = max(peak - chain_own - baseline for peak in chain_peaks) // items
    return {
        "threads": threads,
        "artifact_bytes": own,
        "peak_rss_bytes": peaks,
        "baseline_bytes": baseline,
        "chain_calls": calls,
        "bytes_per_item": per_item,
        "bytes_per_call": max(per_item.values()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--calls", type=int, default=400, help="kernel calls of the chain model")
    parser.add_argument("--json", type=Path, help="also write the numbers as JSON")
    args = parser.parse_args()
    result = measure(args.repeat, args.threads, args.calls)
    peaks = ", ".join(f"{p / 2**20:.2f}" for p in result["peak_rss_bytes"])  # type: ignore[attr-defined]
    print(f"trivial artifact's own terms: {result['artifact_bytes']} bytes; peak RSS MiB per run: {peaks}")
    baseline = int(result["baseline_bytes"])  # type: ignore[call-overload]
    print(f"runtime baseline: {baseline} bytes ({baseline / 2**20:.2f} MiB), {args.threads} threads")
    print(f"runtime state per plan item: {result['bytes_per_call']} bytes (per step or page of the "
          f"{args.calls}-call chain: {result['bytes_per_item']})")  # fmt: skip
    if args.json:
        bench.write_json(result, args.json)


if __name__ == "__main__":
    main()
