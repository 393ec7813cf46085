"""Runs the OCR bundle (bench/ocr_bundle.py) on a machine without the compiler; writes one JSON file.

Rule: every engine reads the same pages through the same pipeline (the bundle's ocr_pipeline.py:
det -> numpy crop -> cls -> rec) and runs the same stream of single inputs through one model; only
the three models differ. Engines: onnxruntime on all CPU threads (the peer, in this process), and
each bundled HAI engine (`hai-x86`, `hai-opencl` on the platform named `--platform`,
`hai-partitioned`) in a child process of its own under `--row-timeout` (a driver that crashes or
hangs loses that engine's unfinished rows only; the child writes each row as it ends). Per engine:
- `ocr`: a warm-up page, then every page alone (p50/p99 ms per page), then the pages streamed
  through `read_pages` (det of page i+1 beside cls/rec of page i) for at least `--seconds`: pages/s,
  p50/p99 ms from a page entering to its lines leaving, energy per page; HAI's lines (warm-up
  included) must equal onnxruntime's;
- `stream`: `--stream N` inputs of the stream model one after another (input k is the sample
  rolled by k along its width): inferences/s, p50/p99 ms, energy per inference, the first 8 outputs
  against onnxruntime.
Energy is runtime/energy.py's meter (RAPL, NVML; unreadable sources listed with why, never guessed).
Engines start while `--budget-s` lasts; a child's timeout is cut to what is left. Setup (payload,
wheels, NVIDIA's icd) is opencl_runner's; nvidia-ml-py's wheel is unpacked when pynvml is missing.

    python3.12 runner.py --json ocr.json [--platform NVIDIA] [--budget-s 480] [--pages N] [--stream 1000]
"""

from __future__ import annotations

import argparse
import faulthandler
import importlib.util
import itertools
import json
import os
import subprocess
import sys
import time
import traceback
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from opencl_runner import exit_description, log, prepare, relative_error, write_report

ROWS = ("ocr", "stream")
PROBES = 8  # stream outputs checked against onnxruntime


def add_pynvml(bundle: Path, work: Path) -> str:
    """Makes pynvml importable from the bundle's nvidia-ml-py wheel (pure Python) unless it is already."""
    if importlib.util.find_spec("pynvml"):
        return "already importable"
    wheels = sorted((bundle / "wheels").glob("nvidia_ml_py-*.whl"))
    if not wheels:
        return "no nvidia-ml-py wheel in the bundle"
    site = work / "site-nvml"
    with zipfile.ZipFile(wheels[-1]) as archive:
        archive.extractall(site)
    sys.path.insert(0, str(site))
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))
    return wheels[-1].name


def percentiles(seconds: list[float]) -> dict[str, float]:
    return {
        "p50_ms": float(np.percentile(seconds, 50)) * 1e3,
        "p99_ms": float(np.percentile(seconds, 99)) * 1e3,
    }


def energy_facts(energy: Any) -> dict[str, Any]:
    """runtime.energy.Energy as JSON: joules per item per source, how read, the total, what is unavailable."""
    return {"per_item_j": energy.per_inference(), "methods": energy.methods,
            "total_per_item_j": energy.total_per_inference, "seconds": energy.seconds,
            "unavailable": [{"source": u.name, "reason": u.reason, "exists": u.exists}
                            for u in energy.unavailable]}  # fmt: skip


def line_facts(lines: list[Any]) -> list[list[Any]]:
    """A page's lines as JSON: box, flipped, text."""
    return [[list(line.box), line.flipped, line.text] for line in lines]


