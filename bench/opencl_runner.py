"""Runs an OpenCL bundle (bench/opencl_bundle.py) on a machine without the compiler; writes one JSON file.

Needs python, numpy and onnxruntime only. The bundle's `payload.zip` (HAI's `runtime/`, models,
inputs, artifacts; or bench/ocr_bundle.py's `payload.tar.xz`) is unpacked into `work/payload` and the
runtime imported from there; its wheels (pyopencl and its dependencies, apache-tvm-ffi) are unpacked
into `work/site` when pyopencl is not importable already. If the ICD loader lists no NVIDIA platform,
the driver's `libnvidia-opencl.so.1` is registered in an icd folder of the bundle (with the system's icds) and
`OCL_ICD_VENDORS` points at it before pyopencl is imported. Then, per model and batch: on the NVIDIA
platform, outputs against onnxruntime (fp32 ≤ 1e-4 relative error), latency p50 at batch 1 and
throughput at every batch; onnxruntime's own on all CPU threads (and CUDA if installed) on the same
inputs; on PoCL, correctness at batch 1 only. Each HAI row runs in a child process of its own, under
`--row-timeout` (a driver that crashes or hangs loses that row only; how a child ended is recorded);
`--profile N` adds each row's N slowest kernels. A failure is a row with its error, never the end of the
run. Standalone: imports the standard library, numpy, onnxruntime and (from the bundle) `runtime`.

    python3.12 runner.py --json out.json [--work DIR] [--platform NVIDIA] [--budget-s 380] [--models M ...]
"""

from __future__ import annotations

import argparse
import faulthandler
import glob
import json
import os
import platform as host_platform
import re
import shutil
import subprocess
import sys
import tarfile
import time
import traceback
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

TOLERANCE = 1e-4
POCL = "Portable Computing Language"
NVIDIA_LIBRARY = "libnvidia-opencl.so.1"
LIBRARY_FOLDERS = ("/usr/lib/x86_64-linux-gnu", "/usr/local/nvidia/lib64", "/usr/lib64", "/usr/lib",
                   "/usr/local/cuda/lib64", "/usr/lib/x86_64-linux-gnu/nvidia/current")  # fmt: skip
SYSTEM_VENDORS = "/etc/OpenCL/vendors"


def log(message: str) -> None:
    print(f"[runner {time.strftime('%H:%M:%S')}] {message}", flush=True)


def unpack_wheels(bundle: Path, work: Path) -> dict[str, Any]:
    """Makes pyopencl and tvm_ffi importable: the bundle's wheels unpacked into `work/site` unless
    this python imports them already (a wheel is a zip of the installed files)."""
    import importlib.util

    if importlib.util.find_spec("pyopencl") and importlib.util.find_spec("tvm_ffi"):
        return {"wheels": "already importable"}
    site = work / "site"
    tag = f"cp{sys.version_info.major}{sys.version_info.minor}"
    wheels = sorted((bundle / "wheels").glob("*.whl"))
    unpacked = []
    for wheel in wheels:
        abi = wheel.name.split("-")[2]
        if abi.startswith("cp") and abi != tag:
            raise RuntimeError(
                f"{wheel.name} is for {abi}, this python is {tag}: run the bundle with python3.12"
            )
        marker = site / f".{wheel.name}.done"
        if not marker.exists():
            with zipfile.ZipFile(wheel) as archive:
                archive.extractall(site)
            marker.touch()
        unpacked.append(wheel.name)
    sys.path.insert(0, str(site))
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))
    return {"wheels": unpacked, "site": str(site)}


