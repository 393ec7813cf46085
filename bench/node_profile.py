"""Where HAI loses to onnxruntime, kernel by kernel: each HAI step against the onnxruntime nodes it covers.

For a zoo model (hai_compiler/zoo) or a dev model (hai_compiler/real_models.py) it compiles the model,
times every step alone (runtime/step_timing.py, the fastest of `--runs`; at 1 thread the process CPU
time, steady on a shared host, else wall time) and reads onnxruntime's per-node profile
(`SessionOptions.enable_profiling`, the same intra-op threads, the fastest of `--runs` per node). Each
onnxruntime node is given to one step by name (`assign`): matching is by name only, so where the
importer split a node into several kernels (quantize_dynamic's DynamicQuantizeLinear chains) its time
lands on one of them, and nodes onnxruntime renamed (fused convs named by their output tensor) stay
unmatched, listed by op type. Rows: the slowest steps with their nodes' onnxruntime time, then HAI's
time per kernel kind against onnxruntime's. Steps timed alone run with warm caches and onnxruntime's
node times come from whole runs: the whole model's time (`run`) is the figure to compare.

    .venv/bin/python bench/node_profile.py ddddocr_rec_int8 [--threads 1] [--runs 20] [--top 20]
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hai_compiler import zoo  # noqa: E402
from hai_compiler.compiler import CompileOptions, compile_model  # noqa: E402
from hai_compiler.real_models import MODELS  # noqa: E402


def source(name: str) -> Any:
    return MODELS[name] if name in MODELS else zoo.get(name).model


def fastest_ms(call: Callable[[], Any], runs: int, clock: Callable[[], float]) -> float:
    times = []
    for _ in range(runs):
        start = clock()
        call()
        times.append(clock() - start)
    return min(times) * 1e3


def onnxruntime_nodes(
    path: Path, feeds: Mapping[str, np.ndarray], threads: int, runs: int, folder: Path
) -> tuple[dict[str, float], dict[str, str], float]:
    """({node: fastest µs}, {node: op type}, the whole model's fastest ms) of onnxruntime."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    options.enable_profiling, options.profile_file_prefix = True, str(folder / "ort")
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    feeds = {k: v for k, v in feeds.items() if k in {i.name for i in session.get_inputs()}}
    clock = time.process_time if threads == 1 else time.perf_counter
    whole = fastest_ms(lambda: session.run(None, feeds), runs, clock)
    times: dict[str, list[float]] = collections.defaultdict(list)
    kinds = {}
    for event in json.loads(Path(session.end_profiling()).read_text()):
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            node = event["name"].removesuffix("_kernel_time")
            times[node].append(event["dur"])
            kinds[node] = event["args"].get("op_name", "?")
    return {n: float(min(t)) for n, t in times.items()}, kinds, whole


def assign(
    steps: Sequence[Any], ops: Mapping[str, str], ort_times: Mapping[str, float], kinds: Mapping[str, str]
) -> list[list[str]]:
    """The onnxruntime nodes each step stands for, each node given once, in three passes: a node named as
    one of the step's IR nodes of the same op; one with such a name as a prefix (`NAME/...`,
    `NAME_nchwc`: onnxruntime's fusions); then one named as the ONNX node a step's IR node was converted
    from (`NAME` of `NAME/part`), to a step holding its op if one does, else the first."""
    found: list[list[str]] = [[] for _ in steps]
    taken: set[str] = set()

    def give(index: int, nodes: Sequence[str]) -> None:
        fresh = [n for n in dict.fromkeys(nodes) if n not in taken]
        found[index].extend(fresh)
        taken.update(fresh)

    for i, step in enumerate(steps):
        give(i, [n for n in step.nodes if n in ort_times and ops.get(n) == kinds[n]])
    for i, step in enumerate(steps):
        give(i, [n for node in step.nodes for n in ort_times if n.startswith((f"{node}/", f"{node}_nchwc"))])
    roots = [{node.split("/")[0] for node in step.nodes} for step in steps]
    for name in ort_times:
        holders = [i for i, r in enumerate(roots) if name in r]
        if holders and name not in taken:
            same_op = [i for i in holders if kinds[name] in {ops.get(n) for n in steps[i].nodes}]
            give((same_op or holders)[0], [name])
    return found


def main() -> None:
    import runtime
    from runtime.step_timing import time_steps

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--top", type=int, default=20)
    args = parser.parse_args()
    model = source(args.model)
    path, inputs = model.fetch(), model.sample_inputs()
    clock = time.process_time if args.threads == 1 else time.perf_counter
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        options = CompileOptions(input_shapes=model.input_shapes, input_values=model.input_values or None)
        result = compile_model(path, folder / "m.hai", options)
        ops = {node.name: node.op for node in result.graph.nodes}
        hai = runtime.load(result.path, threads=args.threads)
        feeds = {k: v for k, v in inputs.items() if k in {b.name for b in hai.inputs}}
        steps = time_steps(hai, feeds, args.runs, best=True, clock=clock)
        whole = fastest_ms(lambda: hai.run(feeds), args.runs, clock)
        ort_feeds = model.onnx_inputs(inputs) if hasattr(model, "onnx_inputs") else inputs
        ort_times, kinds, ort_whole = onnxruntime_nodes(path, ort_feeds, args.threads, args.runs, folder)
    steps_ms, nodes_ms = sum(s.median_us for s in steps) / 1e3, sum(ort_times.values()) / 1e3
    print(
        f"{args.model}, {args.threads} thread(s): run HAI {whole:.3f} ms, onnxruntime {ort_whole:.3f} ms; "
        f"steps {steps_ms:.3f} ms, nodes {nodes_ms:.3f} ms"
    )
    matched: set[str] = set()
    rows = []
    per_kernel: dict[str, list[float]] = collections.defaultdict(lambda: [0, 0.0, 0.0])
    for step, nodes in zip(steps, assign(steps, ops, ort_times, kinds), strict=True):
        matched.update(nodes)
        theirs = sum(ort_times[n] for n in nodes)
        rows.append(
            (step.median_us, theirs, step.kernel, sorted({kinds[n] for n in nodes}), list(step.nodes))
        )
        totals = per_kernel[step.kernel.split("_")[1]]
        totals[0], totals[1], totals[2] = totals[0] + 1, totals[1] + step.median_us, totals[2] + theirs
    print(f"\n{'HAI us':>9} {'ORT us':>9}  kernel / onnxruntime ops / nodes")
    for ours, theirs, kernel, op_types, nodes in sorted(rows, key=lambda r: -r[0])[: args.top]:
        print(f"{ours:9.1f} {theirs:9.1f}  {kernel} {'+'.join(op_types) or '-'} {list(nodes)[:3]}")
    print(f"\n{'kernels':>8} {'HAI us':>9} {'ORT us':>9}  kind (onnxruntime time of the nodes matched)")
    for kind, (count, ours, theirs) in sorted(per_kernel.items(), key=lambda item: -item[1][1]):
        print(f"{int(count):8d} {ours:9.1f} {theirs:9.1f}  {kind}")
    unmatched: dict[str, list[float]] = collections.defaultdict(list)
    for node, us in ort_times.items():
        if node not in matched:
            unmatched[kinds[node]].append(us)
    left = sorted(unmatched.items(), key=lambda item: -sum(item[1]))
    print(
        "\nonnxruntime nodes no step matched: "
        + ", ".join(f"{op} {len(v)} ({sum(v):.0f} us)" for op, v in left)
    )


if __name__ == "__main__":
    main()
