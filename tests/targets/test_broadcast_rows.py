"""targets/lowering/broadcast_rows.py: which trailing dims form the row of a broadcast kernel, against
shapes worked out by hand (the kernels themselves are checked in test_lowering_elementwise.py)."""

from __future__ import annotations

import pytest

from targets.lowering.broadcast_rows import row_dims


@pytest.mark.parametrize(
    ("out", "operands", "row"),
    [
        ((1, 2048, 257), [(1, 2048, 1), (1, 1, 257)], 1),  # one-hot Equal: the last dim alone
        ((1, 96, 40, 40), [(1, 96, 40, 40), (1, 96, 1, 1)], 2),  # per channel: H and W
        ((1, 40, 120), [(1, 40, 120), (1, 40, 1), (120,)], 1),  # a row statistic and a per-column scale
        ((1, 96, 40, 40), [(1, 96, 40, 40), (1, 96, 40, 40)], 2),  # no broadcast: at most two dims
        ((8, 1, 1), [(8, 1, 1), ()], 3),  # size-1 dims after the last sized one go with it
        ((1, 1), [(1, 1)], 0),  # nothing above size 1
    ],
)
def test_row_is_the_trailing_run_of_one_pattern(out, operands, row) -> None:  # type: ignore[no-untyped-def]
    assert row_dims(out, operands) == row
