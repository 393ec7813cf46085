"""Generated sequence architectures of the zoo: a MiniLM sentence encoder, a ViT, a CRNN recogniser with
bidirectional GRUs and a keyword spotter behind an STFT front-end (weights from a seed, `onnx_builder`).

Rule: each function builds one architecture as its exporter writes it (attention as MatMul -> Softmax ->
MatMul over per-head reshapes, Gelu in its erf form, GRU with `linear_before_reset` as PyTorch exports it,
the STFT as a strided Conv1d over a windowed DFT basis) and returns a ModelProto.
"""

from __future__ import annotations

import math

import numpy as np
import onnx
from onnx import TensorProto

from hai_compiler.zoo.onnx_builder import Builder


def _attention(b: Builder, x: str, seq: int, dim: int, heads: int, mask: str | None = None) -> str:
    """Multi-head self-attention over x (1, seq, dim)."""
    head = dim // heads

    def split(t: str, perm: list[int]) -> str:
        return b.op("Transpose", [b.reshape(t, [1, seq, heads, head])], perm=perm)

    q = split(b.linear(x, dim, dim), [0, 2, 1, 3])
    k = split(b.linear(x, dim, dim), [0, 2, 3, 1])
    v = split(b.linear(x, dim, dim), [0, 2, 1, 3])
    scores = b.op("Div", [b.op("MatMul", [q, k]), b.const(np.float32(math.sqrt(head)))])
    if mask is not None:
        scores = b.op("Add", [scores, mask])
    context = b.op("MatMul", [b.op("Softmax", [scores], axis=-1), v])
    context = b.reshape(b.op("Transpose", [context], perm=[0, 2, 1, 3]), [1, seq, dim])
    return b.linear(context, dim, dim)


def _mlp(b: Builder, x: str, dim: int, hidden: int) -> str:
    return b.linear(b.act(b.linear(x, dim, hidden), "gelu"), hidden, dim)


def minilm(
    seed: int = 0, seq: int = 128, layers: int = 6, dim: int = 384, heads: int = 12
) -> onnx.ModelProto:
    """all-MiniLM-L6-v2's shape: a 6-layer post-LayerNorm BERT encoder, vocabulary 30522, sequence 128,
    with the masked mean pooling of sentence-transformers; outputs the hidden states and the embedding."""
    b = Builder("minilm_l6", seed)
    ids = b.input("input_ids", [1, seq], TensorProto.INT64)
    mask = b.input("attention_mask", [1, seq], TensorProto.INT64)
    words = b.op("Gather", [b.small((30522, dim), 0.5), ids])
    x = b.op("Add", [b.op("Add", [words, b.small((1, seq, dim), 0.5)]), b.small((dim,), 0.5)])
    x = b.layernorm(x, dim)
    maskf = b.op("Cast", [mask], to=TensorProto.FLOAT)
    inverted = b.op("Sub", [b.const(np.float32(1.0)), maskf])
    additive = b.op("Unsqueeze", [b.op("Mul", [inverted, b.const(np.float32(-10000.0))]),
                                  b.const(np.array([1, 2], np.int64))])  # fmt: skip
    for _ in range(layers):
        x = b.layernorm(b.op("Add", [x, _attention(b, x, seq, dim, heads, additive)]), dim)
        x = b.layernorm(b.op("Add", [x, _mlp(b, x, dim, 4 * dim)]), dim)
    weights = b.op("Unsqueeze", [maskf, b.const(np.array([-1], np.int64))])
    summed = b.op("ReduceSum", [b.op("Mul", [x, weights]), b.const(np.array([1], np.int64))], keepdims=0)
    count = b.op("ReduceSum", [weights, b.const(np.array([1], np.int64))], keepdims=0)
    return b.model([x, b.op("Div", [summed, count])])


def vit(seed: int = 0, dim: int = 192, layers: int = 12, heads: int = 3) -> onnx.ModelProto:
    """ViT-Tiny/16, 224x224: patch conv, class token, learned positions, 12 pre-LN blocks, 1000 classes."""
    b = Builder("vit_tiny", seed)
    patches = b.conv(b.input("image", [1, 3, 224, 224]), 3, dim, 16, 16, pads=[0, 0, 0, 0])
    tokens = b.op("Transpose", [b.reshape(patches, [1, dim, 196])], perm=[0, 2, 1])
    x = b.op(
        "Add", [b.op("Concat", [b.small((1, 1, dim), 0.5), tokens], axis=1), b.small((1, 197, dim), 0.5)]
    )
    for _ in range(layers):
        x = b.op("Add", [x, _attention(b, b.layernorm(x, dim), 197, dim, heads)])
        x = b.op("Add", [x, _mlp(b, b.layernorm(x, dim), dim, 4 * dim)])
    cls = b.op("Gather", [b.layernorm(x, dim), b.const(np.int64(0))], axis=1)
    return b.model([b.linear(cls, dim, 1000)])


