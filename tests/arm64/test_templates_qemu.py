"""The conv and pool shape classes of tests/compile/test_compile_conv_pool_templates.py (strided, dilated,
grouped, depthwise with a multiplier, asymmetric pads, 1-D and STFT-like convs; strided, ceil_mode and
padded pools and a YOLO SPPF) compiled with `--target arm64 --cpu cortex-a72` and run under qemu in one
process, against onnxruntime on the host (fp32 ≤ 1e-4 relative error); every dense conv kernel holds
NEON vector FMAs (`fmla v*.4s`) and every window pool kernel NEON vector max or add."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

from hai_compiler.accuracy import relative_error
from hai_compiler.arm64_env import Arm64Env
from runtime.artifact import kernel_library_file

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "compile"))
from qemu_models import compile_arm64, instruction_counts, run_under_qemu  # noqa: E402
from test_compile_conv_pool_templates import CONVS, POOLS, conv_model, pool_model  # noqa: E402

ort = pytest.importorskip("onnxruntime")

CPU = "cortex-a72"


def kernels(counts: dict[str, int], prefix: str) -> set[str]:
    """The kernels (`hai_<template>_<hash>`) of `prefix` among the symbols `counts` names."""
    return {m.group(0) for s in counts if (m := re.match(rf"{prefix}[0-9a-f]+", s))}


def test_conv_and_pool_templates_match_onnxruntime_under_qemu(
    arm64_env: Arm64Env, cross_gcc: str, tmp_path: Path
) -> None:
    jobs, references = [], []
    for name, (model, inputs) in {"conv": conv_model(), "pool": pool_model()}.items():
        path = tmp_path / f"{name}.onnx"
        onnx.save(model, str(path))
        shapes = {k: v.shape for k, v in inputs.items()}
        jobs.append((compile_arm64(path, tmp_path / f"{name}.hai", CPU, shapes), inputs))
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        names = [o.name for o in session.get_outputs()]
        references.append(dict(zip(names, session.run(names, inputs), strict=True)))
    for got, want in zip(run_under_qemu(arm64_env, CPU, jobs, tmp_path), references, strict=True):
        assert list(got) == list(want)
        for output, reference in want.items():
            assert np.abs(reference).max() > 0, output
            error = relative_error(got[output], reference)
            assert error <= 1e-4, f"output {output}: relative error {error:.2e} under qemu {CPU}"
    conv_library, pool_library = (artifact / kernel_library_file("cpu") for artifact, _ in jobs)
    fmla = instruction_counts(conv_library, r"\bfmla\s+v\d+\.4s")
    dense = kernels(fmla, "hai_conv_")
    assert len(dense) == sum(w[1] > 1 or a.get("group", 1) == 1 for _, w, a in CONVS.values()), fmla
    # TVM's max is a compare and select on NEON: fcmgt + bif
    vector_max_add = instruction_counts(pool_library, r"\bf(cmgt|max|maxnm|add)\s+v\d+\.4s")
    pools = kernels(vector_max_add, "hai_wpool_")
    assert len(pools) == len(POOLS) + 1, vector_max_add  # the three SPPF pools share one kernel
