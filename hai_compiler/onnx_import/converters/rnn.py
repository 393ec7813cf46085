"""ONNX converters: rnn family (LSTM, GRU, RNN of every opset 7+ onto the IR ops).

Rule: the IR op gets the ONNX operands unchanged and explicit attributes:
`hidden_size` from R's shape, the full activation list (one entry per gate
function and direction) in ONNX spelling, and `activation_alpha`/`activation_beta` with one value per
activation: ONNX's lists are consumed in order by the activations that take
that parameter (as onnxruntime does), the others get the activation's default.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hai_compiler.onnx_import.converter import ConversionContext, converter
from ir import Value
from ir.ops.recurrence import ACTIVATIONS
from ir.ops.rnn import DIRECTIONS, RECURRENT_OPS

_BY_LOWER_NAME = {name.lower(): name for name in ACTIVATIONS}


@converter("LSTM", "GRU", "RNN")
def convert_recurrent(ctx: ConversionContext) -> Sequence[Value | None]:
    return emit_recurrent(ctx, ctx.op_type, ctx.inputs)


def emit_recurrent(
    ctx: ConversionContext, op_type: str, inputs: list[Value | None], **extra: Any
) -> Sequence[Value | None]:
    """The IR `op_type` node (LSTM, GRU or RNN) of the node's attributes and the IR-only `extra` ones
    over ONNX-ordered `inputs`."""
    op = next(o for o in RECURRENT_OPS if o.name == op_type)
    attrs = {**ctx.attrs, **extra}
    r = inputs[2] if len(inputs) > 2 else None
    if r is None or r.type.rank != 3:
        raise ctx.fail("R must be a rank-3 tensor [num_directions, gates*hidden, hidden]")
    hidden = r.type.shape[2]
    if attrs.get("hidden_size", hidden) != hidden:
        raise ctx.fail(f"hidden_size={attrs['hidden_size']} does not match R's shape {list(r.type.shape)}")
    attrs["hidden_size"] = hidden
    direction = attrs.get("direction", "forward")
    if direction not in DIRECTIONS:
        raise ctx.fail(f"direction '{direction}' is not one of {', '.join(DIRECTIONS)}")
    attrs.update(_activation_attrs(ctx, attrs, op.default_activations, DIRECTIONS[direction]))
    return ctx.emit(op.name, inputs, attrs)


def _activation_attrs(
    ctx: ConversionContext, attrs: dict[str, Any], defaults: tuple[str, ...], dirs: int
) -> dict[str, Any]:
    """Explicit activations with one alpha and beta each, resolved the way onnxruntime does."""
    per_direction = len(defaults)
    given = list(attrs.get("activations") or defaults * dirs)
    if len(given) == 2 * per_direction and dirs == 1:
        given = given[:per_direction]  # e.g. RNN's documented default ["Tanh", "Tanh"]
    if len(given) != per_direction * dirs:
        raise ctx.fail(f"activations {given} must name {per_direction} function(s) per direction")
    names = []
    for name in given:
        canonical = _BY_LOWER_NAME.get(str(name).lower())
        if canonical is None:
            raise ctx.fail(f"activation '{name}' is not supported (supported: {', '.join(ACTIVATIONS)})")
        names.append(canonical)
    alphas = list(attrs.get("activation_alpha") or [])
    betas = list(attrs.get("activation_beta") or [])
    resolved_alpha, resolved_beta = [], []
    for name in names:
        spec = ACTIVATIONS[name]
        resolved_alpha.append(alphas.pop(0) if spec.alpha is not None and alphas else spec.alpha or 0.0)
        resolved_beta.append(betas.pop(0) if spec.beta is not None and betas else spec.beta or 0.0)
    return {"activations": names, "activation_alpha": resolved_alpha, "activation_beta": resolved_beta}