class Workload:
    """The bundle's pages and stream inputs, and the measurements every engine goes through."""

    def __init__(self, payload: Path, args: argparse.Namespace) -> None:
        self.payload, self.args = payload, args
        self.index = json.loads((payload / "bundle.json").read_text())
        stack = np.load(payload / self.index["pages"])
        count = args.pages or len(stack)
        self.pages = [stack[k % len(stack)] for k in range(count)]
        sample = np.load(payload / self.index["stream_input"])
        self.stream_inputs = [np.ascontiguousarray(np.roll(sample, k, axis=-1)) for k in range(args.stream)]

    def ocr(self, models: Any, meter: Any) -> dict[str, Any]:
        """The `ocr` row of `models` (module doc); `lines` per page for the parent's comparison."""
        from ocr_pipeline import read_page, read_pages

        warmup = read_page(self.pages[0], models)
        alone, serial = [], []
        for page in self.pages:
            t = time.perf_counter()
            serial.append(read_page(page, models))
            alone.append(time.perf_counter() - t)
        entered: list[float] = []
        left: list[float] = []
        streamed: list[Any] = []

        def feed() -> Iterator[np.ndarray]:
            began = time.perf_counter()
            for k in itertools.count():
                if k >= len(self.pages) and time.perf_counter() - began >= self.args.seconds:
                    return
                entered.append(time.perf_counter())
                yield self.pages[k % len(self.pages)]

        def block() -> int:
            for lines in read_pages(feed(), models):
                left.append(time.perf_counter())
                streamed.append(lines)
            return len(streamed)

        energy = meter.measure(block)
        if streamed[: len(serial)] != serial:
            raise RuntimeError("the streamed pipeline read other lines than page-by-page reading")
        count = sum(len(lines) for lines in serial)
        return {"pages": len(self.pages), "lines_per_page": count / len(self.pages),
                "serial": {"pages_per_s": len(alone) / sum(alone), **percentiles(alone)},
                "stream": {"pages": len(streamed), "pages_per_s": len(streamed) / energy.seconds,
                           **percentiles([b - a for a, b in zip(entered, left, strict=False)])},
                "energy_per_page": energy_facts(energy),
                "lines": [line_facts(page) for page in [warmup, *serial]]}  # fmt: skip

    def stream(self, run: Callable[[np.ndarray], np.ndarray], meter: Any) -> dict[str, Any]:
        """The `stream` row of one model's `run` (input -> its only output; module doc)."""
        import onnxruntime as ort

        model = self.index["models"][self.index["stream_model"]]
        reference = ort.InferenceSession(
            str(self.payload / model["onnx"]), providers=["CPUExecutionProvider"]
        )
        probes = self.stream_inputs[:PROBES]
        name = reference.get_inputs()[0].name
        error = max(relative_error(run(x), reference.run(None, {name: x})[0]) for x in probes)
        run(self.stream_inputs[0])
        seconds: list[float] = []

        def block() -> int:
            for x in self.stream_inputs:
                t = time.perf_counter()
                run(x)
                seconds.append(time.perf_counter() - t)
            return len(seconds)

        energy = meter.measure(block)
        return {"model": model["name"], "inputs": len(seconds), "per_s": len(seconds) / sum(seconds),
                **percentiles(seconds), "energy_per_inference": energy_facts(energy),
                "max_relative_error": error, "ok": error <= 1e-4}  # fmt: skip


def only_output(model: Any, name: str) -> Callable[[np.ndarray], np.ndarray]:
    return lambda x: next(iter(model.run({name: x}).values()))


