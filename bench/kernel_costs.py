"""Predicted against measured time per kernel: how well targets/kernel_costs.py knows each device.

For each target (the host CPU's x86/arm64, OpenCL's device 0) and each dev model
(hai_compiler/real_models.py and the embedded digits CNN) it compiles the model, times every step
alone on the device (runtime/step_timing.py, what `hai bench --profile` does; the fastest of `--runs`,
as the profile's microbenchmarks are: on a shared host medians move with the load),
adds the steps of one kernel, and predicts each kernel from the compiled graph and the device's
measured profile: `--profile FILE` (`hai doctor --measure`), else the microbenchmarks run on the
device right before each model (a shared host's load drifts between a profile and a later run). The error of a
kernel is predicted / measured; a model's score is the fraction of its kernels within 2x (the goal:
90%). An OpenCL kernel is predicted with its launches from the artifact's kernel library (launch
count and occupancy); each row's `roofline_us` is the prediction without them, what the partition
pass sees, scored too. Kernels under `--floor` µs measured are reported but not scored (launch
noise). Measured times never feed the prediction here.

    .venv/bin/python bench/kernel_costs.py [--targets x86 opencl] [--models digits ppocr_cls]
        [--threads 2] [--runs 10] [--profile profile.json] [--json out.json] [--show 5]
        [--cpu-time --threads 1]   # on a shared host: process CPU time, for profile and kernels alike

A device without the compiler (the H100): `--device-json` reads bench/opencl_runner.py's JSON (run
with `--profile`), predicts each kernel it timed from the artifacts that ran (`--bundle`, else a
recompile for the bundle's device profile) and `--profile`'s measured `opencl:0`
(bench/device_kernel_costs.py); nothing runs here:

    .venv/bin/python bench/kernel_costs.py --device-json h100.json --profile h100_profile.json
        [--bundle BUNDLE] [--json out.json] [--show 5]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import device_kernel_costs as device_costs  # noqa: E402
from hai_compiler import doctor, microbench  # noqa: E402
from hai_compiler.compiler import CompileOptions, compile_model  # noqa: E402
from hai_compiler.demo import EMBEDDED_MODEL  # noqa: E402
from hai_compiler.real_models import MODELS  # noqa: E402
from ir.errors import HaiError  # noqa: E402
from ir.fusion import anchor_label  # noqa: E402
from runtime.microbench import measure  # noqa: E402
from targets.kernel_costs import anchor_of, kernel_seconds, measured_device  # noqa: E402
from targets.kernel_launches import KernelLaunches  # noqa: E402

HOST_TARGETS = ("x86", "arm64")


def model_source(name: str) -> tuple[Path, dict[str, Any], Any]:
    """(ONNX path, compile keywords, sample inputs) of a dev model or `digits`."""
    if name == "digits":
        import numpy as np

        x = np.random.default_rng(0).random((1, 1, 8, 8), np.float32)
        return EMBEDDED_MODEL, {"input_shapes": {"image": (1, 1, 8, 8)}}, {"image": x}
    model = MODELS[name]
    keywords = {"input_shapes": model.input_shapes, "input_values": model.input_values or None}
    return model.fetch(), keywords, model.sample_inputs()


def kernel_rows(name: str, target: str, device: str, speed: Any, threads: int, runs: int,
                folder: Path, cpu_time: bool) -> list[dict[str, Any]]:  # fmt: skip
    """Each kernel of `name` on `device`: its anchor, op, measured and predicted µs."""
    import runtime
    from runtime.step_timing import time_steps

    path, keywords, inputs = model_source(name)
    options = CompileOptions(target, **keywords)
    result = compile_model(path, folder / f"{name}.{target}.hai", options)
    model = runtime.load(result.path, threads=threads, device=None if target in HOST_TARGETS else device)
    by_label = {anchor_label(n): n for n in result.graph.nodes}
    measured: dict[int, list[Any]] = {}
    feeds = {k: v for k, v in inputs.items() if k in {b.name for b in model.inputs}}
    clock = time.process_time if cpu_time else time.perf_counter
    for step in time_steps(model, feeds, runs, best=True, clock=clock):
        node = by_label.get(step.nodes[0]) if step.nodes else None
        if node is None:  # a copy or relayout step the graph has no node for
            continue
        anchor = anchor_of(node)
        entry = measured.setdefault(id(anchor), [anchor, 0.0, []])
        entry[1] += step.median_us
        entry[2].append(step.kernel)
    library = device_costs.opencl_library(result.path) if target not in HOST_TARGETS else {}
    rows = []
    for anchor, measured_us, kernels in measured.values():
        launches = KernelLaunches.from_library(library, kernels)
        predicted = kernel_seconds(anchor, speed, result.target, threads, launches=launches) * 1e6
        rows.append({"model": name, "kernel": anchor_label(anchor), "op": anchor.op,
                     "measured_us": measured_us, "predicted_us": predicted,
                     "roofline_us": kernel_seconds(anchor, speed, result.target, threads) * 1e6,
                     "ratio": predicted / measured_us if measured_us > 0 else math.inf})  # fmt: skip
    model.close()
    return rows


def score(rows: list[dict[str, Any]], floor: float) -> dict[str, Any]:
    scored = [r for r in rows if r["measured_us"] >= floor]
    within = [r for r in scored if 0.5 <= r["ratio"] <= 2.0]
    logs = [abs(math.log(r["ratio"])) for r in scored if 0 < r["ratio"] < math.inf]
    return {
        "kernels": len(rows),
        "scored": len(scored),
        "within_2x": len(within) / len(scored) if scored else 1.0,
        "geo_mean_error": math.exp(sum(logs) / len(logs)) if logs else 1.0,
        "predicted_ms": sum(r["predicted_us"] for r in rows) / 1e3,
        "measured_ms": sum(r["measured_us"] for r in rows) / 1e3,
    }


def summary_line(summary: dict[str, Any]) -> str:
    return (
        f"kernels {summary['scored']:3d}/{summary['kernels']:3d}  within 2x {summary['within_2x']:6.1%}  "
        f"geo-mean error x{summary['geo_mean_error']:.2f}  predicted {summary['predicted_ms']:8.2f} ms  "
        f"measured {summary['measured_ms']:8.2f} ms"
    )


def overall(label: str, rows: list[dict[str, Any]], floor: float) -> dict[str, Any]:
    """Every kernel's score, and the roofline's alone (`roofline_us`: without launch facts), printed."""
    roofline = [{**r, "predicted_us": r["roofline_us"], "ratio": r["roofline_us"] / r["measured_us"]}
                for r in rows if r["measured_us"] > 0]  # fmt: skip
    scores = {"overall": score(rows, floor), "roofline_overall": score(roofline, floor)}
    print(f"{label}: {scores['overall']['within_2x']:.1%} of all kernels within 2x "
          f"(the roofline without launch facts: {scores['roofline_overall']['within_2x']:.1%})")  # fmt: skip
    return scores


def print_model(label: str, name: str, rows: list[dict[str, Any]], floor: float, show: int) -> dict[str, Any]:
    """Prints a model's summary line and its `show` worst kernels; returns the summary."""
    summary = score(rows, floor)
    print(f"{label:7s} {name:14s} {summary_line(summary)}", flush=True)
    worst = sorted(rows, key=lambda r: -abs(math.log(max(r["ratio"], 1e-9))))[:show]
    for r in worst:
        print(f"          {r['op']:18s} {r['kernel'][:40]:40s} measured {r['measured_us']:9.1f} "
              f"predicted {r['predicted_us']:9.1f} µs  x{r['ratio']:.2f}")  # fmt: skip
    return summary


