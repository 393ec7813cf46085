"""What quantization tells the user without failing: a `QuantizationWarning`.

Rule: the library warns through Python's `warnings` (a caller may filter or
turn them into errors); the CLI shows each as one `warning: ...` line on
stderr, at the moment it is raised (`printed_warnings`).
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class QuantizationWarning(UserWarning):
    """Quantization went on, but on something the user should fix or know (degenerate data, a budget
    that holds on the calibration samples only)."""


def warn(message: str) -> None:
    warnings.warn(QuantizationWarning(message), stacklevel=3)


@contextmanager
def printed_warnings() -> Iterator[None]:
    """Inside: each QuantizationWarning is one `warning: ...` line on stderr (others as Python shows them)."""
    with warnings.catch_warnings():
        warnings.simplefilter("always", QuantizationWarning)
        shown = warnings.showwarning

        def show(message: Any, category: type[Warning], *args: Any, **kwargs: Any) -> None:
            if issubclass(category, QuantizationWarning):
                sys.stdout.flush()
                sys.stderr.write(f"warning: {message}\n")
            else:
                shown(message, category, *args, **kwargs)

        warnings.showwarning = show
        yield
