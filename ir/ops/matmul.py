"""Op family: matmul (filled in next)."""
