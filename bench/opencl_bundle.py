"""Builds the OpenCL bundle for a device machine without the compiler: at most 64 MiB, checked.

The bundle folder holds the runner (bench/opencl_runner.py, as `runner.py`), the runtime's wheels for
CPython 3.12 on x86_64 Linux (pyopencl at constraints.txt's version and its dependencies,
apache-tvm-ffi; downloaded once into $HAI_CACHE_DIR/wheels/cp312-x86_64) and `payload.zip`: HAI's
`runtime/` source, `bundle.json`, and per model its ONNX file, its batch-1 inputs (npy) and its
artifacts compiled `--target opencl` for the device profile. Every zip member is compressed on its
own (LZMA), so each artifact's weights count in full. The batch-1 artifacts of digits and the five
dev models are required; the batch-8/32 artifacts of PP-OCR det and rec are added, in that order,
while the bundle stays within the limit (bundle.json names those left out and why).

    .venv/bin/python bench/opencl_bundle.py OUT [--profile nvidia-h100] [--models digits ppocr_cls]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from hai_compiler import real_models  # noqa: E402
from hai_compiler.compiler import CompileOptions, compile_model  # noqa: E402
from hai_compiler.demo import EMBEDDED_MODEL, load_heldout_digits  # noqa: E402
from ir import HaiError  # noqa: E402
from targets.kernel_cache import cache_root  # noqa: E402
from targets.wheels import cached_wheel  # noqa: E402

LIMIT = 64 << 20
MODELS = ("digits", "ppocr_cls", "magika", "orientation", "ppocr_rec", "ppocr_det")
BATCHED = (("ppocr_det", 8), ("ppocr_rec", 8), ("ppocr_det", 32), ("ppocr_rec", 32))
"""Optional artifacts, in the order they are tried against the size limit."""
BATCHED_BUDGET = "8GB"  # a batch-32 PP-OCR det plans about 1.5 GiB of host memory
WHEELS = ("pyopencl", "pytools", "platformdirs", "siphash24", "typing_extensions", "apache-tvm-ffi")
CP312_X86_64 = ("--platform", "manylinux_2_28_x86_64", "--python-version", "3.12", "--implementation", "cp")
RUNNER = ROOT / "bench" / "opencl_runner.py"


class BundleTooLargeError(HaiError):
    """The required part of the bundle alone exceeds the size limit."""


def pinned(project: str) -> str:
    """`project==version` as constraints.txt pins it."""
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        name, _, version = line.partition("==")
        if name.strip().lower().replace("_", "-") == project.lower().replace("_", "-"):
            return f"{project}=={version.strip()}"
    raise HaiError(f"constraints.txt pins no version of {project}")


def model_source(name: str) -> tuple[Path, dict[str, tuple[int, ...]], dict[str, np.ndarray]]:
    """The ONNX file, batch-1 input shapes and sample inputs of a bundled model."""
    if name == "digits":
        x, _ = load_heldout_digits()
        return Path(EMBEDDED_MODEL), {"image": (1, 1, 8, 8)}, {"image": np.ascontiguousarray(x[:1])}
    if name not in real_models.MODELS:
        raise HaiError(f"unknown model {name!r}: choose from {', '.join(MODELS)}")
    model = real_models.MODELS[name]
    return model.fetch(), dict(model.input_shapes), model.sample_inputs()


def compile_artifact(
    onnx: Path, shapes: Mapping[str, tuple[int, ...]], batch: int, profile: str, out: Path
) -> Path:
    batched = {name: (batch, *shape[1:]) for name, shape in shapes.items()}
    budget = CompileOptions.memory_budget if batch == 1 else BATCHED_BUDGET
    options = CompileOptions(target="opencl", cpu=profile, input_shapes=batched, memory_budget=budget)
    return compile_model(onnx, out, options).path


class PayloadWriter(Protocol):
    """What `finish` needs of a payload being written (`Payload`, or ocr_bundle's `SolidPayload`)."""

    def add_bytes(self, name: str, data: bytes) -> None: ...

    def close(self) -> None: ...


class Payload:
    """payload.zip being written: every member compressed alone; `size` is the zip's size so far."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.zip = zipfile.ZipFile(path, "w", zipfile.ZIP_LZMA)

    def add_tree(self, folder: Path, name: str) -> None:
        for file in sorted(folder.rglob("*")):
            if file.is_file() and "__pycache__" not in file.parts:
                self.zip.write(file, f"{name}/{file.relative_to(folder)}")

    def add_bytes(self, name: str, data: bytes) -> None:
        self.zip.writestr(name, data)

    def size(self) -> int:
        self.zip.fp.flush()  # type: ignore[union-attr]
        return self.path.stat().st_size

    def close(self) -> None:
        self.zip.close()


def npy_bytes(array: np.ndarray) -> bytes:
    with tempfile.TemporaryFile() as f:
        np.save(f, array)
        f.seek(0)
        return f.read()


def build(out: Path, profile: str, models: tuple[str, ...], batched: bool) -> dict:
    """Writes the bundle into `out` (replaced) and returns its index (bundle.json)."""
    if out.exists():
        shutil.rmtree(out)
    (out / "wheels").mkdir(parents=True)
    shutil.copy(RUNNER, out / "runner.py")
    copy_wheels(out / "wheels", WHEELS)
    payload = Payload(out / "payload.zip")
    payload.add_tree(ROOT / "runtime", "runtime")
    index: dict = {"profile": profile, "limit_bytes": LIMIT, "models": [], "left_out": []}
    entries: dict[str, dict] = {}
    sources = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in models:
            onnx, shapes, inputs = sources[name] = model_source(name)
            entry: dict[str, Any] = {
                "name": name,
                "onnx": f"models/{name}.onnx",
                "inputs": {},
                "artifacts": {},
            }
            payload.add_bytes(entry["onnx"], onnx.read_bytes())
            for input_name, array in inputs.items():
                entry["inputs"][input_name] = f"inputs/{name}/{input_name}.npy"
                payload.add_bytes(entry["inputs"][input_name], npy_bytes(array))
            artifact = compile_artifact(onnx, shapes, 1, profile, Path(tmp) / f"{name}.hai")
            entry["artifacts"]["1"] = f"artifacts/{name}.hai"
            payload.add_tree(artifact, entry["artifacts"]["1"])
            entries[name] = entry
            print(f"{name}: batch 1, bundle {bundle_size(out, payload) / 2**20:.1f} MiB", flush=True)
        required = bundle_size(out, payload)
        if required > LIMIT:
            payload.close()
            raise BundleTooLargeError(
                f"the required artifacts alone make {required / 2**20:.1f} MiB, over the {LIMIT >> 20} MiB"
                " limit: bundle fewer --models"
            )
        for name, batch in BATCHED if batched else ():
            if name in entries:
                add_batched(payload, out, index, entries[name], sources[name], batch, Path(tmp))
    index["models"] = list(entries.values())
    return finish(out, payload, index)


def copy_wheels(folder: Path, projects: tuple[str, ...]) -> None:
    """constraints.txt's cp312 x86_64 wheels of `projects` into `folder` (downloaded once)."""
    folder.mkdir(parents=True, exist_ok=True)
    for project in projects:
        wheel = cached_wheel(pinned(project), cache_root() / "wheels" / "cp312-x86_64", CP312_X86_64)
        shutil.copy(wheel, folder / wheel.name)


def finish(out: Path, payload: PayloadWriter, index: dict) -> dict:
    """Writes bundle.json into the payload and beside it, closes the payload and checks the size."""
    payload.add_bytes("bundle.json", json.dumps(index, indent=1).encode())
    payload.close()
    (out / "bundle.json").write_text(json.dumps(index, indent=1))
    index["size_bytes"] = bundle_size(out, None)
    if index["size_bytes"] > LIMIT:
        raise BundleTooLargeError(
            f"the bundle makes {index['size_bytes'] / 2**20:.1f} MiB, over {LIMIT >> 20} MiB"
        )
    return index


def add_batched(
    payload: Payload, out: Path, index: dict, entry: dict, source: tuple, batch: int, tmp: Path
) -> None:
    """Adds one batch-N artifact if the bundle stays under the limit; else records why it is left out."""
    name = entry["name"]
    onnx, shapes, _ = source
    artifact = compile_artifact(onnx, shapes, batch, index["profile"], tmp / f"{name}_b{batch}.hai")
    probe = tmp / "probe.zip"
    with zipfile.ZipFile(probe, "w", zipfile.ZIP_LZMA) as z:
        for file in sorted(artifact.rglob("*")):
            z.write(file, str(file.relative_to(artifact)))
    needed = probe.stat().st_size + 4096  # the zip's directory entries
    if bundle_size(out, payload) + needed > LIMIT - (64 << 10):  # room for bundle.json
        why = f"{needed / 2**20:.1f} MiB compressed would take the bundle over {LIMIT >> 20} MiB"
        index["left_out"].append({"model": name, "batch": batch, "why": why})
        print(f"{name}: batch {batch} left out: {why}", flush=True)
        return
    entry["artifacts"][str(batch)] = f"artifacts/{name}_b{batch}.hai"
    payload.add_tree(artifact, entry["artifacts"][str(batch)])
    print(f"{name}: batch {batch}, bundle {bundle_size(out, payload) / 2**20:.1f} MiB", flush=True)


def bundle_size(out: Path, payload: Payload | None) -> int:
    if payload is not None:
        payload.size()
    return sum(f.stat().st_size for f in out.rglob("*") if f.is_file())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="the bundle folder (replaced)")
    parser.add_argument("--profile", default="nvidia-h100", help="the OpenCL device profile (--cpu)")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--no-batched", action="store_true", help="batch-1 artifacts only")
    args = parser.parse_args()
    try:
        index = build(args.out, args.profile, tuple(args.models), not args.no_batched)
    except HaiError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"bundle {args.out}: {index['size_bytes'] / 2**20:.1f} MiB of {LIMIT >> 20} MiB; "
          f"left out: {[(x['model'], x['batch']) for x in index['left_out']] or 'nothing'}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
