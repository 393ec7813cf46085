"""Measure this CPU's cost table (targets/cost_model.py): time dense conv tiles, fit the constants, write
the table that the compile's template choice reads.

Each dense Conv case of bench/kernels.py is lowered (in the layout a compile gives it, or
`--layout`) with a fixed sample of its fitting tiles (`SAMPLE`, every kind) and the hand rule's
tile, built, and timed on one thread by process CPU time (steady on a shared host). The constants
(per-thread GFLOP/s, L2 GB/s, the broadcast cost, the FMA latency a step waits on, the
per-accumulator tile overhead and each template's efficiency) are the least-squares fit of
log(predicted / measured) over all timings; the ports and L1 size stay as given. Prints each
kernel's measured and predicted time and the fit's error; `--write` stores the table as
targets/cost_tables/NAME.json, naming the CPU (/proc/cpuinfo's model name) and the date.

    .venv/bin/python bench/cost_table.py [--case ...] [--write x86_avx512_amx] [--json timings.json]
        [--timings timings.json]   # refit earlier timings without measuring
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from kernels import CASES, bind, ir_node, kernel_layout, timed  # noqa: E402

SAMPLE = ((2, 4), (4, 4), (6, 4), (8, 2), (12, 2), (14, 2), (8, 1))
"""(rows, vectors) of the tiles timed per kind, where they fit."""
SHARED = 6
"""Fitted constants before the per-kind ones: log GFLOP/s, log L2 GB/s, broadcast, FMA latency, tile
overhead, step overhead."""
L1_BYTES = 48 << 10
"""L1 data cache per core of the CPU measured (lscpu)."""


def dense_conv_cases() -> list[str]:
    from targets.lowering.conv import conv_template

    return [c for c in CASES if CASES[c][0] == "Conv" and conv_template(ir_node(c)[1]) == "dense"]


def time_case(case: str, layout: str | None) -> list[dict]:
    """[{case, tile, work, seconds}] for the sampled tiles of one case (in `layout`, else the one a
    compile gives it), on this thread."""
    from targets.lowering.conv import lower_dense_conv
    from targets.lowering.conv_geometry import Geometry
    from targets.lowering.conv_tiles import dense_tiles, legacy_tile, tile_work
    from targets.registry import resolve_target

    target = resolve_target("x86")
    _, node, feeds, consts = ir_node(case)
    layout = layout or kernel_layout(node, target)
    g = Geometry(node)
    rows = []
    legacy = legacy_tile(g, layout, target)
    for tile in dense_tiles(g, layout, target):
        if (tile.knobs.mi, tile.knobs.vectors) not in SAMPLE and tile != legacy:
            continue
        call, _ = bind(lower_dense_conv(node, target, (), layout, tile), feeds, consts, layout)
        seconds = timed(call, clock=time.process_time)
        work = dataclasses.asdict(tile_work(g, tile, layout))
        rows.append({"case": case, "tile": tile.name, "work": work, "seconds": seconds})
        print(f"{case:<32} {tile.name:<18} {seconds * 1e3:8.3f} ms", file=sys.stderr, flush=True)
    return rows


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def fit(timings: list[dict], base):  # type: ignore[no-untyped-def]
    """The table `base` with gflops, l2_gbps, broadcast, the FMA latency, the tile and step overheads
    and the kinds' efficiencies fitted to `timings`."""
    from scipy.optimize import least_squares

    from targets.cost_model import TiledWork, thread_seconds

    works = [TiledWork(**t["work"]) for t in timings]
    kinds = sorted({w.template for w in works})
    measured = np.log([t["seconds"] for t in timings])

    def table(p: np.ndarray):  # type: ignore[no-untyped-def]
        efficiency = {
            k: float(np.exp(e)) for k, e in zip(kinds, p[SHARED : SHARED + len(kinds)], strict=True)
        }
        streaming = {k: float(np.exp(e)) for k, e in zip(kinds, p[SHARED + len(kinds) :], strict=True)}
        gflops, l2_gbps = np.exp(p[:2]).tolist()
        broadcast, latency, overhead, step = p[2:SHARED].tolist()
        return dataclasses.replace(
            base,
            gflops=gflops,
            l2_gbps=l2_gbps,
            broadcast=broadcast,
            fma_latency=latency,
            tile_overhead=overhead,
            step_overhead=step,
            efficiency=efficiency,
            streaming=streaming,
        )

    def residuals(p: np.ndarray) -> np.ndarray:
        t = table(p)
        return np.log([thread_seconds(t, w) + t.launch_us * 1e-6 for w in works]) - measured

    per_kind = 2 * len(kinds)
    start = np.array([np.log(base.gflops), np.log(base.l2_gbps), 1.0, 4.0, 1.0, 0.5, *([0.0] * per_kind)])
    low = [0, 0, 0.25, 2.0, 0.0, 0.0, *([-3.0] * per_kind)]
    high = [8, 8, 3.0, 12.0, 20.0, 4.0, *([0.0] * per_kind)]
    bounds = (low, high)
    result = least_squares(residuals, start, bounds=bounds)
    return table(result.x), residuals(result.x)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", nargs="+")
    parser.add_argument(
        "--layout", choices=["NCHW", "NHWC"], help="lower in this layout (default: a compile's)"
    )
    parser.add_argument("--json", type=Path, help="write the timings here")
    parser.add_argument(
        "--timings", type=Path, nargs="+", help="fit these timings (--json) instead of measuring"
    )
    parser.add_argument("--write", metavar="NAME", help="store the table as targets/cost_tables/NAME.json")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    cases = args.case or dense_conv_cases()
    if args.worker:
        print(json.dumps([row for case in cases for row in time_case(case, args.layout)]))
        return
    if args.timings:
        timings = [row for path in args.timings for row in json.loads(path.read_text())]
    else:
        env = {**os.environ, "TVM_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
        layout = ["--layout", args.layout] if args.layout else []
        out = subprocess.run(
            [sys.executable, __file__, "--worker", *layout, "--case", *cases],
            env=env,
            check=True,
            stdout=subprocess.PIPE,
            text=True,
        ).stdout
        timings = json.loads(out.strip().splitlines()[-1])
    if args.json:
        args.json.write_text(json.dumps(timings, indent=1) + "\n")
    from targets.cost_model import nominal_table
    from targets.registry import resolve_target

    target = resolve_target("x86")
    base = dataclasses.replace(
        nominal_table(target),
        cpu=cpu_name(),
        requires=frozenset({"avx512f", "fma", "amx_bf16"}) & target.features,  # the class: AMX-era Xeons
        l1_bytes=L1_BYTES,
        threads=os.cpu_count() or 1,
        measured=f"{datetime.date.today()}, bench/cost_table.py, 1 thread, process CPU time",
    )
    table, residuals = fit(timings, base)
    for t, r in zip(timings, residuals, strict=True):
        print(f"{t['case']:<32} {t['tile']:<18} {t['seconds'] * 1e3:8.3f} ms  predicted x{np.exp(r):.2f}")
    print(f"fit: rms log error {np.sqrt(np.mean(residuals**2)):.3f} over {len(timings)} kernels")
    print(json.dumps(table.to_json(), indent=1))
    if args.write:
        path = ROOT / "targets" / "cost_tables" / f"{args.write}.json"
        path.write_text(json.dumps(table.to_json(), indent=1) + "\n")
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