def engine_rows(
    engine: str, payload: Path, args: argparse.Namespace, write: Callable[[str, dict], None]
) -> None:
    """Measures one engine's rows, each handed to `write` as it ends (a row that fails is its error):
    onnxruntime in the runner's process, HAI in a child."""
    from runtime.energy import EnergyMeter

    sys.path.insert(0, str(payload / "ocr"))
    from ocr_pipeline import OcrModels, OnnxRunner

    workload = Workload(payload, args)
    meter = EnergyMeter.discover()
    threads = os.cpu_count() or 1
    stream_model = None
    if engine == "onnxruntime-cpu":
        models: Any = OcrModels(
            **{
                role: OnnxRunner(str(payload / m["onnx"]), threads)
                for role, m in workload.index["models"].items()
            },
            alphabet=workload.index["alphabet"],
        )
    else:
        import runtime

        options = workload.index["engines"][engine]["options"]
        device = "opencl:0" if options["target"] == "opencl" else None
        artifacts = workload.index["engines"][engine]["artifacts"]
        loaded = {}
        for role, path in artifacts.items():
            t = time.perf_counter()
            loaded[role] = runtime.load(payload / path, threads=threads, device=device)
            log(f"{engine}: {role} loaded in {time.perf_counter() - t:.1f} s")
        stream_model = loaded.pop("stream", None)  # the stream's model at batch 1 (cls and rec read batches)
        models = OcrModels(**loaded, alphabet=workload.index["alphabet"])
    stream_model = stream_model or getattr(models, workload.index["stream_model"])
    run = only_output(stream_model, stream_model.inputs[0].name)
    measures = {"ocr": lambda: workload.ocr(models, meter), "stream": lambda: workload.stream(run, meter)}
    for kind, measure in measures.items():
        try:
            write(kind, measure())
        except Exception as exc:  # a failed row; the next one still runs
            write(kind, {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:2000],
                         "traceback": traceback.format_exc()[-2000:]})  # fmt: skip


class Rows:
    """The rows measured so far; each engine's rows start while the budget lasts."""

    def __init__(self, payload: Path, args: argparse.Namespace) -> None:
        self.payload, self.args, self.start = payload, args, time.monotonic()
        self.rows: list[dict[str, Any]] = []

    def left_s(self) -> float:
        return self.args.budget_s - (time.monotonic() - self.start)

    def engine(self, engine: str) -> None:
        """`engine`'s rows: measured here (onnxruntime) or by a child. A row the engine did not finish
        carries the error; one it finished keeps its figures, with how the child ended if not cleanly."""
        got: dict[str, Any] = {}
        error = None
        try:
            if self.left_s() <= 0:
                raise TimeoutError(f"skipped: --budget-s {self.args.budget_s} is spent")
            if engine == "onnxruntime-cpu":
                engine_rows(engine, self.payload, self.args, got.__setitem__)
            else:
                got, error = self.child(engine)
        except Exception as exc:  # one engine's failure is its rows, never the end of the run
            error = f"{type(exc).__name__}: {exc}"[:3000]
        for kind in ROWS:
            row = {"engine": engine, "workload": kind, **got.get(kind, {})}
            if kind not in got:
                row.update(ok=False, error=error or "the engine wrote no such row")
            elif error:
                row["exit"] = error
            row.setdefault("ok", True)
            self.rows.append(row)
            shown = {k: v for k, v in row.items() if k != "lines"}
            log(
                f"{engine} {kind}: "
                + ("ok " if row["ok"] else "FAILED ")
                + json.dumps(shown, default=str)[:1500]
            )

    def child(self, engine: str) -> tuple[dict[str, Any], str | None]:
        """`python runner.py --child ENGINE`'s rows, and its error or how it ended when not cleanly."""
        out = Path(self.args.work) / "rows" / f"{engine}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.unlink(missing_ok=True)
        timeout = min(self.args.row_timeout, self.left_s())
        command = [sys.executable, str(Path(__file__).resolve()), "--child", engine, "--json", str(out),
                   "--bundle", str(self.payload), "--pages", str(self.args.pages), "--stream",
                   str(self.args.stream), "--seconds", str(self.args.seconds),
                   "--row-timeout", str(timeout)]  # fmt: skip
        env = dict(os.environ, HAI_OPENCL_DEVICE=self.args.platform)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(self.payload), env.get("PYTHONPATH")]))
        ended = None
        try:
            done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
            if done.returncode:
                ended = (
                    f"the child ended ({exit_description(done.returncode)}); stderr: {done.stderr[-2500:]!r}"
                )
        except subprocess.TimeoutExpired as exc:
            tail = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else exc.stderr or ""
            ended = f"the child did not end within {timeout:.0f} s; stderr: {tail[-2500:]!r}"
        got: dict[str, Any] = json.loads(out.read_text()) if out.exists() else {}
        return got, got.pop("error", None) or ended


