"""Builds the OCR-pipeline bundle for the GPU machine (issue 15 §6): at most 64 MiB, checked.

Rule: bench/opencl_bundle.py's mechanism (its wheels, bundle.json, the size check), with OCR's
contents. The folder holds `runner.py` (bench/ocr_runner.py), `opencl_runner.py` (the setup and
child-process machinery it shares), the wheels (opencl_bundle's, plus nvidia-ml-py so NVML energy
works there) and `payload.tar.xz` (one xz stream: `SolidPayload`): HAI's `runtime/`, the pipeline
(examples/ocr/ocr_pipeline.py and the modules it imports: `PIPELINE_FILES`), the pages rendered
here (`pages.npy`: the device may have no Pillow), the recogniser's alphabet, the three PP-OCR ONNX
files, the stream model's sample input, and per engine the det, cls and rec artifacts:
- `hai-x86`: `--target x86 --cpu x86-64-v3` (AVX2 + FMA: loads on any AVX2 machine, Intel or AMD);
- `hai-opencl`: `--target opencl --cpu PROFILE`;
- `hai-partitioned`, with `--partitioned TARGET` (e.g. `x86+opencl:gpu`): compiled with
  `--cpu x86-64-v3 --opencl-profile PROFILE` when this compiler builds it; else bundle.json's
  `left_out` says why and the runner reports it skipped.

    .venv/bin/python bench/ocr_bundle.py .cache/ocr-bundle [--profile nvidia-h100] [--pages 24]
        [--lines 12] [--partitioned x86+opencl:gpu]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH.parent), str(BENCH.parent / "examples" / "ocr")]

import numpy as np  # noqa: E402
from ocr_models import LINE_BATCH, ROLES, input_shapes  # noqa: E402
from opencl_bundle import (  # noqa: E402
    LIMIT,
    WHEELS,
    copy_wheels,
    finish,
    npy_bytes,
)

from hai_compiler import real_models  # noqa: E402
from hai_compiler.compiler import CompileOptions, compile_model  # noqa: E402
from ir import HaiError  # noqa: E402

STREAM_MODEL = "cls"
"""The model a stream of single inputs runs through (the runner's `--stream N`)."""
PORTABLE_CPU = "x86-64-v3"
OCR_WHEELS = (*WHEELS, "nvidia-ml-py")
EXAMPLES = BENCH.parent / "examples" / "ocr"
PIPELINE_FILES = ("ocr_pipeline.py", "text_detection.py", "bilinear.py")
"""The example's modules the runner imports (examples/ocr: the pipeline and what it imports)."""


class SolidPayload:
    """`payload.tar.xz` being written: files staged in a folder, then one xz stream (preset 9, a 64 MiB
    window) with each model's ONNX file and its engines' weights side by side, so an engine's copy of
    the weights costs little beside the others (opencl_bundle's `Payload` compresses each member alone:
    three engines' weights and the ONNX files would not fit 64 MiB). `size` is the staged bytes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.staging = Path(tempfile.mkdtemp(prefix="ocr-payload-"))

    def add_tree(self, folder: Path, name: str) -> None:
        shutil.copytree(folder, self.staging / name, ignore=shutil.ignore_patterns("__pycache__"))

    def add_bytes(self, name: str, data: bytes) -> None:
        (self.staging / name).parent.mkdir(parents=True, exist_ok=True)
        (self.staging / name).write_bytes(data)

    def size(self) -> int:
        return sum(f.stat().st_size for f in self.staging.rglob("*") if f.is_file())

    def close(self) -> None:
        files = [f.relative_to(self.staging) for f in self.staging.rglob("*") if f.is_file()]
        files.sort(key=near)
        with tarfile.open(self.path, "w:xz", preset=9) as archive:
            for name in files:
                archive.add(self.staging / name, str(name), recursive=False)
        shutil.rmtree(self.staging)


def near(name: Path) -> tuple[str, ...]:
    """The order of the payload's files: a role's ONNX file, then each engine's file of that name
    (artifacts/ENGINE/ROLE.hai/FILE), so that similar bytes are near in the xz stream."""
    parts = name.parts
    if parts[0] == "models":
        return (name.stem.removeprefix("ppocr_"), "weights.bin", "")
    if parts[0] == "artifacts" and len(parts) == 4:
        return (parts[2].removesuffix(".hai"), parts[3], parts[1])
    return ("", str(name), "")


def engine_options(
    engine: str,
    profile: str,
    partitioned: str | None,
    hardware_profile: Path | None = None,
    objective: str = "latency",
) -> dict[str, Any]:
    """The CompileOptions fields of an engine's artifacts (module doc); the partitioned engine's host
    part comes from `hardware_profile` when given (its `recommended` CPU and its `measured` devices
    for the partition's costs), else the portable CPU with estimated costs; `objective`: the
    partition's (`--partition-objective`)."""
    if engine == "hai-x86":
        return {"target": "x86", "cpu": PORTABLE_CPU}
    if engine == "hai-opencl":
        return {"target": "opencl", "cpu": profile}
    host: dict[str, Any] = {"cpu": PORTABLE_CPU}
    if hardware_profile is not None:
        host = {"hardware_profile": str(hardware_profile)}
    return {"target": partitioned, **host, "opencl_profile": profile, "objective": objective}


def compile_engine(engine: str, fields: dict[str, Any], folder: Path, line_batch: int) -> dict[str, Path]:
    """det, and cls and rec for `line_batch` lines a run, compiled with `fields`, plus the single-input
    stream's model (`STREAM_MODEL` at batch 1, when `line_batch` is not 1): role -> artifact folder."""
    shapes = {role: input_shapes(role, line_batch) for role in ROLES}
    if line_batch != 1:
        shapes["stream"] = input_shapes(STREAM_MODEL, 1)
    artifacts = {}
    for role, shape in shapes.items():
        source = real_models.fetch(f"ppocr_{STREAM_MODEL if role == 'stream' else role}")
        options = CompileOptions(**fields, input_shapes=shape)
        artifacts[role] = compile_model(source, folder / f"{engine}-{role}.hai", options).path
        print(f"{engine}: {role} compiled", flush=True)
    return artifacts


def rendered_pages(count: int, lines: int) -> tuple[np.ndarray, list[list[str]]]:
    """`count` synthetic pages of `lines` lines (the second upside down) and what each says."""
    from pages import page_of, random_lines

    rng = np.random.default_rng(0)
    texts = [random_lines(rng, lines) for _ in range(count)]
    return np.stack([page_of(text, flipped=(1,)) for text in texts]), texts


def build(
    out: Path,
    profile: str,
    pages: int,
    lines: int,
    partitioned: str | None,
    hardware_profile: Path | None = None,
    objective: str = "latency",
    line_batch: int = LINE_BATCH,
) -> dict:
    """Writes the bundle into `out` (replaced) and returns its index (bundle.json)."""
    from ocr_pipeline import rec_alphabet

    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    shutil.copy(BENCH / "ocr_runner.py", out / "runner.py")
    shutil.copy(BENCH / "opencl_runner.py", out / "opencl_runner.py")
    copy_wheels(out / "wheels", OCR_WHEELS)
    payload = SolidPayload(out / "payload.tar.xz")
    payload.add_tree(BENCH.parent / "runtime", "runtime")
    for name in PIPELINE_FILES:
        payload.add_bytes(f"ocr/{name}", (EXAMPLES / name).read_bytes())
    stack, texts = rendered_pages(pages, lines)
    payload.add_bytes("pages.npy", npy_bytes(stack))
    index: dict[str, Any] = {"kind": "ocr", "profile": profile, "cpu": PORTABLE_CPU, "limit_bytes": LIMIT,
                             "pages": "pages.npy", "page_texts": texts, "stream_model": STREAM_MODEL,
                             "line_batch": line_batch, "models": {}, "engines": {},
                             "left_out": []}  # fmt: skip
    rec = real_models.fetch("ppocr_rec")
    index["alphabet"] = rec_alphabet(str(rec))
    for role in ROLES:
        model = real_models.MODELS[f"ppocr_{role}"]
        entry = {"name": f"ppocr_{role}", "onnx": f"models/ppocr_{role}.onnx"}
        payload.add_bytes(entry["onnx"], model.fetch().read_bytes())
        index["models"][role] = entry
    (sample,) = real_models.MODELS[f"ppocr_{STREAM_MODEL}"].sample_inputs().values()
    index["stream_input"] = f"inputs/{STREAM_MODEL}.npy"
    payload.add_bytes(index["stream_input"], npy_bytes(sample))
    engines = ["hai-x86", "hai-opencl"] + (["hai-partitioned"] if partitioned else [])
    with tempfile.TemporaryDirectory() as tmp:
        for engine in engines:
            fields = engine_options(engine, profile, partitioned, hardware_profile, objective)
            try:
                artifacts = compile_engine(engine, fields, Path(tmp), line_batch)
            except Exception as exc:  # the partitioned engine is optional: what stops it is recorded
                if engine != "hai-partitioned":
                    raise
                why = f"--target {partitioned} does not compile here: {type(exc).__name__}: {exc}"[:600]
                index["left_out"].append({"engine": engine, "why": why})
                print(f"{engine} left out: {why}", flush=True)
                continue
            recorded = {k: v for k, v in fields.items() if v is not None}
            index["engines"][engine] = {"options": recorded, "artifacts": {}}
            for role, artifact in artifacts.items():
                name = f"artifacts/{engine}/{role}.hai"
                payload.add_tree(artifact, name)
                index["engines"][engine]["artifacts"][role] = name
            print(f"{engine}: payload {payload.size() / 2**20:.1f} MiB before compression", flush=True)
    return finish(out, payload, index)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="the bundle folder (replaced)")
    parser.add_argument("--profile", default="nvidia-h100", help="the OpenCL device profile")
    parser.add_argument("--pages", type=int, default=24, help="pages rendered into the bundle")
    parser.add_argument("--lines", type=int, default=12, help="text lines per page")
    parser.add_argument(
        "--line-batch", type=int, default=LINE_BATCH, help="lines HAI's cls and rec read a run"
    )
    parser.add_argument(
        "--partitioned", metavar="TARGET", help="add a partitioned engine, e.g. x86+opencl:gpu"
    )
    parser.add_argument(
        "--hardware-profile", type=Path, metavar="FILE",
        help="the partitioned engine's host and measured device costs: a `hai doctor` profile of the "
        "device machine with its `measured` section (recommended target: a CPU that machine has)",
    )  # fmt: skip
    parser.add_argument("--objective", choices=("latency", "throughput"), default="latency",
                        help="the partitioned engine's --partition-objective")  # fmt: skip
    args = parser.parse_args()
    try:
        index = build(
            args.out, args.profile, args.pages, args.lines, args.partitioned, args.hardware_profile,
            args.objective, args.line_batch,
        )  # fmt: skip
    except HaiError as exc:  # BundleTooLargeError among them
        print(f"error: {exc}", file=sys.stderr)
        return 1
    left = [x["engine"] for x in index["left_out"]] or "nothing"
    print(f"bundle {args.out}: {index['size_bytes'] / 2**20:.1f} MiB of {LIMIT >> 20} MiB; left out: {left}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
