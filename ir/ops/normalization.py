"""Op family: normalization (filled in next)."""
