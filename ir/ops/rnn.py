"""Op family: rnn (filled in next)."""