def unpack_payload(bundle: Path, work: Path) -> Path:
    """The folder of the bundle's payload.zip (or payload.tar.xz) unpacked, once per payload file; a
    folder without either is its own payload."""
    payload = next((bundle / n for n in ("payload.zip", "payload.tar.xz") if (bundle / n).exists()), None)
    if payload is None:
        return bundle
    folder = work / "payload"
    marker = folder / f".unpacked-{payload.stat().st_size}-{int(payload.stat().st_mtime)}"
    if not marker.exists():
        shutil.rmtree(folder, ignore_errors=True)
        if payload.suffix == ".zip":
            with zipfile.ZipFile(payload) as archive:
                archive.extractall(folder)
        else:
            with tarfile.open(payload) as archive:
                archive.extractall(folder, filter="data")
        marker.touch()
    return folder


def list_platforms() -> list[str]:
    """Platform names the ICD loader lists, probed in a child process (pyopencl reads the icds once)."""
    code = "import pyopencl as cl, json; print(json.dumps([p.name for p in cl.get_platforms()]))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        return []
    return json.loads(done.stdout.strip().splitlines()[-1])


def find_nvidia_library() -> str | None:
    """The NVIDIA driver's OpenCL library: the usual folders, then `ldconfig -p`."""
    for folder in LIBRARY_FOLDERS:
        path = Path(folder) / NVIDIA_LIBRARY
        if path.exists():
            return str(path)
    try:
        listed = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        listed = ""
    match = re.search(rf"{re.escape(NVIDIA_LIBRARY)}.*=>\s*(\S+)", listed)
    return match.group(1) if match else None


def register_nvidia(work: Path) -> dict[str, Any]:
    """If no NVIDIA platform is listed: an icd folder with the system's icds and nvidia.icd, in
    `OCL_ICD_VENDORS` (set before this process imports pyopencl)."""
    before = list_platforms()
    report: dict[str, Any] = {"platforms_before": before}
    if any("NVIDIA" in name for name in before):
        return report
    library = find_nvidia_library()
    report["nvidia_library"] = library
    if library is None:
        report["icd"] = f"no NVIDIA platform and no {NVIDIA_LIBRARY} found"
        return report
    vendors = work / "vendors"
    vendors.mkdir(parents=True, exist_ok=True)
    existing = os.environ.get("OCL_ICD_VENDORS") or SYSTEM_VENDORS
    for icd in glob.glob(os.path.join(existing, "*.icd")) if os.path.isdir(existing) else []:
        (vendors / os.path.basename(icd)).write_text(Path(icd).read_text())
    (vendors / "nvidia.icd").write_text(library + "\n")
    os.environ["OCL_ICD_VENDORS"] = str(vendors)
    report["icd"] = f"registered {library} in {vendors}"
    report["platforms_after"] = list_platforms()
    return report


def relative_error(actual: np.ndarray, reference: np.ndarray) -> float:
    """‖actual − reference‖₂ / ‖reference‖₂ (hai_compiler/accuracy.py's measure)."""
    a, r = np.asarray(actual, np.float64), np.asarray(reference, np.float64)
    if a.shape != r.shape:
        raise ValueError(f"shape {a.shape} differs from onnxruntime's {r.shape}")
    norm = float(np.linalg.norm(r.ravel()))
    diff = float(np.linalg.norm((a - r).ravel()))
    return diff / norm if norm > 0 else diff


def batch_inputs(inputs: dict[str, np.ndarray], batch: int) -> dict[str, np.ndarray]:
    """Batch-1 inputs made `batch` deep: sample k is sample 0 rolled by 7k along the last axis."""
    return {
        name: np.ascontiguousarray(np.concatenate([np.roll(x, 7 * k, axis=-1) for k in range(batch)]))
        for name, x in inputs.items()
    }


def timed(call: Any, max_runs: int, seconds: float) -> list[float]:
    """Seconds of each call after one warm-up: up to `max_runs`, at least 3, within about `seconds`."""
    call()
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < max_runs and (len(times) < 3 or time.perf_counter() - start < seconds):
        t = time.perf_counter()
        call()
        times.append(time.perf_counter() - t)
    return times


def speed(times: list[float], batch: int) -> dict[str, float]:
    per_second = batch * len(times) / sum(times)
    return {
        "latency_ms_p50": float(np.median(times)) * 1e3,
        "throughput_per_s": per_second,
        "runs": len(times),
    }


