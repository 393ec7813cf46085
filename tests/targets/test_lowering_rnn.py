"""x86 recurrent kernels (LSTM, GRU, RNN: the registry's rnn family) against the IR references.

Covers directions, both layouts, sequence_lens (including an empty row), initial
states, peepholes, input_forget, linear_before_reset, clip and non-default
activations, and the tiled kernel's shapes (targets/lowering/rnn_step.py): several
tiles of hidden units, a last tile partly padded, W, R and B given at run time
(gathered in the kernel); every result (Y, Y_h, Y_c) must match
`get_schema(op).compute` (rel err <= 1e-5 for f32). One build_kernels call for the module.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from lowering_cases import Built, Case, families_ops

from targets import schedules
from targets.lowering.dispatch import supported_ops
from targets.registry import resolve_target

GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}
DIRECTIONS = {"forward": 1, "reverse": 1, "bidirectional": 2}


def recurrent(
    name: str,
    op: str,
    *,
    direction: str = "forward",
    layout: int = 0,
    bias: bool = True,
    lens: list[int] | None = None,
    initial: bool = False,
    peepholes: bool = False,
    runtime_weights: bool = False,
    dtype: str = "float32",
    seq: int = 5,
    batch: int = 3,
    inputs: int = 4,
    hidden: int = 6,
    **attrs,
) -> Case:
    case = Case(name, seed=len(name))
    dirs, rows = DIRECTIONS[direction], GATES[op] * hidden
    x_shape = (seq, batch, inputs) if layout == 0 else (batch, seq, inputs)
    state = (dirs, batch, hidden) if layout == 0 else (batch, dirs, hidden)
    weight = case.input if runtime_weights else case.const
    operands = [
        case.input("x", x_shape, dtype),
        weight("w", (dirs, rows, inputs), dtype),
        weight("r", (dirs, rows, hidden), dtype),
        weight("b", (dirs, 2 * rows), dtype) if bias else None,
        case.input("lens", (batch,), array=np.array(lens, np.int32)) if lens is not None else None,
        case.input("h0", state, dtype) if initial else None,
    ]
    if op == "LSTM":
        operands.append(case.input("c0", state, dtype) if initial else None)
        operands.append(case.const("p", (dirs, 3 * hidden), dtype) if peepholes else None)
    while operands[-1] is None:
        operands.pop()
    return case.op(op, operands, hidden_size=hidden, direction=direction, layout=layout, **attrs)


# fmt: off
CASES = [
    recurrent("rnn", "RNN"),
    recurrent("rnn_reverse_lens_clip", "RNN", direction="reverse", lens=[5, 0, 3], initial=True, clip=0.5),
    recurrent("rnn_relu_layout1", "RNN", layout=1, bias=False, activations=["Relu"]),
    recurrent("gru_bidirectional_lens", "GRU", direction="bidirectional", lens=[2, 5, 4], initial=True),
    recurrent("gru_linear_before_reset", "GRU", linear_before_reset=1, layout=1, bias=False),
    recurrent("lstm_bidirectional_peepholes", "LSTM", direction="bidirectional", initial=True,
              peepholes=True, lens=[5, 1, 0]),
    recurrent("lstm_input_forget_activations", "LSTM", input_forget=1, layout=1,
              activations=["HardSigmoid", "Elu", "Softplus"], activation_alpha=[0.3, 1.2, 0.0],
              activation_beta=[0.4, 0.0, 0.0]),
    recurrent("lstm_f16", "LSTM", dtype="float16"),
    recurrent("lstm_tiles_runtime_weights", "LSTM", direction="bidirectional", hidden=40, inputs=24,
              runtime_weights=True, peepholes=True, initial=True, lens=[5, 2, 4]),
    recurrent("gru_tiles_padded", "GRU", direction="reverse", hidden=70, inputs=33, seq=7, batch=2,
              clip=2.5, layout=1),
    recurrent("gru_linear_tiles_runtime_weights", "GRU", hidden=48, runtime_weights=True,
              linear_before_reset=1, direction="bidirectional", lens=[3, 5, 0], initial=True),
    recurrent("rnn_tiles_f64", "RNN", hidden=100, dtype="float64", direction="bidirectional"),
]
# fmt: on


@pytest.fixture(scope="module")
def built() -> Built:
    return Built(CASES, resolve_target("x86"))


@pytest.mark.parametrize("op", families_ops("rnn"))
def test_every_recurrent_op_is_lowered_and_tested(op: str) -> None:
    assert op in supported_ops()
    assert op in {c.node.op for c in CASES}, f"no x86 lowering test case for {op}"


@pytest.mark.parametrize("name", [c.name for c in CASES])
def test_recurrent_kernel_matches_reference(built: Built, name: str) -> None:
    built.check(name)


def test_directions_one_after_the_other(monkeypatch: pytest.MonkeyPatch) -> None:
    """Above `RECURRENT_TOGETHER_BYTES` of R a bidirectional layer runs its forward sequence, then its
    reverse one (`together` off): the same results."""
    monkeypatch.setattr(schedules, "RECURRENT_TOGETHER_BYTES", 0)
    cases = [
        recurrent("lstm_directions_apart", "LSTM", direction="bidirectional", lens=[5, 2, 0], initial=True),
        recurrent("gru_directions_apart", "GRU", direction="bidirectional", hidden=40, lens=[1, 5, 3]),
    ]
    built = Built(cases, resolve_target("x86"))
    for case in cases:
        assert built.kernels[case.name].workload["knobs"]["recurrent"]["together"] is False
        built.check(case.name)


def test_dot_step_tiles_hold_twice_the_accumulators() -> None:
    """A step on the dot instruction reads R from memory: `RECURRENT_DOT_ACCUMULATORS` // gates vectors a
    gate, no more than the hidden units fill, fewer where the registers do not hold them and a broadcast."""
    host = resolve_target("x86")
    knobs = schedules.RecurrentKnobs(lanes=16, vectors=2, parallel=True)
    wide, narrow = (dataclasses.replace(host, vector_registers=n) for n in (32, 16))
    assert schedules.dot_recurrent_knobs(wide, knobs, 4, 512).vectors == 4
    assert schedules.dot_recurrent_knobs(narrow, knobs, 4, 512).vectors == 3  # 4 x 3 + 1 <= 16 < 4 x 4 + 1
    assert schedules.dot_recurrent_knobs(wide, knobs, 4, 20).vectors == 2  # 20 units fill 2 vectors
    assert schedules.dot_recurrent_knobs(wide, knobs, 4, 20).together == knobs.together
