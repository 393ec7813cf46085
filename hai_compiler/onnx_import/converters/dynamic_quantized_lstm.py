"""ONNX converter: onnxruntime's `com.microsoft` DynamicQuantizeLSTM (what `quantize_dynamic` makes of
an LSTM) → HAI's LSTM reading its stored 8-bit W and R, with u8 activations quantized at run time.

Rule: W [dirs, input, 4H] and R [dirs, H, 4H] (int8 or uint8, with a scale and
zero point per direction or per direction and gate column) stay stored 8-bit:
each becomes a constant transposed to ONNX LSTM's [dirs, 4H, input] order,
typed with its scales and zero points, read through a DequantizeLinear (marked
imported) by the IR's float LSTM, whose other operands and attributes are the
node's own. Per-column scales are supported for one direction (the IR's
quantization has one channel axis); two directions take one scale each.

Precision: the LSTM's attribute `dynamic_quantization` is "u8" (and it is marked
imported), so the x86 kernel does onnxruntime's arithmetic
(targets/lowering/rnn_quantized.py): X and each step's hidden state quantized
to u8 at run time, integer products with the stored 8-bit W and R, scaled by
their per-tensor or per-row scales. The `fuse` pass takes both
DequantizeLinears as the kernel's weight prologues, so the weights stay 8-bit
in the artifact (the report says int8). The interpreter computes the gates in
f32 from the dequantized weights (the IR's LSTM). Measured on a seq 16, batch
1, input 32, hidden 64 LSTM with N(0, 0.2) weights
(tests/onnx_import/test_dynamic_quantized.py), max |HAI - onnxruntime| /
max |onnxruntime| of Y, Y_h, Y_c: 2.6e-7, 1.1e-7, 9.7e-8 (per-tensor weight
scales); 1.8e-7, 1.6e-7, 1.5e-7 (per gate column). Latency there (isolated
processes, 1 thread, p50): HAI 0.067 ms, onnxruntime 0.020 ms (HAI's f32 LSTM
kernel on the float model: 0.20 ms).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from hai_compiler.onnx_import.converter import ConversionContext, converter
from hai_compiler.onnx_import.converters.quantized_operands import MICROSOFT, mark_imported
from hai_compiler.onnx_import.converters.rnn import emit_recurrent
from ir import Value
from ir.dtypes import DType
from ir.ops.rnn import DYNAMIC_QUANTIZATION
from ir.types import QuantParams, TensorType

W_SCALE, R_SCALE = 8, 10  # input indices of W's and R's scales; each zero point follows its scale


def _stored_weight(ctx: ConversionContext, index: int, scale_index: int, what: str) -> Value:
    """Input `index` ([dirs, k, 4H] 8-bit) as DequantizeLinear of its [dirs, 4H, k] stored constant."""
    weights = ctx.static_input(index, what)
    scales = ctx.static_input(scale_index, f"{what} scale")
    zeros = ctx.static_input(scale_index + 1, f"{what} zero point")
    if weights is None or scales is None:
        raise ctx.fail(f"{what} and its scale are required")
    if weights.dtype not in (np.int8, np.uint8) or weights.ndim != 3:
        raise ctx.fail(f"{what} {weights.dtype}{list(weights.shape)} must be an 8-bit [dirs, k, 4H] tensor")
    dirs, _, columns = weights.shape
    zeros = np.zeros(scales.shape, np.int64) if zeros is None else zeros.astype(np.int64)
    if scales.size == dirs:
        axis = 0 if dirs > 1 else None
    elif scales.size == dirs * columns and dirs == 1:
        axis = 1
    else:
        raise ctx.fail(
            f"{what} scale of shape {list(scales.shape)} must hold one value per direction, or per gate "
            f"column for one direction ({dirs} x {columns})"
        )
    if zeros.size != scales.size:
        raise ctx.fail(
            f"{what} zero point shape {list(zeros.shape)} differs from its scale's {list(scales.shape)}"
        )
    params = QuantParams(tuple(float(s) for s in scales.ravel()), tuple(int(z) for z in zeros.ravel()), axis)
    stored = np.ascontiguousarray(weights.transpose(0, 2, 1))
    typed = TensorType(DType.from_numpy(weights.dtype), stored.shape, quant=params)
    name = ctx.input(index).name  # type: ignore[union-attr]
    constant = ctx.graph.add_constant(f"{name}.stored", stored, typed)
    (real,) = ctx.emit("DequantizeLinear", [constant], {"dtype": DType.F32})
    mark_imported([real])
    return real


@converter("DynamicQuantizeLSTM", domain=MICROSOFT)
def dynamic_quantize_lstm(ctx: ConversionContext) -> Sequence[Value | None]:
    """(X, W, R, B?, sequence_lens?, initial_h?, initial_c?, P?, W_scale, W_zero_point, R_scale,
    R_zero_point){LSTM's attributes} → LSTM(X, DequantizeLinear(W), DequantizeLinear(R), ...) with dynamic
    u8 activations (module rule)."""
    w = _stored_weight(ctx, 1, W_SCALE, "W")
    r = _stored_weight(ctx, 2, R_SCALE, "R")
    rest = [ctx.input(i) for i in range(3, 8)]
    results = emit_recurrent(ctx, "LSTM", [ctx.input(0), w, r, *rest], **{DYNAMIC_QUANTIZATION: "u8"})
    mark_imported([results[0]])
    return results
