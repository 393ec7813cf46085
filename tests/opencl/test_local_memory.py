"""Every kernel compiled for the NVIDIA H100 preset declares at most the device's local memory.

The H100 refused digits' first conv program ("local memory 0x1fb404 > 0x38c00"): the tiled rule
estimated its staged tiles, but TVM's lowering allocated far more. The check reads what the artifact's
OpenCL C declares (`__local` arrays of each `__kernel`), against the preset's local memory; compiling
needs no device. digits in the fast tier, the dev models in the slow one.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from hai_compiler import real_models
from hai_compiler.compiler import CompileOptions, compile_model
from hai_compiler.demo import EMBEDDED_MODEL
from runtime.artifact import kernel_library_file
from targets.opencl.profiles import PRESETS

PRESET = "nvidia-h100"
DEV_MODELS = ("ppocr_cls", "ppocr_rec", "magika", "orientation", "ppocr_det")
SCALAR_BYTES = {"char": 1, "uchar": 1, "short": 2, "ushort": 2, "half": 2, "int": 4, "uint": 4,
                "float": 4, "long": 8, "ulong": 8, "double": 8}  # fmt: skip
_KERNEL = re.compile(r"__kernel void (\w+)\(")
_LOCAL = re.compile(r"^\s*__local (?:volatile )?([a-z]+?)(\d*) (\w+)\[(\d+)\];", re.MULTILINE)


def local_bytes_per_kernel(source: str) -> dict[str, int]:
    """Bytes of the `__local` arrays each `__kernel` of an OpenCL C program declares (its prototypes,
    which TVM repeats, declare none)."""
    starts = [(m.start(), m.group(1)) for m in _KERNEL.finditer(source)]
    found: dict[str, int] = {}
    for (start, name), (end, _) in zip(starts, [*starts[1:], (len(source), "")], strict=True):
        declared = sum(
            SCALAR_BYTES[scalar] * int(lanes or 1) * int(count)
            for scalar, lanes, _, count in _LOCAL.findall(source[start:end])
        )
        found[name] = max(found.get(name, 0), declared)
    return found


def test_the_parser_reads_local_arrays() -> None:
    source = (
        "__kernel void a(__global float* x) {\n  __local float t_ptr[16];\n  __local half4 u[2];\n}\n"
        "__kernel void b(__global float* x) {\n  float p[4];\n}\n__kernel void a(__global float* x);\n"
    )
    assert local_bytes_per_kernel(source) == {"a": 16 * 4 + 2 * 8, "b": 0}


def assert_fits(model: Path, shapes: dict[str, tuple[int, ...]], folder: Path) -> None:
    options = CompileOptions(target="opencl", cpu=PRESET, input_shapes=shapes)
    artifact = compile_model(model, folder / "model.hai", options).path
    library = json.loads((artifact / kernel_library_file("opencl")).read_text())
    used = local_bytes_per_kernel(library["source"])
    limit = PRESETS[PRESET].local_memory_bytes
    assert used, "the library declares no kernel"
    over = {name: size for name, size in used.items() if size > limit}
    assert not over, f"kernels over the {limit} bytes of local memory of {PRESET}: {over}"


def test_digits_fits_the_h100_local_memory(tmp_path: Path) -> None:
    assert_fits(Path(EMBEDDED_MODEL), {"image": (1, 1, 8, 8)}, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("name", DEV_MODELS)
def test_dev_model_fits_the_h100_local_memory(name: str, tmp_path: Path) -> None:
    model = real_models.MODELS[name]
    assert_fits(real_models.fetch(name), dict(model.input_shapes), tmp_path)
