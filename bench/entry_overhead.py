"""Per-inference overhead with and without the one-call entry function (targets/entry.py).

For each model (the embedded digits CNN at batch 1, and real models of
hai_compiler/real_models.py) compiles two artifacts, `entry=auto` (one
`hai_entry` call per inference) and `entry=off` (one Python call per kernel),
loads both with the same threads and times them alternately on the same
inputs: the fastest `model.run` of each, their difference, and
`bench.python_overhead_us` of each (fastest `run` minus the fastest pass of
every kernel called back to back from Python, which itself costs ≈0.13 µs a call),
and for the entry artifact its fastest `run` minus its fastest bare entry call
(what `run` adds around the compiled code: input/output copies and Python).

    .venv/bin/python bench/entry_overhead.py [--threads 2] [--runs 300] [--model digits ppocr_cls magika]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hai_compiler import real_models  # noqa: E402
from hai_compiler.compiler import CompileOptions, bench, compile_model  # noqa: E402
from hai_compiler.demo import EMBEDDED_MODEL  # noqa: E402

DIGITS = "digits"


def model_source(name: str) -> tuple[Path, dict[str, tuple[int, ...]]]:
    if name == DIGITS:
        return EMBEDDED_MODEL, {"image": (1, 1, 8, 8)}
    return real_models.fetch(name), dict(real_models.MODELS[name].input_shapes)


def fastest_runs(models: dict[str, Any], feeds: dict[str, Any], runs: int) -> dict[str, float]:
    """The fastest `run` of each model in µs, the models timed in turn so drift hits all alike."""
    best = {key: float("inf") for key in models}
    for model in models.values():
        model.run(feeds)
    for _ in range(runs):
        for key, model in models.items():
            start = time.perf_counter()
            model.run(feeds)
            best[key] = min(best[key], time.perf_counter() - start)
    return {key: seconds * 1e6 for key, seconds in best.items()}


def entry_call_overhead_us(model: Any, feeds: dict[str, Any], runs: int) -> float:
    """Fastest `model.run` minus the fastest bare entry call on the same arena (µs): copies and Python."""
    ((entry, *_),) = model._calls  # the loaded model's one recorded launch  # noqa: SLF001
    model.run(feeds)
    whole, bare = [], []
    for _ in range(runs):
        start = time.perf_counter()
        model.run(feeds)
        middle = time.perf_counter()
        entry()
        whole.append(middle - start)
        bare.append(time.perf_counter() - middle)
    return (min(whole) - min(bare)) * 1e6


def measure(name: str, threads: int, runs: int, workdir: Path) -> dict[str, Any]:
    import runtime

    path, shapes = model_source(name)
    models, steps = {}, 0
    for mode in ("auto", "off"):
        result = compile_model(
            path, workdir / f"{name}-{mode}.hai", CompileOptions(input_shapes=shapes, entry=mode)
        )
        models[mode] = runtime.load(result.path, threads=threads)
        steps = len(result.plan.kernels)
    assert models["auto"].manifest.plan.entry is not None, f"{name}: no entry function"
    feeds = bench.sample_inputs(models["off"].inputs)
    fastest = fastest_runs(models, feeds, runs)
    overhead = {mode: bench.python_overhead_us(model, feeds, runs) for mode, model in models.items()}
    direct = entry_call_overhead_us(models["auto"], feeds, runs)
    return {"model": name, "steps": steps, "fastest_us": fastest, "python_overhead_us": overhead,
            "entry_run_minus_call_us": direct}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--model", nargs="*", default=[DIGITS, "ppocr_cls", "magika"])
    args = parser.parse_args()
    print(f"{'model':<10} {'steps':>5} {'run entry µs':>13} {'run steps µs':>13} {'saved µs':>9} "
          f"{'overhead entry µs':>18} {'overhead steps µs':>18} {'entry run-call µs':>18}")  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="hai-entry-bench-") as tmp:
        for name in args.model:
            row = measure(name, args.threads, args.runs, Path(tmp))
            fast, over = row["fastest_us"], row["python_overhead_us"]
            saved, direct = fast["off"] - fast["auto"], row["entry_run_minus_call_us"]
            print(f"{name:<10} {row['steps']:>5} {fast['auto']:>13.1f} {fast['off']:>13.1f} {saved:>9.1f} "
                  f"{over['auto']:>18.1f} {over['off']:>18.1f} {direct:>18.1f}")  # fmt: skip


if __name__ == "__main__":
    main()