class Runner:
    def __init__(self, bundle: Path, args: argparse.Namespace) -> None:
        self.bundle = bundle
        self.args = args
        self.start = time.monotonic()
        self.index = json.loads((bundle / "bundle.json").read_text())
        self.rows: list[dict[str, Any]] = []
        self.references: dict[tuple[str, int], dict[str, np.ndarray]] = {}
        self.deadline = args.budget_s
        self.work = Path(getattr(args, "work", None) or bundle / "work")

    def phase(self, share: float) -> None:
        """The next rows start only until `share` of the time budget has passed since the start (what a
        phase leaves unused goes to the next), so onnxruntime and PoCL keep their time."""
        self.deadline = share * self.args.budget_s

    def over_budget(self) -> bool:
        return time.monotonic() - self.start > self.deadline

    def inputs(self, model: dict[str, Any], batch: int) -> dict[str, np.ndarray]:
        one = {name: np.load(self.bundle / path) for name, path in model["inputs"].items()}
        return one if batch == 1 else batch_inputs(one, batch)

    def guarded(self, row: dict[str, Any], work: Any) -> None:
        label = " ".join(f"{k}={v}" for k, v in row.items())
        try:
            if self.over_budget():
                raise TimeoutError(f"skipped: this phase's share of --budget-s {self.args.budget_s} is spent")
            row.update(work())
            row["ok"] = row.get("ok", True)
        except Exception as exc:  # one model's failure is its row, never the end of the run
            row.update(ok=False, error=f"{type(exc).__name__}: {exc}"[:2000],
                       traceback=traceback.format_exc()[-3000:])  # fmt: skip
        self.rows.append(row)
        shown = {k: v for k, v in row.items() if k not in ("traceback", "engine", "model", "batch")}
        log(f"{label}: " + ("ok " if row["ok"] else "FAILED ") + json.dumps(shown, default=str))

    def onnxruntime_session(self, model: dict[str, Any], provider: str) -> Any:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = os.cpu_count() or 1
        return ort.InferenceSession(str(self.bundle / model["onnx"]), options, providers=[provider])

    def reference(self, model: dict[str, Any], batch: int) -> dict[str, np.ndarray]:
        key = (model["name"], batch)
        if key not in self.references:
            session = self.onnxruntime_session(model, "CPUExecutionProvider")
            names = [o.name for o in session.get_outputs()]
            self.references[key] = dict(
                zip(names, session.run(names, self.inputs(model, batch)), strict=True)
            )
        return self.references[key]

    def run_onnxruntime(self, provider: str) -> None:
        for model in self.index["models"]:
            for batch in sorted(int(b) for b in model["artifacts"]):
                row = {"engine": f"onnxruntime-{provider.removesuffix('ExecutionProvider').lower()}",
                       "model": model["name"], "batch": batch, "threads": os.cpu_count()}  # fmt: skip
                self.guarded(row, lambda m=model, b=batch, p=provider: self.onnxruntime_speed(m, b, p))

    def onnxruntime_speed(self, model: dict[str, Any], batch: int, provider: str) -> dict[str, Any]:
        session = self.onnxruntime_session(model, provider)
        inputs = self.inputs(model, batch)
        return speed(timed(lambda: session.run(None, inputs), self.args.runs, self.args.seconds), batch)

    def run_hai(self, platform: str, timing: bool) -> None:
        """Every artifact on the first device of the platform named `platform` (timed), or batch 1 only;
        each row in a child process of its own (`child_row`)."""
        for model in self.index["models"]:
            batches = sorted(int(b) for b in model["artifacts"])
            for batch in batches if timing else [1]:
                row = {"engine": "hai-opencl", "platform": platform, "model": model["name"], "batch": batch}
                spec = {"model": model["name"], "batch": batch, "platform": platform, "timing": timing}
                self.guarded(row, lambda s=spec: self.child_row(s))

    def child_row(self, spec: dict[str, Any]) -> dict[str, Any]:
        """One HAI row measured by `python runner.py --child SPEC` (a driver that crashes or hangs takes
        its process, not the run, along): its JSON, plus how the child ended when not cleanly."""
        out = self.work / "rows" / f"{spec['model']}-{spec['batch']}-{len(self.rows)}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(spec), "--json",
                   str(out), "--bundle", str(self.bundle), "--runs", str(self.args.runs), "--seconds",
                   str(self.args.seconds), "--profile", str(self.args.profile),
                   "--row-timeout", str(self.args.row_timeout)]  # fmt: skip
        env = dict(os.environ, HAI_OPENCL_DEVICE=spec["platform"])
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(self.bundle), env.get("PYTHONPATH")]))
        try:
            done = subprocess.run(
                command, env=env, capture_output=True, text=True, timeout=self.args.row_timeout
            )
        except subprocess.TimeoutExpired as exc:
            tails = [text.decode(errors="replace") if isinstance(text, bytes) else text or ""
                     for text in (exc.stdout, exc.stderr)]  # fmt: skip
            raise TimeoutError(f"no result within --row-timeout {self.args.row_timeout:.0f} s; last output: "
                               f"{tails[0][-1500:]!r}; stderr: {tails[1][-2500:]!r}") from None  # fmt: skip
        if not out.exists():
            ended = exit_description(done.returncode)
            raise RuntimeError(f"the child ended ({ended}) before writing its row; stdout: "
                               f"{done.stdout[-1500:]!r}; stderr: {done.stderr[-3000:]!r}")  # fmt: skip
        result: dict[str, Any] = json.loads(out.read_text())
        if done.returncode:
            result["exit"] = exit_description(done.returncode)
        if result.pop("failed", None):
            raise RuntimeError(result.get("error", "the child failed"))
        return result


