"""Auto partitioning against CPU-only and OpenCL-only on the dev models: compile here, measure side by side.

For each dev model (hai_compiler/real_models.py: ppocr_det, ppocr_rec, ppocr_cls, magika,
orientation, and the embedded digits) this compiles four engines into WORK/MODEL/: CPU-only
(`x86`), OpenCL-only (`opencl`), and the auto partition over both (`x86+opencl[:KIND]`) with the
latency objective (`auto`) and the throughput objective (`auto-throughput`). The single-device
compiles take the options the auto compile gives a device of its own
(hai_compiler/compiler/device_choice.py `alone`), so all four see the same target descriptions.
`engines.json` records which devices each engine's plan runs steps on. Then
bench/partition_measure.py measures them side by side (alternated rounds) and prints the table of
auto / best single device with the verdicts against the 5% goal; `--json` writes the rows. The
measuring part needs no compiler: copy WORK to a device and run bench/partition_measure.py there.

    .venv/bin/python bench/partition.py WORK [--device opencl:cpu] [--opencl-profile pocl-cpu]
        [--hardware-profile measured.json] [--models magika ...] [--json out.json]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.partition_measure import measure_all, table  # noqa: E402
from hai_compiler import real_models  # noqa: E402
from hai_compiler.compiler import CompileOptions, compile_model  # noqa: E402
from hai_compiler.compiler.device_choice import alone  # noqa: E402
from hai_compiler.demo import EMBEDDED_MODEL, load_heldout_digits  # noqa: E402
from ir.devices import HOST  # noqa: E402

MODELS = ("digits", "ppocr_cls", "magika", "orientation", "ppocr_rec", "ppocr_det")


def model_source(name: str) -> tuple[Path, dict[str, Any], dict[str, np.ndarray]]:
    """(onnx path, compile options, sample inputs) of a dev model or the embedded digits."""
    if name == "digits":
        x, _ = load_heldout_digits()
        return Path(EMBEDDED_MODEL), {"input_shapes": {"image": (1, 1, 8, 8)}}, {"image": x[:1].copy()}
    spec = real_models.MODELS[name]
    options = {"input_shapes": spec.input_shapes, "input_values": spec.input_values or None}
    return real_models.fetch(name), options, spec.sample_inputs()


def compile_engines(name: str, work: Path, device: str, fields: dict[str, Any]) -> dict[str, Any]:
    """The four engines of model `name` in WORK/NAME (module doc); what each chose, by engine."""
    path, options, inputs = model_source(name)
    folder = work / name
    folder.mkdir(parents=True, exist_ok=True)
    np.savez(folder / "inputs.npz", **inputs)
    auto = CompileOptions(target=f"x86+{device}", **options, **fields)
    engines = {
        "x86": alone(auto, HOST),
        "opencl": alone(auto, device),
        "auto": auto,
        "auto-throughput": dataclasses.replace(auto, objective="throughput"),
    }
    chosen = {}
    for engine, given in engines.items():
        result = compile_model(path, folder / f"{engine}.hai", given)
        used = sorted({s.device for s in result.plan.plan.steps if not s.transfer_from})
        chosen[engine] = {"target": result.target.name if result.devices is None else auto.target,
                          "devices": used, "seconds": result.seconds}  # fmt: skip
        print(f"{name} {engine}: steps on {', '.join(used)} ({result.seconds:.1f} s)", file=sys.stderr)
    (folder / "engines.json").write_text(json.dumps(chosen, indent=2) + "\n")
    return chosen


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("work", type=Path, help="where the engines are compiled (and measured from)")
    parser.add_argument("--models", nargs="*", default=list(MODELS), choices=MODELS)
    parser.add_argument("--device", default="opencl", help="the OpenCL part: opencl, opencl:gpu, opencl:cpu")
    parser.add_argument("--opencl-profile", default=None, help="a preset (pocl-cpu, nvidia-h100)")
    parser.add_argument("--hardware-profile", type=Path, default=None, help="a `hai doctor --measure` JSON")
    parser.add_argument("--cpu", default=None, help="the host's --cpu (not with --hardware-profile)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--runs", type=int, default=10, help="timed runs per latency round")
    parser.add_argument("--stream", type=int, default=16, help="inputs per throughput round")
    parser.add_argument(
        "--compile-only", action="store_true", help="measure elsewhere (partition_measure.py)"
    )
    parser.add_argument("--json", dest="json_path", type=Path, default=None)
    args = parser.parse_args(argv)
    fields = {
        "opencl_profile": args.opencl_profile,
        "hardware_profile": args.hardware_profile,
        "cpu": args.cpu,
    }
    for name in args.models:
        compile_engines(name, args.work, args.device, fields)
    if args.compile_only:
        return 0
    rows = measure_all(args.work, args.models, args.rounds, args.runs, args.stream)
    print(table(rows))
    if args.json_path is not None:
        args.json_path.write_text(json.dumps(rows, indent=2) + "\n")
    return 0 if all(r["outputs_match"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
