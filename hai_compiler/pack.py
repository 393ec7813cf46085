"""`hai pack`: a deployable bundle of an artifact and the minimal runtime, without the compiler.

The bundle is a folder a device can use as it is:

    BUNDLE/model.hai/         the artifact: its manifest, signature and listed files, checked first
    BUNDLE/runtime/           HAI's runtime package (numpy + tvm_ffi + stdlib only)
    BUNDLE/requirements.txt   the `runtime` extra's ranges of numpy and apache-tvm-ffi (+ `signing`'s
                              cryptography when the artifact is signed, + `opencl`'s pyopencl when
                              it runs on an OpenCL device)
    BUNDLE/run_model.py       `python run_model.py --input x=x.npy --output-dir out/`; with
                              `--transfers N`, an OpenCL artifact's host<->device transfer time per
                              inference with zero-copy on and off (runtime/transfer_bench.py); with
                              `--power N`, joules per inference (runtime/power_bench.py; GPU figures
                              need `pip install nvidia-ml-py`); with `--stream N`, throughput and
                              latency of `run` against `run_many` (runtime/stream_bench.py)
    BUNDLE/microbench/        with `microbench` (their sizes): the device microbenchmarks compiled for the
    BUNDLE/measure_device.py  artifact's target (hai_compiler/microbench.py); `python measure_device.py
                              --json measured.json` measures the device (runtime/microbench.py) and
                              writes the hardware profile's `measured` section

`pip install -r requirements.txt` is the whole installation: no TVM compiler,
no onnx, no lark, never torch. The ranges are the installed distribution's
(pyproject.toml's `runtime` extra): a device keeps the numpy it has when it fits.
The artifact is read and verified before it is copied (runtime/artifact_files.py);
only the files its manifest lists, the manifest and its signature (`manifest.sig`,
when signed) are copied. The bundle folder may not lie inside the artifact.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from hai_compiler.distribution import extra_requirements
from ir import HaiError

if TYPE_CHECKING:
    from hai_compiler.microbench import Sizes

RUNTIME_EXTRA = "runtime"
SIGNING_EXTRA = "signing"
OPENCL_EXTRA = "opencl"

RUN_MODEL = '''"""Run the HAI artifact beside this script.

python run_model.py --input NAME=FILE.npy ... [--output-dir DIR] [--threads N]
python run_model.py --transfers RUNS   (an OpenCL artifact: transfer time, zero-copy on and off)
python run_model.py --power RUNS       (joules per inference: RAPL, NVML with nvidia-ml-py)
python run_model.py --stream N [--in-flight K]   (throughput and latency: run against run_many)
"""

import argparse
import re
from pathlib import Path

import numpy as np

import runtime

HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--input", action="append", default=[], metavar="NAME=FILE.npy")
    parser.add_argument("--output-dir", type=Path, default=Path("."))
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--trusted-key", action="append", metavar="KEY.pub",
                        help="refuse the model unless signed by this key (needs the cryptography package)")
    parser.add_argument("--transfers", type=int, default=0, metavar="RUNS",
                        help="report host<->device transfer time per inference, zero-copy on and off")
    parser.add_argument("--power", type=int, default=0, metavar="RUNS",
                        help="report joules per inference (CPU packages: RAPL, NVIDIA GPUs: NVML)")
    parser.add_argument("--stream", type=int, default=0, metavar="N",
                        help="report throughput and p50/p99 latency over N inputs, run against run_many")
    parser.add_argument("--in-flight", type=int, default=None, metavar="K",
                        help="inputs run_many keeps in flight with --stream (default: one per stage)")
    args = parser.parse_args()
    if args.power:
        from runtime.power_bench import main as power_bench

        raise SystemExit(power_bench([str(HERE / "model.hai"), "--runs", str(args.power)]))
    if args.stream:
        from runtime.stream_bench import main as stream_bench

        flight = ["--in-flight", str(args.in_flight)] if args.in_flight else []
        threads = ["--threads", str(args.threads)] if args.threads else []
        artifact = str(HERE / "model.hai")
        raise SystemExit(stream_bench([artifact, "--stream", str(args.stream), *flight, *threads]))
    if args.transfers:
        from runtime.transfer_bench import main as transfer_bench

        raise SystemExit(transfer_bench([str(HERE / "model.hai"), "--runs", str(args.transfers)]))
    try:
        model = runtime.load(HERE / "model.hai", threads=args.threads, trusted_keys=args.trusted_key)
    except runtime.HaiRuntimeError as exc:
        raise SystemExit(f"error: {exc}") from None
    feeds = {}
    for item in args.input:
        name, _, path = item.partition("=")
        feeds[name] = np.load(path)
    args.output_dir.mkdir(parents=True, exist_ok=True)
    for name, array in model.run(feeds).items():
        path = args.output_dir / (re.sub(r"[^A-Za-z0-9._-]", "_", name) + ".npy")
        np.save(path, array)
        print(f"{name}: {array.dtype}{list(array.shape)} -> {path}")


if __name__ == "__main__":
    main()
'''


MEASURE_DEVICE = '''"""Measure this device with the microbenchmarks beside this script (no compiler needed).