def exit_description(returncode: int) -> str:
    """`exit status N` or `killed by SIGSEGV` for a child's return code."""
    if returncode < 0:
        import signal

        return f"killed by {signal.Signals(-returncode).name}"
    return f"exit status {returncode}"


def hai_row(bundle: Path, spec: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """The child's work: load the artifact on `opencl:0` and, with --profile N, run it step by step
    first (each step's time printed as it ends, so a hang names its kernel; the N slowest kept); then
    check it against onnxruntime and time it. Progress goes to stdout (the parent shows its tail)."""
    import runtime

    model = next(m for m in json.loads((bundle / "bundle.json").read_text())["models"]
                 if m["name"] == spec["model"])  # fmt: skip
    runner = Runner(bundle, args)
    batch = int(spec["batch"])
    inputs = runner.inputs(model, batch)
    log(f"{spec['model']} batch {batch}: loading (builds the OpenCL program)")
    t = time.perf_counter()
    loaded = runtime.load(bundle / model["artifacts"][str(batch)], device="opencl:0")
    result: dict[str, Any] = {"load_s": time.perf_counter() - t}
    log(f"loaded in {result['load_s']:.1f} s")
    if args.profile:
        schedules = kernel_schedules(bundle / model["artifacts"][str(batch)])
        result["slowest_kernels"] = slowest_steps(loaded, inputs, args.profile, schedules)
    t = time.perf_counter()
    got = loaded.run(inputs)
    result["first_run_s"] = time.perf_counter() - t
    want = runner.reference(model, batch)
    errors = {name: relative_error(got[name], expected) for name, expected in want.items()}
    result.update(max_relative_error=max(errors.values()), ok=max(errors.values()) <= TOLERANCE)
    if spec["timing"]:
        result.update(speed(timed(lambda: loaded.run(inputs), args.runs, args.seconds), batch))
    return result


def kernel_schedules(artifact: Path) -> dict[str, str]:
    """The thread rule that scheduled each kernel of `artifact`'s OpenCL library (targets/opencl/)."""
    from runtime.artifact import kernel_library_file

    library = json.loads((artifact / kernel_library_file("opencl")).read_text())
    return {name: str(kernel.get("schedule", "")) for name, kernel in library["kernels"].items()}


def slowest_steps(
    loaded: Any, inputs: dict[str, np.ndarray], count: int, schedules: dict[str, str]
) -> list[dict[str, Any]]:
    """Runs the model's steps one at a time, waiting for the device after each (3 passes, the first
    printed step by step): the `count` slowest steps (kernel, the rule in `schedules` that scheduled
    it, first nodes, best ms), after a line with the steps' total. Mirrors
    `runtime.model.Model._execute` (the bundle's own runtime)."""
    from runtime.model import typed_view

    bound = loaded._bind_inputs(inputs)
    best: list[float] = [float("inf")] * len(loaded._steps)
    for attempt in range(3):
        for index, (step, (run, fed, _, wait, guards)) in enumerate(
            zip(loaded._steps, loaded._calls, strict=True)
        ):
            if wait is not None:
                wait()
            if guards:
                continue
            for bind, name, position, slot in fed:
                array = bound[name]
                if slot is not None:  # a part of the input (aligned: Model._execute)
                    array = typed_view(array.reshape(-1).view(np.uint8), slot.offset, slot.shape, slot.dtype)
                bind(position, array)
            if attempt == 0:
                log(f"step {index} {step.kernel}: starting")
            t = time.perf_counter()
            run()
            loaded.devices[step.device].synchronize()
            best[index] = min(best[index], time.perf_counter() - t)
            if attempt == 0:
                log(f"step {index} {step.kernel} ({', '.join(step.nodes[:2])}): {best[index] * 1e3:.3f} ms")
    timed_steps = [
        (step, seconds) for step, seconds in zip(loaded._steps, best, strict=True) if seconds < 1e9
    ]
    steps = [
        {"kernel": step.kernel, "schedule": schedules.get(step.kernel, ""), "nodes": list(step.nodes)[:3],
         "ms": seconds * 1e3}
        for step, seconds in timed_steps
    ]  # fmt: skip
    steps.sort(key=lambda s: -s["ms"])
    return [{"steps_total_ms": sum(s["ms"] for s in steps), "steps": len(steps)}, *steps[:count]]


def child_main(args: argparse.Namespace) -> int:
    """`--child SPEC`: one HAI row (`hai_row`) written to --json, a failure as `failed` + its error."""
    bundle = args.bundle.resolve()
    faulthandler.dump_traceback_later(max(args.row_timeout - 10, 1), exit=True)  # where a hang hangs
    try:
        result = hai_row(bundle, json.loads(args.child), args)
    except Exception as exc:
        result = {"failed": True, "error": f"{type(exc).__name__}: {exc}"[:2000],
                  "traceback": traceback.format_exc()[-3000:]}  # fmt: skip
    args.json.write_text(json.dumps(result, default=str))
    return 0


def device_inventory() -> dict[str, Any]:
    from runtime.opencl_probe import opencl_inventory

    return opencl_inventory()


def prepare(bundle: Path, work: Path) -> tuple[Path, dict[str, Any]]:
    """The payload unpacked into `work` (and put on sys.path), the wheels made importable, NVIDIA's
    icd registered, the OpenCL devices listed: the payload folder and the report's setup facts (with
    `setup_error` when a step failed)."""
    work.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("HAI_CACHE_DIR", str(work / "cache"))
    os.environ.setdefault("POCL_CACHE_DIR", os.path.join(os.environ["HAI_CACHE_DIR"], "pocl"))
    log(f"unpacking the payload of {bundle}")
    payload = unpack_payload(bundle, work)
    sys.path.insert(0, str(payload))  # HAI's runtime/ package
    report: dict[str, Any] = {
        "python": sys.version,
        "machine": host_platform.platform(),
        "cpus": os.cpu_count(),
    }
    try:
        import onnxruntime

        report["onnxruntime"] = {"version": onnxruntime.__version__,
                                 "providers": onnxruntime.get_available_providers()}  # fmt: skip
        log(f"python {sys.version.split()[0]}, onnxruntime {onnxruntime.__version__}, {os.cpu_count()} CPUs")
        report["setup"] = unpack_wheels(bundle, work)
        report["icd"] = register_nvidia(work)
        log(f"icd: {report['icd']}")
        report["opencl"] = device_inventory()
        for p in report["opencl"]["platforms"]:
            log(f"platform {p.get('name')}: " + ", ".join(d["name"] for d in p.get("devices", [])))
    except Exception as exc:
        report["setup_error"] = f"{type(exc).__name__}: {exc}"
        report["traceback"] = traceback.format_exc()
        log(f"setup failed: {report['setup_error']}")
    return payload, report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, required=True, help="where to write the results")
    parser.add_argument("--bundle", type=Path, default=Path(__file__).resolve().parent)
    parser.add_argument("--work", type=Path, help="unpacked wheels, icds, caches (default: BUNDLE/work)")
    parser.add_argument(
        "--budget-s", type=float, default=380.0, help="stop measuring after this many seconds"
    )
    parser.add_argument("--runs", type=int, default=50, help="at most this many timed runs per row")
    parser.add_argument("--seconds", type=float, default=2.0, help="time each row for about this long")
    parser.add_argument("--platform", default="NVIDIA", help="the platform timed (a platform-name substring)")
    parser.add_argument("--no-pocl", action="store_true", help="skip the PoCL correctness pass")
    parser.add_argument("--models", nargs="+", help="only these models (default: every bundled one)")
    parser.add_argument("--row-timeout", type=float, default=150.0,
                        help="seconds one HAI row (load, check, timing) may take")  # fmt: skip
    parser.add_argument("--profile", type=int, default=0, help="report each row's N slowest kernels")
    parser.add_argument("--child", help=argparse.SUPPRESS)  # one HAI row, run by the parent (child_row)
    args = parser.parse_args(argv)
    if args.child:
        return child_main(args)
    bundle = args.bundle.resolve()
    work = (args.work or bundle / "work").resolve()
    payload, report = prepare(bundle, work)
    args.work = work
    runner = Runner(payload, args)
    if args.models:
        runner.index["models"] = [m for m in runner.index["models"] if m["name"] in args.models]
    report["bundle"] = {k: v for k, v in runner.index.items() if k != "models"}
    names = " ".join(p.get("name", "") for p in report.get("opencl", {}).get("platforms", []))
    if "setup_error" not in report:
        report["platform"] = args.platform
        absent = [name for name in (args.platform, POCL) if name not in names]
        report["absent"] = [f"the ICD loader lists no platform named {name!r}" for name in absent]
        for line in report["absent"]:
            log(line)
        if args.platform not in absent:
            runner.phase(0.55)
            runner.run_hai(args.platform, timing=True)
        runner.phase(0.8)
        runner.run_onnxruntime("CPUExecutionProvider")
        if "CUDAExecutionProvider" in report["onnxruntime"]["providers"]:
            runner.phase(0.85)
            runner.run_onnxruntime("CUDAExecutionProvider")
        if POCL not in absent and not args.no_pocl and args.platform not in POCL:
            runner.phase(1.0)
            runner.run_hai(POCL, timing=False)
    return write_report(report, runner.rows, runner.start, args.json)


def write_report(report: dict[str, Any], rows: list[dict[str, Any]], start: float, path: Path) -> int:
    """`report` with its rows and seconds since `start` written to `path` as JSON, the tally logged;
    the runner's exit code (0: failed rows are results too)."""
    report["rows"] = rows
    report["seconds"] = time.monotonic() - start
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=1, default=str))
    failed = [r for r in rows if not r["ok"]]
    log(f"{len(rows)} rows, {len(failed)} failed, {report['seconds']:.0f} s: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
