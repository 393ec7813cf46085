"""Op family: reduce (filled in next)."""
