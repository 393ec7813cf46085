"""Op family: shape (filled in next)."""
