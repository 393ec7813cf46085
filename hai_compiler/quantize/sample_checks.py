"""What the values of calibration and evaluation samples must hold before anything is measured on them.

Rules: every value of a float input is finite; a NaN or an infinity is a
`CalibrationDataError` naming the input, the sample (file and index) and the
position, since every range, sensitivity and score computed from it would be
meaningless. Calibration data should also be representative, else
quantization goes on with a `QuantizationWarning`:
- a float input that holds one value in every sample (all-zero images): every
  activation range then comes from that one input (ranges of width 0 for
  what it feeds), and the quantized model is only right for it;
- a float input whose samples are all the same array (one image repeated);
- fewer samples than `min_samples`: the quantizer passes the number its range
  selection, sensitivities and bias correction evaluate on (8), so a smaller
  set leaves each of them fewer samples than it was designed for.
Integer and boolean inputs (token ids, masks) are often constant by design and
are not checked.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from hai_compiler.quantize.calibration_data import (
    CalibrationData,
    CalibrationDataError,
    CalibrationSource,
    Feed,
    load_calibration_data,
)
from hai_compiler.quantize.caveats import warn
from ir import Graph, TensorType


def check_values(data: CalibrationData, role: str = "calibration", min_samples: int | None = None) -> None:
    """Raise on a non-finite value in `data` (`role` data: calibration, evaluation); with `min_samples`,
    warn where the set is degenerate (module doc: the rules)."""
    floats = [name for name, t in data.inputs.items() if t.dtype.is_float]
    first: dict[str, np.ndarray] = {}
    repeated = dict.fromkeys(floats, True)
    low = dict.fromkeys(floats, np.inf)
    high = dict.fromkeys(floats, -np.inf)
    count = 0
    for where, feed in data.named():
        count += 1
        for name in floats:
            x = feed[name]
            finite = np.isfinite(x)
            if not finite.all():
                at = tuple(int(i) for i in np.argwhere(~finite)[0])
                raise CalibrationDataError(
                    f"{role} data, {where}: input '{name}' holds {x[at]} at index {list(at)}; every value "
                    "must be finite: repair or drop that sample"
                )
            reference = first.setdefault(name, x)
            repeated[name] = repeated[name] and np.array_equal(reference, x)
            low[name] = min(low[name], float(x.min(initial=np.inf)))
            high[name] = max(high[name], float(x.max(initial=-np.inf)))
    if min_samples is not None:
        warn_degenerate(role, count, min_samples, {n: (low[n], high[n], repeated[n]) for n in floats})


def warn_degenerate(
    role: str, count: int, min_samples: int, inputs: dict[str, tuple[float, float, bool]]
) -> None:
    for name, (low, high, repeated) in inputs.items():
        if low == high:
            warn(
                f"input '{name}' is {low:g} everywhere in all {count} {role} samples (a constant input): "
                "activation ranges then fit that one value only; give samples like the data the model sees"
            )
        elif repeated and count > 1:
            warn(
                f"the {count} {role} samples of input '{name}' are all the same array: give distinct "
                "samples like the data the model will see"
            )
    if count < min_samples:
        warn(
            f"only {count} {role} sample{'s' if count != 1 else ''}: range selection, sensitivities and "
            f"bias correction are measured on {min_samples}; give {min_samples} or more representative ones"
        )


def evaluation_feeds(source: CalibrationSource, graph: Graph | Mapping[str, TensorType]) -> list[Feed]:
    """Every sample of evaluation data (same formats as calibration data), its values checked finite."""
    data = load_calibration_data(source, graph, seed=None)
    check_values(data, "evaluation")
    return list(data)
