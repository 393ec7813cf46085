"""Generated convolutional architectures of the zoo: classic classifiers, a detector head, a segmenter and a
super-resolution net, at their published layer configurations (weights from a seed, `onnx_builder`).

Rule: each function builds one architecture as its reference exporter writes it, taking the seed and
returning a ModelProto whose single float input is named `image`.
"""

from __future__ import annotations

import onnx

from hai_compiler.zoo.onnx_builder import Builder


def resnet(depth: int, seed: int = 0) -> onnx.ModelProto:
    """ResNet-18 (basic blocks) or ResNet-50 (bottlenecks), 224x224, 1000 classes."""
    blocks = {18: [2, 2, 2, 2], 50: [3, 4, 6, 3]}[depth]
    expansion = 1 if depth < 50 else 4
    b = Builder(f"resnet{depth}", seed)
    x = b.input("image", [1, 3, 224, 224])
    x = b.op("MaxPool", [b.conv_bn(x, 3, 64, 7, 2)], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    cin = 64
    for stage, count in enumerate(blocks):
        width = 64 * 2**stage
        for index in range(count):
            stride = 2 if stage > 0 and index == 0 else 1
            cout = width * expansion
            if expansion == 1:
                y = b.conv_bn(b.conv_bn(x, cin, width, 3, stride), width, cout, 3, act="none")
            else:
                y = b.conv_bn(b.conv_bn(x, cin, width, 1), width, width, 3, stride)
                y = b.conv_bn(y, width, cout, 1, act="none")
            shortcut = b.conv_bn(x, cin, cout, 1, stride, act="none") if stride != 1 or cin != cout else x
            x, cin = b.act(b.op("Add", [y, shortcut]), "relu"), cout
    return b.model([b.classifier(x, cin, 1000)])


def _inverted_residual(b: Builder, x: str, cin: int, cout: int, stride: int, expand: int) -> str:
    """MobileNetV2's block: 1x1 expand, 3x3 depthwise, 1x1 project, all with ReLU6 but the last."""
    hidden = cin * expand
    y = b.conv_bn(x, cin, hidden, 1, act="relu6") if expand != 1 else x
    y = b.conv_bn(y, hidden, hidden, 3, stride, groups=hidden, act="relu6")
    y = b.conv_bn(y, hidden, cout, 1, act="none")
    return b.op("Add", [x, y]) if stride == 1 and cin == cout else y


def mobilenet_v2(seed: int = 0) -> onnx.ModelProto:
    """MobileNetV2 1.0, 224x224: inverted residuals with ReLU6 (Clip)."""
    b = Builder("mobilenet_v2", seed)
    x = b.conv_bn(b.input("image", [1, 3, 224, 224]), 3, 32, 3, 2, act="relu6")
    cin = 32
    for expand, cout, count, stride in [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
                                        (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]:  # fmt: skip
        for index in range(count):
            x = _inverted_residual(b, x, cin, cout, stride if index == 0 else 1, expand)
            cin = cout
    return b.model([b.classifier(b.conv_bn(x, cin, 1280, 1, act="relu6"), 1280, 1000)])


def mobilenet_v3_small(seed: int = 0) -> onnx.ModelProto:
    """MobileNetV3-Small, 224x224: HardSwish, squeeze-excite with HardSigmoid."""
    b = Builder("mobilenet_v3_small", seed)
    x = b.conv_bn(b.input("image", [1, 3, 224, 224]), 3, 16, 3, 2, act="hardswish")
    cin = 16
    # kernel, expanded width, out, squeeze-excite, activation, stride (torchvision's table)
    table = [(3, 16, 16, True, "relu", 2), (3, 72, 24, False, "relu", 2), (3, 88, 24, False, "relu", 1),
             (5, 96, 40, True, "hardswish", 2), (5, 240, 40, True, "hardswish", 1),
             (5, 240, 40, True, "hardswish", 1), (5, 120, 48, True, "hardswish", 1),
             (5, 144, 48, True, "hardswish", 1), (5, 288, 96, True, "hardswish", 2),
             (5, 576, 96, True, "hardswish", 1), (5, 576, 96, True, "hardswish", 1)]  # fmt: skip
    for k, hidden, cout, se, act, stride in table:
        y = b.conv_bn(x, cin, hidden, 1, act=act) if hidden != cin else x
        y = b.conv_bn(y, hidden, hidden, k, stride, groups=hidden, act=act)
        if se:
            y = b.squeeze_excite(y, hidden, _divisible(hidden // 4), "relu", "hardsigmoid")
        y = b.conv_bn(y, hidden, cout, 1, act="none")
        x = b.op("Add", [x, y]) if stride == 1 and cin == cout else y
        cin = cout
    x = b.conv_bn(x, cin, 576, 1, act="hardswish")
    flat = b.op("Flatten", [b.op("GlobalAveragePool", [x])], axis=1)
    head = b.act(b.op("Gemm", [flat, b.weight((1024, 576)), b.small((1024,))], transB=1), "hardswish")
    return b.model([b.op("Gemm", [head, b.weight((1000, 1024)), b.small((1000,))], transB=1)])


def _divisible(value: int, divisor: int = 8) -> int:
    return max(divisor, (value + divisor // 2) // divisor * divisor)


def efficientnet_b0(seed: int = 0) -> onnx.ModelProto:
    """EfficientNet-B0, 224x224: MBConv with SiLU (Sigmoid·Mul) and squeeze-excite."""
    b = Builder("efficientnet_b0", seed)
    x = b.conv_bn(b.input("image", [1, 3, 224, 224]), 3, 32, 3, 2, act="silu")
    cin = 32
    stages = [(1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2), (6, 3, 2, 80, 3),
              (6, 5, 1, 112, 3), (6, 5, 2, 192, 4), (6, 3, 1, 320, 1)]  # fmt: skip
    for expand, k, stride, cout, count in stages:
        for index in range(count):
            s = stride if index == 0 else 1
            hidden = cin * expand
            y = b.conv_bn(x, cin, hidden, 1, act="silu") if expand != 1 else x
            y = b.conv_bn(y, hidden, hidden, k, s, groups=hidden, act="silu")
            pooled = b.op("GlobalAveragePool", [y])
            squeezed = b.act(b.conv(pooled, hidden, max(1, cin // 4), 1), "silu")
            y = b.op("Mul", [y, b.op("Sigmoid", [b.conv(squeezed, max(1, cin // 4), hidden, 1)])])
            y = b.conv_bn(y, hidden, cout, 1, act="none")
            x = b.op("Add", [x, y]) if s == 1 and cin == cout else y
            cin = cout
    return b.model([b.classifier(b.conv_bn(x, cin, 1280, 1, act="silu"), 1280, 1000)])


def convnext(
    seed: int = 0, depths: tuple[int, ...] = (3, 3, 9, 3), dims: tuple[int, ...] = (96, 192, 384, 768)
) -> onnx.ModelProto:
    """ConvNeXt-Tiny, 224x224: 7x7 depthwise conv, LayerNorm over channels (NHWC), Gelu MLP, layer scale."""
    b = Builder("convnext_tiny", seed)
    x = b.conv(b.input("image", [1, 3, 224, 224]), 3, dims[0], 4, 4, pads=[0, 0, 0, 0])
    x = _channels_layernorm(b, x, dims[0])
    for stage, (depth, dim) in enumerate(zip(depths, dims)):
        if stage > 0:
            x = _channels_layernorm(b, x, dims[stage - 1])
            x = b.conv(x, dims[stage - 1], dim, 2, 2, pads=[0, 0, 0, 0])
        for _ in range(depth):
            y = b.op("Transpose", [b.conv(x, dim, dim, 7, groups=dim)], perm=[0, 2, 3, 1])
            y = b.linear(b.act(b.linear(b.layernorm(y, dim), dim, 4 * dim), "gelu"), 4 * dim, dim)
            y = b.op("Mul", [y, b.small((dim,), 0.1, 0.5)])
            x = b.op("Add", [x, b.op("Transpose", [y], perm=[0, 3, 1, 2])])
    pooled = b.op("Flatten", [b.op("GlobalAveragePool", [x])], axis=1)
    pooled = b.layernorm(pooled, dims[-1])
    return b.model([b.linear(pooled, dims[-1], 1000)])


def _channels_layernorm(b: Builder, x: str, dim: int) -> str:
    y = b.layernorm(b.op("Transpose", [x], perm=[0, 2, 3, 1]), dim)
    return b.op("Transpose", [y], perm=[0, 3, 1, 2])


def unet(seed: int = 0) -> onnx.ModelProto:
    """A 4-level UNet segmenter, 256x256, 2 classes: 3x3 conv pairs, MaxPool down, ConvTranspose up, skips."""
    b = Builder("unet", seed)
    x = b.input("image", [1, 3, 256, 256])
    widths = [32, 64, 128, 256]
    skips, cin = [], 3
    for level, width in enumerate(widths):
        if level > 0:
            x = b.op("MaxPool", [x], kernel_shape=[2, 2], strides=[2, 2])
        x = b.conv_bn(b.conv_bn(x, cin, width, 3), width, width, 3)
        skips.append(x)
        cin = width
    for width, skip in zip(reversed(widths[:-1]), reversed(skips[:-1])):
        up = b.op("ConvTranspose", [x, b.weight((cin, width, 2, 2), fan_in=cin * 4), b.small((width,))],
                  kernel_shape=[2, 2], strides=[2, 2])  # fmt: skip
        x = b.conv_bn(b.conv_bn(b.op("Concat", [skip, up], axis=1), 2 * width, width, 3), width, width, 3)
        cin = width
    return b.model([b.conv(x, cin, 2, 1)])


def espcn(seed: int = 0, scale: int = 3) -> onnx.ModelProto:
    """ESPCN super-resolution (x3) on a 1x1x224x224 luminance image: tanh convs, DepthToSpace."""
    b = Builder("espcn", seed)
    x = b.act(b.conv(b.input("image", [1, 1, 224, 224]), 1, 64, 5), "tanh")
    x = b.act(b.conv(x, 64, 32, 3), "tanh")
    x = b.conv(x, 32, scale * scale, 3)
    return b.model([b.op("DepthToSpace", [x], blocksize=scale, mode="CRD")])


def ssdlite(seed: int = 0, classes: int = 21) -> onnx.ModelProto:
    """SSDLite on a MobileNetV2 trunk, 320x320: depthwise-separable box and class heads on 6 feature maps,
    reshaped and concatenated into (1, anchors, 4) boxes and (1, anchors, classes) scores."""
    b = Builder("ssdlite_mobilenet_v2", seed)
    x = b.conv_bn(b.input("image", [1, 3, 320, 320]), 3, 32, 3, 2, act="relu6")
    cin, features = 32, []
    for expand, cout, count, stride in [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
                                        (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]:  # fmt: skip
        for index in range(count):
            x = _inverted_residual(b, x, cin, cout, stride if index == 0 else 1, expand)
            cin = cout
            if cout == 96 and index == count - 1:
                features.append((x, cin))
    x = b.conv_bn(x, cin, 1280, 1, act="relu6")
    features.append((x, 1280))
    cin = 1280
    for width in (512, 256, 256, 128):  # extra layers: 1x1 reduce, 3x3 depthwise stride 2, 1x1 expand
        y = b.conv_bn(x, cin, width // 2, 1, act="relu6")
        y = b.conv_bn(y, width // 2, width // 2, 3, 2, groups=width // 2, act="relu6")
        x, cin = b.conv_bn(y, width // 2, width, 1, act="relu6"), width
        features.append((x, cin))
    boxes: list[str] = []
    scores: list[str] = []
    for feature, channels in features:
        for outputs, into in ((4, boxes), (classes, scores)):
            y = b.conv_bn(feature, channels, channels, 3, groups=channels, act="relu6")
            y = b.conv(y, channels, 6 * outputs, 1)
            into.append(b.reshape(b.op("Transpose", [y], perm=[0, 2, 3, 1]), [1, -1, outputs]))
    scores_out = b.op("Softmax", [b.op("Concat", scores, axis=1)], axis=-1)
    return b.model([b.op("Concat", boxes, axis=1), scores_out])
