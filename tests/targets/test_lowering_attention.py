"""The x86 Attention kernel (targets/lowering/attention.py) against the IR op's numpy reference.

Cases cover padded keys and V columns (N, E not whole vectors), keys padded past whole vectors to
fill 2-vector panels (200 -> 224), keys and columns that are whole vectors (read in place), a
broadcast run-time mask, a full constant mask, rank-2 operands, rows that no tile height above
1 divides (padded rows), a scalar (rank-0) mask and ppocr_rec's heads (head dim 15).
"""

from __future__ import annotations

import numpy as np
import pytest
from lowering_cases import Built, Case, families_ops

from targets.lowering.dispatch import supported_ops
from targets.registry import resolve_target


def attention(name: str, batch, m: int, d: int, n: int, e: int, mask=None, const_mask=False, scale=0.125):
    case = Case(name, seed=len(name))
    operands = [
        case.input("q", (*batch, m, d)),
        case.input("kt", (*batch, d, n)),
        case.input("v", (*batch, n, e)),
    ]
    if mask is not None:
        make = case.const if const_mask else case.input
        operands.append(make("mask", mask, scale=3.0) if const_mask else make("mask", mask))
    return case.op("FusedAttention", operands, scale=scale)


CASES = [
    attention("padded_keys_and_columns", (1, 3), 13, 8, 13, 8),
    attention("whole_vectors_broadcast_mask", (1, 2), 8, 16, 32, 32, mask=(1, 1, 1, 32), scale=0.25),
    attention("full_constant_mask", (2,), 5, 4, 7, 3, mask=(2, 5, 7), const_mask=True, scale=1.0),
    attention("rank2_prime_rows", (), 17, 12, 19, 16, mask=(19,)),
    attention("padded_rows_keyed_mask", (2,), 23, 8, 23, 8, mask=(23, 23)),
    attention("keys_padded_past_whole_vectors", (1,), 6, 8, 200, 20, mask=(1, 200)),
    attention("scalar_mask", (2,), 4, 8, 12, 8, mask=()),  # a rank-0 mask (ONNX flexattention's)
    attention("head_dim_15", (1, 8), 40, 15, 40, 15),  # ppocr_rec's: O over all 16 padded columns
]


@pytest.fixture(scope="module")
def built() -> Built:
    return Built(CASES, resolve_target("x86"))


@pytest.mark.parametrize("op", families_ops("attention"))
def test_every_attention_op_is_lowered_and_tested(op: str) -> None:
    assert op in supported_ops()
    assert op in {c.node.op for c in CASES}


@pytest.mark.parametrize("name", [c.name for c in CASES])
def test_attention_kernel_matches_reference(built: Built, name: str) -> None:
    built.check(name)


def test_the_reference_is_matmul_softmax_matmul() -> None:
    """The op's reference against softmax(scale * Q Kt + mask) V written out in float64."""
    case = CASES[1]
    q, kt, v, mask = (case.feeds[k].astype(np.float64) for k in ("q", "kt", "v", "mask"))
    scores = q @ kt * 0.25 + mask
    weights = np.exp(scores - scores.max(-1, keepdims=True))
    want = (weights / weights.sum(-1, keepdims=True)) @ v
    (got,) = case.reference()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
