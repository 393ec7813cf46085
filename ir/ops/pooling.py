"""Op family: pooling (filled in next)."""
