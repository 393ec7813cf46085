"""What quantization tells the user without failing: a `QuantizationWarning`.

Rule: the library warns through Python's `warnings` (a caller may filter or
turn them into errors); a QuantizationWarning is a `HaiWarning` (ir/errors.py),
so the CLI shows each as one `warning: ...` line on stderr, at the moment it is
raised (hai_compiler/warning_lines.py).
"""

from __future__ import annotations

import warnings

from ir.errors import HaiWarning


class QuantizationWarning(HaiWarning):
    """Quantization went on, but on something the user should fix or know (degenerate data, a budget
    that holds on the calibration samples only)."""


def warn(message: str) -> None:
    warnings.warn(QuantizationWarning(message), stacklevel=3)