def device_main(args: argparse.Namespace) -> int:
    """`--device-json`: the runner's measured steps against predictions (bench/device_kernel_costs.py)."""
    if args.profile is None:
        raise HaiError("--device-json needs --profile: the hardware profile measured on that device")
    report = device_costs.read_json(args.device_json, "the device runner's JSON")
    speed = measured_device(device_costs.read_json(args.profile, "the hardware profile"), "opencl:0")
    if args.bundle is not None:
        source = device_costs.bundle_artifacts(args.bundle)
    else:
        profile = report.get("bundle", {}).get("profile", "nvidia-h100")
        source = device_costs.recompiled_artifacts(list(device_costs.device_steps(report)), profile)
    with source as (index, folder):
        per_model = device_costs.device_report(report, index, folder, speed)
    out: dict[str, Any] = {"device_json": str(args.device_json), "profile": str(args.profile),
                           "floor_us": args.floor, "models": per_model}  # fmt: skip
    for name, entry in per_model.items():
        if "error" in entry:
            print(f"opencl  {name:14s} {entry['error']}")
            continue
        entry.update(print_model("opencl", name, entry["rows"], args.floor, args.show))
        if entry["unmatched"]:
            print(f"          {len(entry['unmatched'])} steps match no node of the artifact's IR")
        if unbuilt := [r["kernel"] for r in entry["rows"] if r["launches"] is None]:
            print(f"          {len(unbuilt)} kernels not in the artifact's kernel library: roofline alone")
    every = [r for m in per_model.values() for r in m.get("rows", [])]
    out["launch_check"] = device_costs.launch_check(every)
    for count, check in out["launch_check"].items():
        print(f"opencl: {check['kernels']} tiny kernels of {count} device kernel(s): median measured "
              f"{check['median_measured_us']:.1f} µs, launches {check['launches_us']:.1f} µs")  # fmt: skip
    syncs = [r["sync_ms"] for r in report.get("rows", []) if r.get("sync_ms") is not None]
    if syncs:
        out["sync_us"] = min(syncs) * 1e3
        print(f"opencl: one wait for the idle device {out['sync_us']:.1f} µs (each step's time includes one)")
    out.update(overall("opencl", every, args.floor))
    if args.json_path is not None:
        args.json_path.write_text(json.dumps(out, indent=2, default=str) + "\n")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--targets", nargs="+", default=["x86", "opencl"])
    parser.add_argument("--models", nargs="+", default=["digits", *MODELS])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=10, help="timed runs per kernel step")
    parser.add_argument("--profile-runs", type=int, default=20, help="timed runs per microbenchmark")
    parser.add_argument("--floor", type=float, default=0.0, help="µs below which a kernel is not scored")
    parser.add_argument("--profile", type=Path, default=None, help="a `hai doctor --measure` profile")
    parser.add_argument(
        "--cpu-time", action="store_true", help="time by process CPU time (a shared host; use --threads 1)"
    )
    parser.add_argument("--json", dest="json_path", type=Path, default=None)
    parser.add_argument("--show", type=int, default=5, help="worst kernels listed per model")
    parser.add_argument("--device-json", type=Path, default=None,
                        help="bench/opencl_runner.py's JSON: its steps against predictions")  # fmt: skip
    parser.add_argument("--bundle", type=Path, default=None,
                        help="with --device-json: the bundle that ran (else a recompile)")  # fmt: skip
    args = parser.parse_args()
    if args.device_json is not None:
        try:
            return device_main(args)
        except HaiError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    fixed = json.loads(args.profile.read_text()) if args.profile is not None else None
    report: dict[str, Any] = {"threads": args.threads, "runs": args.runs, "floor_us": args.floor,
                              "clock": "cpu" if args.cpu_time else "wall",
                              "profile": str(args.profile), "targets": {}}  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="hai-kernel-costs-") as tmp:
        for target in args.targets:
            device = "cpu" if target in HOST_TARGETS else f"{target}:0"
            folder = Path(tmp) / f"microbench-{target}"
            if fixed is None:
                spec = microbench.host_spec(doctor.scan()) if target in HOST_TARGETS else {"target": target}
                microbench.build(folder, [spec])
            per_model: dict[str, dict[str, Any]] = {}
            for name in args.models:
                # the device measured right before its model: the load of a shared host drifts
                runs, threads = args.profile_runs, args.threads
                profile = fixed or {"measured": measure(folder, runs, threads, args.cpu_time)}
                speed = measured_device(profile, device)
                try:
                    rows = kernel_rows(
                        name, target, device, speed, args.threads, args.runs, Path(tmp), args.cpu_time
                    )
                except HaiError as exc:  # a model the target cannot compile yet: said, not scored
                    print(f"{target:7s} {name:14s} not compiled: {exc}", flush=True)
                    per_model[name] = {"error": str(exc)}
                    continue
                summary = print_model(target, name, rows, args.floor, args.show)
                per_model[name] = {**summary, "measured": profile["measured"], "rows": rows}
            every = [r for m in per_model.values() for r in m.get("rows", [])]
            scores = overall(target, every, args.floor)
            report["targets"][target] = {"device": device, **scores, "models": per_model}
    if args.json_path is not None:
        args.json_path.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