python measure_device.py [--json measured.json] [--runs N] [--threads N]
"""

import sys
from pathlib import Path

from runtime.microbench import main

HERE = Path(__file__).resolve().parent

if __name__ == "__main__":
    sys.exit(main([str(HERE / "microbench"), *sys.argv[1:]]))
'''


class PackError(HaiError):
    """The artifact to pack is missing or the bundle folder cannot be made."""


def pack(artifact: str | Path, bundle: str | Path, microbench: Sizes | None = None) -> Path:
    """Write the bundle folder for `artifact` (an existing NAME.hai directory); returns its path.
    With `microbench`, also the device microbenchmarks of those sizes for its target and
    `measure_device.py`."""
    from runtime.artifact import MANIFEST_FILE, SIGNATURE_FILE
    from runtime.artifact_files import read_manifest
    from runtime.errors import HaiRuntimeError

    artifact, bundle = Path(artifact), Path(bundle)
    if not (artifact / MANIFEST_FILE).is_file():
        raise PackError(f"{artifact}: not a HAI artifact (no manifest.json); make one with `hai compile`")
    if bundle.resolve().is_relative_to(artifact.resolve()):
        raise PackError(f"{bundle}: the bundle folder lies inside the artifact {artifact}; choose another")
    if bundle.exists() and (not bundle.is_dir() or any(bundle.iterdir())):
        raise PackError(f"{bundle}: the bundle folder exists and is not empty")
    try:
        manifest = read_manifest(artifact)
    except HaiRuntimeError as exc:
        raise PackError(f"{artifact}: cannot pack a damaged artifact: {exc}") from None
    names = [MANIFEST_FILE, *sorted(manifest.files)]
    signed = (artifact / SIGNATURE_FILE).is_file()
    names += [SIGNATURE_FILE] if signed else []
    requirements = extra_requirements(RUNTIME_EXTRA) + (extra_requirements(SIGNING_EXTRA) if signed else [])
    requirements += extra_requirements(OPENCL_EXTRA) if OPENCL_EXTRA in manifest.kernel_libraries else []
    (bundle / "model.hai").mkdir(parents=True)
    for name in names:
        shutil.copyfile(artifact / name, bundle / "model.hai" / name, follow_symlinks=False)
    shutil.copytree(_runtime_package(), bundle / "runtime", ignore=shutil.ignore_patterns("__pycache__"))
    (bundle / "requirements.txt").write_text("".join(f"{line}\n" for line in requirements))
    (bundle / "run_model.py").write_text(RUN_MODEL)
    if microbench is not None:
        from hai_compiler.microbench import build, manifest_spec

        build(bundle / "microbench", [manifest_spec(manifest.target)], microbench)
        (bundle / "measure_device.py").write_text(MEASURE_DEVICE)
    return bundle


def _runtime_package() -> Path:
    import runtime

    return Path(runtime.__file__).resolve().parent
