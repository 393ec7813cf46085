"""Quantization: calibration data, observers, calibration runs and their statistics.

Calibration's public names are re-exported here; importing this package
registers every built-in observer (`minmax`, `percentile`, `mse`, `entropy`).
"""

from __future__ import annotations

from hai_compiler.quantize import range_search  # noqa: F401  (registers mse and entropy)
from hai_compiler.quantize.calibrate import (
    CALIBRATION_PIPELINE,
    ObservingInterpreter,
    calibrate,
    prepare_graph,
)
from hai_compiler.quantize.calibration_data import (
    CalibrationData,
    CalibrationDataError,
    CalibrationSource,
    load_calibration_data,
)
from hai_compiler.quantize.histogram import Histogram
from hai_compiler.quantize.observers import (
    OBSERVERS,
    Observer,
    ObserverError,
    make_observer,
    observer,
    restore_observer,
)
from hai_compiler.quantize.range_search import EntropyObserver, MSEObserver
from hai_compiler.quantize.statistics import CalibrationStats, StatsError, observed_values

__all__ = [
    "CALIBRATION_PIPELINE",
    "OBSERVERS",
    "CalibrationData",
    "CalibrationDataError",
    "CalibrationSource",
    "CalibrationStats",
    "EntropyObserver",
    "Histogram",
    "MSEObserver",
    "Observer",
    "ObserverError",
    "ObservingInterpreter",
    "StatsError",
    "calibrate",
    "load_calibration_data",
    "make_observer",
    "observed_values",
    "observer",
    "prepare_graph",
    "restore_observer",
]
