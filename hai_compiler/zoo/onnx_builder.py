"""A small ONNX graph builder for the zoo's generated architectures, with weights drawn from a seed.

Rule: a generator calls `Builder` methods that each add one layer as the
exporters of torchvision/timm/transformers write it (Conv + BatchNormalization,
SiLU as Sigmoid·Mul, Gelu in its erf form, LayerNormalization, MatMul + Add)
and return the output's name; `model()` closes the graph. Weights are normal
draws scaled by 1/sqrt(fan-in), so activations stay O(1) through deep stacks,
and one seed always gives the same model.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17


class Builder:
    """Nodes and initializers of one graph under construction."""

    def __init__(self, name: str, seed: int = 0) -> None:
        self.name = name
        self.rng = np.random.default_rng(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.inputs: list[onnx.ValueInfoProto] = []
        self._count = 0

    def fresh(self, stem: str) -> str:
        self._count += 1
        return f"{stem}_{self._count}"

    def input(self, name: str, shape: Sequence[int | str], dtype: int = TensorProto.FLOAT) -> str:
        self.inputs.append(helper.make_tensor_value_info(name, dtype, list(shape)))
        return name

    def const(self, array: np.ndarray | np.generic, stem: str = "c") -> str:
        name = self.fresh(stem)
        self.initializers.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def weight(self, shape: Sequence[int], fan_in: int | None = None, stem: str = "w") -> str:
        fan = fan_in if fan_in is not None else int(np.prod(shape[1:]))
        values = self.rng.standard_normal(tuple(shape)) / math.sqrt(max(fan, 1))
        return self.const(values.astype(np.float32), stem)

    def small(self, shape: Sequence[int], scale: float = 0.1, offset: float = 0.0) -> str:
        return self.const((offset + scale * self.rng.standard_normal(tuple(shape))).astype(np.float32))

    def op(self, op_type: str, inputs: Sequence[str], outputs: int = 1, **attrs: Any) -> str:
        names = [self.fresh(op_type.lower()) for _ in range(outputs)]
        self.nodes.append(helper.make_node(op_type, list(inputs), names, name=names[0], **attrs))
        return names[0]

    def ops(self, op_type: str, inputs: Sequence[str], outputs: int, **attrs: Any) -> list[str]:
        names = [self.fresh(op_type.lower()) for _ in range(outputs)]
        self.nodes.append(helper.make_node(op_type, list(inputs), names, name=names[0], **attrs))
        return names

    # --- layers --------------------------------------------------------------------------------

    def conv(
        self, x: str, cin: int, cout: int, k: int | tuple[int, ...], stride: int = 1, groups: int = 1,
        dilation: int = 1, bias: bool = True, pads: Sequence[int] | None = None,
    ) -> str:  # fmt: skip
        kernel = (k, k) if isinstance(k, int) else tuple(k)
        if pads is None:
            pads = [dilation * (s - 1) // 2 for s in kernel] * 2
        w = self.weight((cout, cin // groups, *kernel))
        operands = [x, w] + ([self.small((cout,))] if bias else [])
        return self.op(
            "Conv", operands, kernel_shape=list(kernel), strides=[stride] * len(kernel), group=groups,
            dilations=[dilation] * len(kernel), pads=list(pads),
        )  # fmt: skip

    def bn(self, x: str, channels: int) -> str:
        scale, shift = self.small((channels,), 0.1, 1.0), self.small((channels,))
        mean = self.small((channels,))
        var = self.const((0.5 + self.rng.random(channels)).astype(np.float32))
        return self.op("BatchNormalization", [x, scale, shift, mean, var], epsilon=1e-5)

    def act(self, x: str, kind: str) -> str:
        if kind == "relu":
            return self.op("Relu", [x])
        if kind == "relu6":
            return self.op("Clip", [x, self.const(np.float32(0.0)), self.const(np.float32(6.0))])
        if kind == "silu":
            return self.op("Mul", [x, self.op("Sigmoid", [x])])
        if kind == "hardswish":
            return self.op("HardSwish", [x])
        if kind == "hardsigmoid":
            return self.op("HardSigmoid", [x], alpha=1.0 / 6, beta=0.5)
        if kind == "gelu":  # the erf form that exporters write
            erf = self.op("Erf", [self.op("Div", [x, self.const(np.float32(math.sqrt(2.0)))])])
            half = self.op("Mul", [x, self.const(np.float32(0.5))])
            return self.op("Mul", [half, self.op("Add", [erf, self.const(np.float32(1.0))])])
        if kind == "tanh":
            return self.op("Tanh", [x])
        if kind == "leakyrelu":
            return self.op("LeakyRelu", [x], alpha=0.1)
        if kind == "none":
            return x
        raise ValueError(f"unknown activation {kind}")

    def conv_bn(
        self, x: str, cin: int, cout: int, k: int, stride: int = 1, groups: int = 1, act: str = "relu"
    ) -> str:
        return self.act(self.bn(self.conv(x, cin, cout, k, stride, groups, bias=False), cout), act)

    def squeeze_excite(self, x: str, channels: int, reduced: int, act: str, gate: str) -> str:
        pooled = self.op("GlobalAveragePool", [x])
        hidden = self.act(self.conv(pooled, channels, reduced, 1), act)
        return self.op("Mul", [x, self.act(self.conv(hidden, reduced, channels, 1), gate)])

    def linear(self, x: str, din: int, dout: int, bias: bool = True) -> str:
        y = self.op("MatMul", [x, self.weight((din, dout), fan_in=din)])
        return self.op("Add", [y, self.small((dout,))]) if bias else y

    def layernorm(self, x: str, dim: int) -> str:
        scale, shift = self.small((dim,), 0.1, 1.0), self.small((dim,))
        return self.op("LayerNormalization", [x, scale, shift], axis=-1, epsilon=1e-6)

    def reshape(self, x: str, shape: Sequence[int]) -> str:
        return self.op("Reshape", [x, self.const(np.asarray(shape, np.int64))])

    def classifier(self, x: str, channels: int, classes: int) -> str:
        flat = self.op("Flatten", [self.op("GlobalAveragePool", [x])], axis=1)
        return self.op("Gemm", [flat, self.weight((classes, channels)), self.small((classes,))], transB=1)

    def model(self, outputs: Sequence[str]) -> onnx.ModelProto:
        graph = helper.make_graph(
            self.nodes, self.name, self.inputs,
            [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outputs], self.initializers,
        )  # fmt: skip
        model = helper.make_model(
            graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="hai-zoo"
        )
        model.ir_version = 8
        return model
