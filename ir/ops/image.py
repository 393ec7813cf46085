"""Op family: image (filled in next)."""