def child_main(args: argparse.Namespace) -> int:
    """`--child ENGINE`: its rows written to --json as each ends; a failure as `error`."""
    faulthandler.dump_traceback_later(max(args.row_timeout - 10, 1), exit=True)  # where a hang hangs
    rows: dict[str, Any] = {}

    def write(kind: str, row: dict[str, Any]) -> None:
        rows[kind] = row
        args.json.write_text(json.dumps(rows, default=str))

    try:
        engine_rows(args.child, args.bundle.resolve(), args, write)
    except Exception as exc:
        rows["error"] = f"{type(exc).__name__}: {exc}"[:2000] + "\n" + traceback.format_exc()[-2000:]
        args.json.write_text(json.dumps(rows, default=str))
    return 0


def compare_lines(rows: list[dict[str, Any]]) -> None:
    """Each HAI `ocr` row's lines against onnxruntime's: `lines_differing` (warm-up page included)."""
    reference = next(
        (r.get("lines") for r in rows if r["engine"] == "onnxruntime-cpu" and r["workload"] == "ocr"), None
    )
    for row in rows:
        if row["workload"] != "ocr" or "lines" not in row or row["engine"] == "onnxruntime-cpu":
            continue
        if reference is None:
            row["lines_differing"] = None
            continue
        row["lines_differing"] = sum(
            sum(a != b for a, b in zip(mine, theirs, strict=False)) + abs(len(mine) - len(theirs))
            for mine, theirs in zip(row["lines"], reference, strict=True)
        )
        row["ok"] = row["ok"] and row["lines_differing"] == 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, required=True, help="where to write the results")
    parser.add_argument("--bundle", type=Path, default=Path(__file__).resolve().parent)
    parser.add_argument("--work", type=Path, help="unpacked wheels, icds, caches (default: BUNDLE/work)")
    parser.add_argument(
        "--budget-s", type=float, default=480.0, help="start no engine after this many seconds"
    )
    parser.add_argument(
        "--platform", default="NVIDIA", help="the OpenCL platform (a platform-name substring)"
    )
    parser.add_argument(
        "--engines", nargs="+", help="only these engines (default: onnxruntime-cpu and every bundled one)"
    )
    parser.add_argument(
        "--pages", type=int, default=0, help="pages read (the bundled ones, cycled; 0: each once)"
    )
    parser.add_argument("--stream", type=int, default=1000, help="inputs in the single-model stream")
    parser.add_argument(
        "--seconds", type=float, default=3.0, help="the streamed pages run at least this long"
    )
    parser.add_argument("--row-timeout", type=float, default=240.0, help="seconds one HAI engine may take")
    parser.add_argument("--child", help=argparse.SUPPRESS)  # one HAI engine's rows, run by the parent
    args = parser.parse_args(argv)
    if args.child:
        return child_main(args)
    bundle = args.bundle.resolve()
    args.work = (args.work or bundle / "work").resolve()
    payload, report = prepare(bundle, args.work)
    report["nvml_wheel"] = add_pynvml(bundle, args.work)
    index = json.loads((payload / "bundle.json").read_text())
    report["bundle"] = {k: v for k, v in index.items() if k not in ("alphabet", "page_texts")}
    report["platform"] = args.platform
    rows = Rows(payload, args)
    if "setup_error" not in report:
        for engine in ["onnxruntime-cpu", *index["engines"]]:
            if not args.engines or engine in args.engines:
                rows.engine(engine)
        compare_lines(rows.rows)
    report["left_out"] = index["left_out"]
    return write_report(report, rows.rows, rows.start, args.json)


if __name__ == "__main__":
    sys.exit(main())
