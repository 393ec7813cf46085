"""`hai interp` end to end on a real model (through the default pipeline) against onnxruntime.

The API-level checks of all five real models live in tests/models; this one
covers the CLI path: shapes and inputs from the command line, `.npy` outputs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime
from cli_helpers import invoke

from hai_compiler import real_models
from hai_compiler.accuracy import relative_error
from hai_compiler.driver import output_file_name


def test_interp_matches_onnxruntime(tmp_path: Path) -> None:
    spec = real_models.MODELS["ppocr_cls"]
    model = real_models.fetch(spec.name)
    ((input_name, data),) = spec.sample_inputs().items()
    np.save(tmp_path / "in.npy", data)
    result = invoke(
        "interp", model, "--input-shape", f"{input_name}={','.join(map(str, data.shape))}",
        "--input", f"{input_name}={tmp_path / 'in.npy'}", "--passes", "default",
        "--output-dir", tmp_path / "out",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    session = onnxruntime.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    for output, ref in zip(session.get_outputs(), session.run(None, {input_name: data}), strict=True):
        ours = np.load(tmp_path / "out" / output_file_name(output.name))
        assert ours.shape == ref.shape and ours.dtype == ref.dtype
        assert relative_error(ours, ref) <= 1e-4, output.name