def crnn_gru(seed: int = 0, width: int = 128, classes: int = 37) -> onnx.ModelProto:
    """A CRNN text recogniser on a 32-pixel-high grey line: a VGG-style trunk, two bidirectional GRUs
    (hidden 128) over the columns, per-step class scores (Softmax)."""
    b = Builder("crnn_gru", seed)
    x = b.input("image", [1, 1, 32, width])
    cin = 1
    for cout, pool in ((64, [2, 2]), (128, [2, 2]), (256, None), (256, [2, 1]), (256, [2, 1])):
        x = b.conv_bn(x, cin, cout, 3)
        if pool:
            x = b.op("MaxPool", [x], kernel_shape=pool, strides=pool)
        cin = cout
    steps = width // 4
    seq = b.op("Transpose", [b.reshape(x, [1, cin * 2, steps])], perm=[2, 0, 1])  # (steps, 1, features)
    features = cin * 2
    for _ in range(2):
        hidden = 128
        w = b.weight((2, 3 * hidden, features), fan_in=features)
        r = b.weight((2, 3 * hidden, hidden), fan_in=hidden)
        y = b.op("GRU", [seq, w, r, b.small((2, 6 * hidden))], direction="bidirectional", hidden_size=hidden,
                 linear_before_reset=1)  # fmt: skip
        seq = b.reshape(b.op("Transpose", [y], perm=[0, 2, 1, 3]), [steps, 1, 2 * hidden])
        features = 2 * hidden
    return b.model([b.op("Softmax", [b.linear(seq, features, classes)], axis=-1)])


def _dft_basis(n_fft: int) -> np.ndarray:
    """The Hann-windowed real DFT as Conv1d weights (2 * (n_fft // 2 + 1), 1, n_fft): cosines, then sines."""
    bins = n_fft // 2 + 1
    t = np.arange(n_fft)
    window = 0.5 - 0.5 * np.cos(2 * np.pi * t / n_fft)
    angle = 2 * np.pi * np.outer(np.arange(bins), t) / n_fft
    return np.concatenate([np.cos(angle) * window, -np.sin(angle) * window])[:, None, :].astype(np.float32)


def kws_stft(seed: int = 0, samples: int = 16000, n_fft: int = 400, hop: int = 160) -> onnx.ModelProto:
    """A keyword spotter on one second of 16 kHz audio: STFT as a strided Conv1d (reflect-padded), power,
    40 mel-like bands, log, then 1-D convs (plain, strided, dilated, grouped) and 12 classes."""
    b = Builder("kws_stft", seed)
    audio = b.op("Unsqueeze", [b.input("audio", [1, samples]), b.const(np.array([1], np.int64))])
    padded = b.op(
        "Pad", [audio, b.const(np.array([0, 0, n_fft // 2, 0, 0, n_fft // 2], np.int64))], mode="reflect"
    )
    spectrum = b.op("Conv", [padded, b.const(_dft_basis(n_fft))], kernel_shape=[n_fft], strides=[hop])
    real, imag = b.ops("Split", [spectrum], 2, axis=1)
    power = b.op("Add", [b.op("Mul", [real, real]), b.op("Mul", [imag, imag])])
    bands = b.const(np.abs(b.rng.standard_normal((n_fft // 2 + 1, 40))).astype(np.float32) / n_fft)
    mel = b.op("MatMul", [b.op("Transpose", [power], perm=[0, 2, 1]), bands])
    logmel = b.op("Log", [b.op("Clip", [mel, b.const(np.float32(1e-6))])])
    x = b.op("Transpose", [logmel], perm=[0, 2, 1])
    x = b.act(b.conv(x, 40, 64, (3,)), "relu")
    x = b.act(b.conv(x, 64, 64, (3,), stride=2), "relu")
    x = b.act(b.conv(x, 64, 64, (3,), dilation=2), "relu")
    x = b.act(b.conv(x, 64, 128, (5,), stride=2, groups=4), "relu")
    flat = b.op("Flatten", [b.op("GlobalAveragePool", [x])], axis=1)
    return b.model([b.op("Gemm", [flat, b.weight((12, 128)), b.small((12,))], transB=1)])
