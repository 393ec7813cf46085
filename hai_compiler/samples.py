"""`hai samples DIR`: the embedded digits model and data to try every command on (README, "Using it").

Rule: the files are the committed model and slices of its held-out digits
(hai_compiler/models/, demo.py), written unchanged: calibration samples and
evaluation samples are disjoint, and the one input is an evaluation sample.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from hai_compiler.demo import EMBEDDED_MODEL, INPUT, load_heldout_digits

CALIBRATION_SAMPLES = 64
"""The first held-out digits go to calibration, the rest to evaluation."""
SAMPLE_FILES = {
    "digits.onnx": "the digits CNN: input 'image' float32 [1,1,8,8] in [0,1], output 'logits' [1,10]",
    "image.npy": "one digit for --input image=image.npy",
    "calibration.npz": f"{CALIBRATION_SAMPLES} digits for --calibration-data",
    "eval.npz": "the other held-out digits for --eval-data",
    "labels.npy": "their classes for --labels",
}


def write_samples(directory: Path) -> dict[Path, str]:
    """Write SAMPLE_FILES into `directory` (created if needed); each path with what it is."""
    directory.mkdir(parents=True, exist_ok=True)
    x, y = load_heldout_digits()
    calibration, evaluation, labels = (
        x[:CALIBRATION_SAMPLES],
        x[CALIBRATION_SAMPLES:],
        y[CALIBRATION_SAMPLES:],
    )
    shutil.copyfile(EMBEDDED_MODEL, directory / "digits.onnx")
    np.save(directory / "image.npy", evaluation[:1], allow_pickle=False)
    np.savez(directory / "calibration.npz", **{INPUT: calibration})
    np.savez(directory / "eval.npz", **{INPUT: evaluation})
    np.save(directory / "labels.npy", labels, allow_pickle=False)
    return {directory / name: what for name, what in SAMPLE_FILES.items()}
