"""What each OpenCL kernel of a compile does on the device: rule, launch, tile, scratch, work.

Compiles a model for `--target opencl` (a device profile, no device needed) and lists every kernel
step of the plan: the schedule rule that took it, each device kernel's global and local sizes, its
work-group count against the profile's compute units, the Tiled rule's tile (positions and
channels per work-group, reduction elements staged per step, steps, where it accumulates), the
global scratch buffers TVM allocates between its device kernels (intermediates written and read
back: a padded input, a global accumulator), its FLOPs (ir/work.py) and the bytes its arguments
move. `--measured` joins the `slowest_kernels` of an OpenCL runner's JSON (bench/opencl_runner.py)
by the step's first node and batch.

    .venv/bin/python bench/opencl_kernels.py ppocr_det --batch 8 --profile nvidia-h100 [--top 10]
        [--measured runner.json] [--json out.json]

MODEL is a dev model of hai_compiler/real_models.py, `digits`, or an ONNX file (then
`--input-shape name=1,3,48,192`). Steps are listed slowest first when measured, else by FLOPs.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hai_compiler.compiler import CompileOptions, compile_model  # noqa: E402
from hai_compiler.demo import EMBEDDED_MODEL  # noqa: E402
from hai_compiler.real_models import MODELS  # noqa: E402
from ir.fusion import anchor_label  # noqa: E402
from ir.work import node_flops  # noqa: E402
from runtime.artifact import kernel_library_file  # noqa: E402
from targets.kernel_costs import kernel_nodes  # noqa: E402
from targets.opencl.profiles import PRESETS  # noqa: E402

BATCHED_BUDGET = "8GB"
"""Host memory a batch-32 plan may take (a batch-32 PP-OCR det plans about 1.5 GiB)."""


def model_source(model: str, shapes: list[str]) -> tuple[Any, dict[str, tuple[int, ...]]]:
    """The ONNX file and batch-1 input shapes of a dev model, `digits` or an ONNX path."""
    if model == "digits":
        return EMBEDDED_MODEL, {"image": (1, 1, 8, 8)}
    if model in MODELS:
        return MODELS[model].fetch(), dict(MODELS[model].input_shapes)
    given = {}
    for text in shapes:
        name, dims = text.split("=")
        given[name] = tuple(int(d) for d in dims.split(","))
    return Path(model), given


def kernel_rows(
    model: str, batch: int, profile: str, shapes: list[str], folder: Path
) -> list[dict[str, Any]]:
    """One row per kernel step of the compile (module doc)."""
    onnx, batch1 = model_source(model, shapes)
    batched = {name: (batch, *shape[1:]) for name, shape in batch1.items()}
    budget = CompileOptions.memory_budget if batch == 1 else BATCHED_BUDGET
    options = CompileOptions(target="opencl", cpu=profile, input_shapes=batched, memory_budget=budget)
    result = compile_model(onnx, folder / "model.hai", options)
    library = json.loads((result.path / kernel_library_file("opencl")).read_text())
    manifest = json.loads((result.path / "manifest.json").read_text())
    by_label = {anchor_label(n): n for n in result.graph.nodes}
    units = PRESETS[profile].compute_units if profile in PRESETS else None
    rows = []
    for index, step in enumerate(manifest["plan"]["steps"]):
        record = library["kernels"].get(step["kernel"])
        if record is None:  # a transfer or a step of another device
            continue
        anchor = by_label.get(step["nodes"][0]) if step["nodes"] else None
        flops = sum(node_flops(n) for n in kernel_nodes(anchor)) if anchor is not None else 0
        moved = sum(_arg_bytes(a) for a in step["args"])
        launches = []
        for launch in record["launches"]:
            groups = 1
            for total, width in zip(launch["global"], launch["local"], strict=True):
                groups *= total // width
            launches.append({"global": launch["global"], "local": launch["local"], "groups": groups,
                             "groups_per_unit": groups / units if units else None})  # fmt: skip
        rows.append({
            "step": index, "kernel": step["kernel"], "nodes": step["nodes"], "rule": record["schedule"],
            "tile": record.get("tile"), "launches": launches, "scratch_bytes": record["scratch"],
            "flops": flops, "arg_bytes": moved,
        })  # fmt: skip
    return rows


def _arg_bytes(arg: dict[str, Any]) -> int:
    import numpy as np

    count = 1
    for d in arg["shape"]:
        count *= int(d)
    return count * np.dtype(arg["dtype"]).itemsize


def join_measured(rows: list[dict[str, Any]], path: Path, model: str, batch: int) -> None:
    """Each row's measured ms from a runner JSON's `slowest_kernels` (matched by first node)."""
    report = json.loads(path.read_text())
    found: dict[str, float] = {}
    for row in report.get("rows", []):
        if row.get("model") == model and row.get("batch") == batch:
            for entry in row.get("slowest_kernels") or []:
                if "nodes" in entry:
                    found[entry["nodes"][0]] = entry["ms"]
    for row in rows:
        row["measured_ms"] = found.get(row["nodes"][0]) if row["nodes"] else None


def tile_text(tile: dict[str, Any] | None) -> str:
    if not tile:
        return "-"
    p, q, k = tile["positions"], tile["channels"], tile["reduction"]
    return (f"P {p[0]}={p[1]}x{p[2]} Q {q[0]}={q[1]}x{q[2]} K {k[0]}/{k[1]}x{k[0] // k[1]}"
            f"{' acc:global' if not tile.get('private', True) else ''}")  # fmt: skip


def print_rows(rows: list[dict[str, Any]], top: int) -> None:
    measured = any(r.get("measured_ms") is not None for r in rows)
    key = (lambda r: -(r.get("measured_ms") or 0.0)) if measured else (lambda r: -r["flops"])
    total = sum(r["flops"] for r in rows)
    rules = ", ".join(f"{n} {sum(r['rule'] == n for r in rows)}" for n in sorted({r["rule"] for r in rows}))
    print(f"{len(rows)} kernel steps, {total / 1e9:.2f} GFLOP; rules: {rules}")
    print("ms | step | first node | rule | MFLOP | MB args | scratch MB | "
          "launches (global/local: groups/CU) | tile")  # fmt: skip
    for row in sorted(rows, key=key)[:top]:
        launches = "; ".join(
            f"{'x'.join(map(str, each['global']))}/{'x'.join(map(str, each['local']))}: {each['groups']}"
            + (f"={each['groups_per_unit']:.1f}" if each["groups_per_unit"] is not None else "")
            for each in row["launches"]
        )
        ms = row.get("measured_ms")
        first = row["nodes"][0] if row["nodes"] else "-"
        scratch = sum(row["scratch_bytes"]) / 1e6
        print(f"{f'{ms:.3f}' if ms is not None else '-':>6} | {row['step']:4d} | {first} | {row['rule']} | "
              f"{row['flops'] / 1e6:.1f} | {row['arg_bytes'] / 1e6:.2f} | {scratch:.2f} | {launches} | "
              f"{tile_text(row['tile'])}")  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--profile", default="nvidia-h100", help="an OpenCL device preset")
    parser.add_argument("--input-shape", action="append", default=[], help="name=d0,d1,... (ONNX files)")
    parser.add_argument("--top", type=int, default=12, help="rows printed")
    parser.add_argument("--measured", type=Path, help="an OpenCL runner's JSON to join")
    parser.add_argument("--json", type=Path, help="write every row here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rows = kernel_rows(args.model, args.batch, args.profile, args.input_shape, Path(tmp))
    if args.measured:
        join_measured(rows, args.measured, args.model, args.batch)
    print_rows(rows, args.top)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
