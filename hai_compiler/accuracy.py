"""How HAI measures closeness to a reference: DESIGN.md's relative error, per output.

relative error = ‖hai − ref‖₂ / ‖ref‖₂ over the whole tensor (in float64); an
all-zero reference compares the absolute norm instead so the ratio stays defined.
"""

from __future__ import annotations

import numpy as np


def relative_error(actual: np.ndarray, reference: np.ndarray) -> float:
    """‖actual − reference‖₂ / ‖reference‖₂; shapes must match."""
    a = np.asarray(actual, dtype=np.float64)
    r = np.asarray(reference, dtype=np.float64)
    if a.shape != r.shape:
        raise ValueError(f"shape {a.shape} differs from the reference's {r.shape}")
    diff = float(np.linalg.norm((a - r).ravel()))
    norm = float(np.linalg.norm(r.ravel()))
    return diff / norm if norm > 0 else diff
