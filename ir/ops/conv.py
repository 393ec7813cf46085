"""Op family: conv (filled in next)."""
