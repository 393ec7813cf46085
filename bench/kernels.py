"""GFLOP/s of HAI's x86 GEMM, conv, pool and recurrent templates beside onnxruntime running the same op.

Each case is one op (weights random, fixed seed): HAI lowers it with
targets.lowering, builds it through the kernel cache and calls it through
libtvm_ffi's C ABI (as the runtime does); onnxruntime runs a one-node ONNX model with
`intra_op_num_threads` equal to HAI's TVM_NUM_THREADS. Each thread count runs
in its own subprocess (the TVM thread pool reads TVM_NUM_THREADS once).
Convs are lowered in the layout a compile gives them (channels-last on x86). For a dense conv HAI
times several tiles (`candidates`): the measured cost rule's pick (targets/cost_model.py), the
hand rule's, and each tile kind's best predicted; the row reports the pick, the fastest of those
and pick/fastest. Prints a table of GFLOP/s and milliseconds of the pick, the HAI / onnxruntime
ratio (> 1: HAI faster), the geo-means of that ratio and of pick/fastest; the error compares the
pick's first output (a recurrent layer's Y) with onnxruntime's. `--cpu-time` times by process CPU
time (steady on a shared host; meaningful at 1 thread).

    .venv/bin/python bench/kernels.py [--threads 1 2] [--json out.json] [--case conv3x3_16_32_80]
        [--cpu-time] [--layout NCHW NHWC]

`--layout NCHW NHWC` runs HAI's 2-D convs and pools in each layout named instead of the compile's
(NHWC: the kernels of a channels-last region; the input relaid before and the output compared after).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# name -> (op, x shape, w shape, attrs); Conv pads are "same" for odd kernels unless given, 1-D
# convs have 3-D shapes. Pools have no weight (None) and take their ONNX attributes.
SPPF_WINDOW = {"kernel_shape": [5, 5], "strides": [1, 1], "pads": [2, 2, 2, 2]}
CASES: dict[str, tuple[str, tuple[int, ...], tuple[int, ...] | None, dict]] = {
    "gemm_512": ("MatMul", (512, 512), (512, 512), {}),
    "matmul_1x40x120x120": ("MatMul", (1, 40, 120), (120, 120), {}),
    "gemm_1x1280x1000": ("Gemm", (1, 1280), (1000, 1280), {"transB": 1}),
    "conv3x3_16_32_80": ("Conv", (1, 16, 80, 80), (32, 16, 3, 3), {"stride": 1}),
    "conv3x3_64_64_56": ("Conv", (1, 64, 56, 56), (64, 64, 3, 3), {"stride": 1}),
    "conv1x1_64_128_40": ("Conv", (1, 64, 40, 40), (128, 64, 1, 1), {"stride": 1}),
    "dwconv3x3s2_96_80": ("Conv", (1, 96, 80, 80), (96, 1, 3, 3), {"stride": 2, "group": 96}),
    # shapes from the real models (magika's 1-D conv, PP-LCNet's 1x1 and depthwise convs)
    "magika_conv5x1_256": ("Conv", (1, 256, 512, 1), (512, 256, 5, 1), {"stride": 1, "pads": [0, 0, 0, 0]}),
    "lcnet_conv1x1_256_256_14": ("Conv", (1, 256, 14, 14), (256, 256, 1, 1), {"stride": 1}),
    "lcnet_conv1x1_16_32_112": ("Conv", (1, 16, 112, 112), (32, 16, 1, 1), {"stride": 1}),
    "lcnet_dwconv3x3_16_112": ("Conv", (1, 16, 112, 112), (16, 1, 3, 3), {"stride": 1, "group": 16}),
    "lcnet_dwconv5x5_256_14": ("Conv", (1, 256, 14, 14), (256, 1, 5, 5), {"stride": 1, "group": 256}),
    # MobileNetV2/V3 and EfficientNet depthwise shape classes: 3x3/5x5, stride 1/2, small maps
    "dwconv3x3_144_56": ("Conv", (1, 144, 56, 56), (144, 1, 3, 3), {"stride": 1, "group": 144}),
    "dwconv3x3s2_72_56": ("Conv", (1, 72, 56, 56), (72, 1, 3, 3), {"stride": 2, "group": 72}),
    "dwconv3x3_480_14": ("Conv", (1, 480, 14, 14), (480, 1, 3, 3), {"stride": 1, "group": 480}),
    "dwconv5x5s2_240_28": ("Conv", (1, 240, 28, 28), (240, 1, 5, 5), {"stride": 2, "group": 240}),
    "dwconv5x5_576_7": ("Conv", (1, 576, 7, 7), (576, 1, 5, 5), {"stride": 1, "group": 576}),
    "lcnet_conv3x3s2_3_16_224": ("Conv", (1, 3, 224, 224), (16, 3, 3, 3), {"stride": 2}),
    # PP-OCR det (640x640): the big dense convs and the 2x2 stride-2 ConvTranspose upsamplings
    "det_conv3x3s2_3_16_640": ("Conv", (1, 3, 640, 640), (16, 3, 3, 3), {"stride": 2}),
    "det_conv3x3_96_24_160": ("Conv", (1, 96, 160, 160), (24, 96, 3, 3), {"stride": 1}),
    "det_conv3x3_96_24_80": ("Conv", (1, 96, 80, 80), (24, 96, 3, 3), {"stride": 1}),
    "det_convt2x2_24_24_160": ("ConvTranspose", (1, 24, 160, 160), (24, 24, 2, 2), {"stride": 2}),
    "det_convt2x2_24_1_320": ("ConvTranspose", (1, 24, 320, 320), (24, 1, 2, 2), {"stride": 2}),
    # issue 13's shape classes: grouped, dilated, asymmetric pads, 1-D and STFT-like strided 1-D convs
    "grouped3x3_g4_64_64_28": ("Conv", (1, 64, 28, 28), (64, 16, 3, 3), {"stride": 1, "group": 4}),
    "grouped3x3s2_g32_128_56": ("Conv", (1, 128, 56, 56), (128, 4, 3, 3), {"stride": 2, "group": 32}),
    "dilated3x3_d2_64_40": ("Conv", (1, 64, 40, 40), (64, 64, 3, 3), {"stride": 1, "dilation": 2}),
    "asympad3x3s2_32_64_80": ("Conv", (1, 32, 80, 80), (64, 32, 3, 3), {"stride": 2, "pads": [0, 0, 1, 1]}),
    "conv1d_k5_64_64_400": ("Conv", (1, 64, 400), (64, 64, 5), {"stride": 1}),
    "stft_conv1d_258_k256_s64": ("Conv", (1, 1, 16000), (258, 1, 256), {"stride": 64, "pads": [0, 0]}),
    "stft_conv1d_258_k256_s128": ("Conv", (1, 1, 16000), (258, 1, 256), {"stride": 128, "pads": [0, 0]}),
    # the zoo's heavy dense convs: UNet's 3x3 pairs, ResNet's 3x3/1x1/stem, ESPCN, ConvNeXt's stem
    "unet_conv3x3_3_32_256": ("Conv", (1, 3, 256, 256), (32, 3, 3, 3), {"stride": 1}),
    "unet_conv3x3_32_32_256": ("Conv", (1, 32, 256, 256), (32, 32, 3, 3), {"stride": 1}),
    "unet_conv3x3_64_32_256": ("Conv", (1, 64, 256, 256), (32, 64, 3, 3), {"stride": 1}),
    "unet_conv3x3_128_64_128": ("Conv", (1, 128, 128, 128), (64, 128, 3, 3), {"stride": 1}),
    "unet_conv3x3_256_128_64": ("Conv", (1, 256, 64, 64), (128, 256, 3, 3), {"stride": 1}),
    "unet_conv3x3_256_256_32": ("Conv", (1, 256, 32, 32), (256, 256, 3, 3), {"stride": 1}),
    "unet_convt2x2_256_128_32": ("ConvTranspose", (1, 256, 32, 32), (256, 128, 2, 2), {"stride": 2}),
    "resnet_conv7x7s2_3_64_224": ("Conv", (1, 3, 224, 224), (64, 3, 7, 7), {"stride": 2}),
    "resnet_conv3x3_64_64_56": ("Conv", (1, 64, 56, 56), (64, 64, 3, 3), {"stride": 1}),
    "resnet_conv3x3s2_64_128_56": ("Conv", (1, 64, 56, 56), (128, 64, 3, 3), {"stride": 2}),
    "resnet_conv3x3_128_128_28": ("Conv", (1, 128, 28, 28), (128, 128, 3, 3), {"stride": 1}),
    "resnet_conv3x3_256_256_14": ("Conv", (1, 256, 14, 14), (256, 256, 3, 3), {"stride": 1}),
    "resnet_conv3x3_512_512_7": ("Conv", (1, 512, 7, 7), (512, 512, 3, 3), {"stride": 1}),
    "resnet_conv1x1s2_128_256_28": ("Conv", (1, 128, 28, 28), (256, 128, 1, 1), {"stride": 2}),
    "resnet50_conv1x1_64_256_56": ("Conv", (1, 64, 56, 56), (256, 64, 1, 1), {"stride": 1}),
    "resnet50_conv1x1_256_64_56": ("Conv", (1, 256, 56, 56), (64, 256, 1, 1), {"stride": 1}),
    "resnet50_conv1x1_1024_256_14": ("Conv", (1, 1024, 14, 14), (256, 1024, 1, 1), {"stride": 1}),
    "resnet50_conv1x1_512_2048_7": ("Conv", (1, 512, 7, 7), (2048, 512, 1, 1), {"stride": 1}),
    "yolox_conv3x3_96_96_52": ("Conv", (1, 96, 52, 52), (96, 96, 3, 3), {"stride": 1}),  # ddddocr_det
    "espcn_conv5x5_1_64_224": ("Conv", (1, 1, 224, 224), (64, 1, 5, 5), {"stride": 1}),
    "espcn_conv3x3_64_32_224": ("Conv", (1, 64, 224, 224), (32, 64, 3, 3), {"stride": 1}),
    "espcn_conv3x3_32_9_224": ("Conv", (1, 32, 224, 224), (9, 32, 3, 3), {"stride": 1}),
    "convnext_conv4x4s4_3_96_224": ("Conv", (1, 3, 224, 224), (96, 3, 4, 4), {"stride": 4, "pads": [0] * 4}),
    "convnext_conv2x2s2_96_192_56": ("Conv", (1, 96, 56, 56), (192, 96, 2, 2), {"stride": 2, "pads": [0]*4}),
    "convnext_linear_56x56_96_384": ("MatMul", (1, 56, 56, 96), (96, 384), {}),
    "convnext_linear_14x14_1536_384": ("MatMul", (1, 14, 14, 1536), (1536, 384), {}),
    "convnext_dwconv7x7_96_56": ("Conv", (1, 96, 56, 56), (96, 1, 7, 7), {"stride": 1, "group": 96}),
    # pools: YOLO SPPF's 5x5 stride-1 MaxPool, a ResNet stem MaxPool, an AveragePool
    "sppf_maxpool5_256_20": ("MaxPool", (1, 256, 20, 20), None, SPPF_WINDOW),
    "sppf_maxpool5_128_40": ("MaxPool", (1, 128, 40, 40), None, SPPF_WINDOW),
    "maxpool3s2_64_112": ("MaxPool", (1, 64, 112, 112), None, {**SPPF_WINDOW, "kernel_shape": [3, 3],
                                                               "strides": [2, 2], "pads": [1, 1, 1, 1]}),
    "avgpool3_32_56": ("AveragePool", (1, 32, 56, 56), None, {**SPPF_WINDOW, "kernel_shape": [3, 3],
                                                              "pads": [1, 1, 1, 1]}),
    # recurrent layers (X [seq, batch, in], W [dirs, gates*hidden, in]): CRNN-like text recognisers
    "lstm_bi_80x512x256": ("LSTM", (80, 1, 512), (2, 1024, 512), {"direction": "bidirectional"}),
    "lstm_bi_32x512x512": ("LSTM", (32, 1, 512), (2, 2048, 512), {"direction": "bidirectional"}),  # ddddocr
    "lstm_fw_40x256x128": ("LSTM", (40, 1, 256), (1, 512, 256), {"direction": "forward"}),
    "gru_bi_64x384x192": ("GRU", (64, 1, 384), (2, 576, 384), {"direction": "bidirectional"}),
}  # fmt: skip
CONVS = ("Conv", "ConvTranspose")
TOP = 3  # best-predicted tiles of each kind timed beside the pick (candidates)
POOLS = ("MaxPool", "AveragePool")
RECURRENT = {"LSTM": 4, "GRU": 3}


def conv_attrs(w: tuple[int, ...], attrs: dict) -> dict:
    rank, s, d = len(w) - 2, attrs["stride"], attrs.get("dilation", 1)
    p = (w[2] // 2) * d
    pads = attrs.get("pads", [p] * 2 * rank)
    return {"strides": [s] * rank, "pads": pads, "dilations": [d] * rank, "group": attrs.get("group", 1)}


def op_attrs(op: str, w: tuple[int, ...] | None, attrs: dict, ir: bool = False) -> dict:
    """The node attributes of a case (ConvTranspose: kernel == stride, unpadded); `ir`: with the
    defaults the IR wants spelt out (a pool's dilations)."""
    if op in RECURRENT:
        assert w is not None
        return {**attrs, "hidden_size": w[1] // RECURRENT[op]}
    if op == "ConvTranspose":
        assert w is not None
        return {**conv_attrs(w, {**attrs, "pads": [0, 0, 0, 0]}), "output_padding": [0, 0]}
    if op == "Conv":
        assert w is not None
        return conv_attrs(w, attrs)
    if op in POOLS and ir:
        return {"dilations": [1] * len(attrs["kernel_shape"]), **attrs}
    return dict(attrs)


def bias_size(op: str, w: tuple[int, ...]) -> int:
    return w[1] if op == "ConvTranspose" else w[0]


def extra_weights(op: str, w: tuple[int, ...] | None) -> dict[str, tuple[int, ...]]:
    """Name -> shape of a case's weights beyond `w`: a conv's bias, a recurrent layer's R and B."""
    if w is None:
        return {}
    if op in RECURRENT:
        return {"r": (w[0], w[1], w[1] // RECURRENT[op]), "b": (w[0], 2 * w[1])}
    return {"b": (bias_size(op, w),)} if op in CONVS else {}


def ir_node(case: str):
    """(graph, node, feeds, constants) for one case."""
    from ir.builder import Builder
    from ir.dtypes import DType
    from ir.graph import Graph
    from ir.types import TensorType

    op, xs, ws, attrs = CASES[case]
    rng = np.random.default_rng(0)
    graph = Graph(case)
    x = graph.add_input("x", TensorType(DType.F32, xs))
    operands = [x]
    if ws is not None:
        operands.append(graph.add_constant("w", (rng.standard_normal(ws) * 0.1).astype(np.float32)))
    for name, shape in extra_weights(op, ws).items():
        scale = 1.0 if name == "b" and op in CONVS else 0.1
        operands.append(graph.add_constant(name, (rng.standard_normal(shape) * scale).astype(np.float32)))
    ir_attrs = op_attrs(op, ws, attrs, ir=True)
    y = Builder(graph).op(op, operands, ir_attrs, name=case)[0]
    feeds = {"x": rng.standard_normal(xs).astype(np.float32)}
    return graph, y.producer, feeds, {k: v.constant_array() for k, v in graph.constants.items()}


def onnx_model(case: str, consts: dict[str, np.ndarray]) -> bytes:
    from onnx import TensorProto, helper, numpy_helper

    op, xs, ws, attrs = CASES[case]
    _, node, _, _ = ir_node(case)
    names = ["x"] + (["w"] if ws is not None else []) + list(extra_weights(op, ws))
    onnx_attrs = op_attrs(op, ws, attrs)
    outputs = [f"y{i}" for i in range(len(node.results))]
    graph = helper.make_graph(
        [helper.make_node(op, names, outputs, **onnx_attrs)],
        case,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(xs))],
        [
            helper.make_tensor_value_info(name, TensorProto.FLOAT, list(value.type.shape))
            for name, value in zip(outputs, node.results, strict=True)
        ],
        [numpy_helper.from_array(consts[n], n) for n in names[1:]],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    return model.SerializeToString()


def timed(fn, min_seconds: float = 0.3, clock=time.perf_counter) -> float:
    """Median seconds per call over 5 rounds of enough calls to last `min_seconds / 5` (`clock`:
    wall time, or time.process_time: the process's CPU time, steadier on a shared host at 1 thread)."""
    fn()
    start, calls = clock(), 0
    while clock() - start < 0.05:
        fn()
        calls += 1
    per_round = max(1, int(calls * (min_seconds / 5) / 0.05))
    rounds = []
    for _ in range(5):
        t = clock()
        for _ in range(per_round):
            fn()
        rounds.append((clock() - t) / per_round)
    return statistics.median(rounds)


def kernel_layout(node, target) -> str:  # type: ignore[no-untyped-def]
    """The layout a compile gives the node's kernel: 2-D convs channels-last where the target puts
    conv regions so (the layout pass; 1-D convs stay NCHW)."""
    from targets.registry import get_target

    two_d = node.op == "Conv" and node.results[0].type.rank == 4
    return "NHWC" if two_d and get_target(target.name).channels_last else "NCHW"


def candidates(node, target, layout: str) -> list[tuple[str, object, float]]:  # type: ignore[no-untyped-def]
    """(name, kernel, predicted seconds or nan) of the templates timed for `node`: first the cost rule's
    pick; for a dense conv also the hand rule's tile and each kind's `TOP` best predicted tiles."""
    from targets.cost_model import predict_seconds
    from targets.lowering.conv import conv_template, lower_dense_conv
    from targets.lowering.conv_geometry import Geometry
    from targets.lowering.conv_tiles import choose_dense_tile, dense_tiles, legacy_tile, tile_work
    from targets.lowering.dispatch import lower_node

    if node.op != "Conv" or conv_template(node) != "dense":
        kernel = lower_node(node, target, (), layout)
        return [(str(kernel.workload.get("op", kernel.name)), kernel, float("nan"))]
    g = Geometry(node)
    ranked = sorted(
        dense_tiles(g, layout, target), key=lambda t: predict_seconds(target, tile_work(g, t, layout))
    )
    tiles = [choose_dense_tile(g, layout, target), legacy_tile(g, layout, target)]
    for kind in dict.fromkeys(t.kind for t in ranked):
        tiles += [t for t in ranked if t.kind == kind][:TOP]
    unique = list(dict.fromkeys(tiles))
    return [
        (
            t.name,
            lower_dense_conv(node, target, (), layout, t),
            predict_seconds(target, tile_work(g, t, layout)),
        )
        for t in unique
    ]


def bind(kernel, feeds: dict, consts: dict, layout: str, target=None):  # type: ignore[no-untyped-def]
    """Build `kernel` for `target` (this host by default; kernel cache) and bind it to aligned buffers
    holding `feeds` (NCHW; moved to `layout`) and its packed `consts`: (call running it once, its
    buffers). AMX kernels get the tile state first, as the runtime does."""
    from runtime.amx import check_tile_state
    from runtime.kernel_library import aligned_empty, kernel_function, kernel_tensor, load_kernel_module
    from targets.build import build_kernels
    from targets.registry import resolve_target

    target = target or resolve_target("x86")
    library = build_kernels([kernel], target)
    check_tile_state(target.features, library)
    fn = kernel_function(load_kernel_module(library), str(library), kernel.name)
    packed = kernel.pack_weights({a.value: consts[a.value] for a in kernel.weights})
    arrays = []
    for a in kernel.args:
        buf = aligned_empty(a.shape, a.dtype)
        source = packed.get(a.key)
        if a.value in feeds:
            source = np.moveaxis(feeds[a.value], 1, -1) if layout == "NHWC" else feeds[a.value]
        if source is not None:
            buf[...] = source.reshape(a.shape)
        arrays.append(buf)
    tensors = [kernel_tensor(x, i, kernel.name) for i, x in enumerate(arrays)]
    return (lambda: fn(*tensors)), arrays


def result_of(kernel, arrays, shape: tuple[int, ...], layout: str) -> np.ndarray:  # type: ignore[no-untyped-def]
    """The kernel's first output as the IR's (NCHW) array."""
    got = arrays[len(kernel.args) - len(kernel.outputs)]
    if layout == "NHWC":
        return np.moveaxis(got.reshape(shape[0], *shape[2:], shape[1]), -1, 1)
    return got.reshape(shape)


def measure(case: str, threads: int, cpu_clock: bool, layout: str | None = None) -> dict:
    """One case at `threads` (TVM_NUM_THREADS already set): each candidate template's time, the cost
    rule's pick against the fastest of them, and onnxruntime's time."""
    import onnxruntime as ort

    from targets.registry import resolve_target

    clock = time.process_time if cpu_clock else time.perf_counter
    target = resolve_target("x86")
    _, node, feeds, consts = ir_node(case)
    two_d = CASES[case][0] in (*CONVS, *POOLS) and len(CASES[case][1]) == 4
    layout = layout if layout and two_d else kernel_layout(node, target)
    timings = []
    for name, kernel, predicted in candidates(node, target, layout):
        call, arrays = bind(kernel, feeds, consts, layout)
        timings.append((name, timed(call, clock=clock), predicted, kernel, arrays))
    pick_name, pick_s, pick_predicted, kernel, arrays = timings[0]
    fastest = min(timings, key=lambda t: t[1])
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(onnx_model(case, consts), options, providers=["CPUExecutionProvider"])
    want = session.run(None, feeds)[0]  # the first output (a recurrent layer's Y)
    got = result_of(kernel, arrays, want.shape, layout)
    error = float(np.linalg.norm(got - want) / np.linalg.norm(want))
    ort_s = timed(lambda: session.run(None, feeds), clock=clock)
    flops = kernel.flops
    return {
        "case": case,
        "threads": threads,
        "clock": "cpu" if cpu_clock else "wall",
        "layout": layout,
        "flops": flops,
        "hai_gflops": flops / pick_s / 1e9,
        "ort_gflops": flops / ort_s / 1e9,
        "hai_ms": pick_s * 1e3,
        "ort_ms": ort_s * 1e3,
        "ratio": ort_s / pick_s,
        "rel_error": error,
        "knobs": str(kernel.notes.get("knobs", kernel.workload.get("knobs", ""))),
        "template": kernel.workload.get("op", kernel.name),
        "pick": pick_name,
        "pick_predicted_ms": pick_predicted * 1e3,
        "fastest": fastest[0],
        "fastest_ms": fastest[1] * 1e3,
        "pick_over_fastest": pick_s / fastest[1],
        "candidates": {name: s * 1e3 for name, s, *_ in timings},
        "predicted_ms": {name: p * 1e3 for name, _, p, *_ in timings},
    }


def bound_kernel(node, epilogue, feeds: dict, consts: dict, cpu_features: str | None = None):  # type: ignore[no-untyped-def]
    """Lower `node` (with `epilogue`, NCHW) for this host (its `cpu_features` edited) and bind it
    (`bind`): (call, buffers, kernel)."""
    from targets.lowering.dispatch import lower_node
    from targets.registry import resolve_target

    target = resolve_target("x86", cpu_features=cpu_features)
    kernel = lower_node(node, target, epilogue)
    call, arrays = bind(kernel, feeds, consts, "NCHW", target)
    return call, arrays, kernel


def worker(cases: list[str], threads: int, cpu_clock: bool, layouts: list[str | None]) -> None:
    print(json.dumps([measure(c, threads, cpu_clock, layout) for c in cases for layout in layouts]))


def geo_mean(values: list[float]) -> float:
    return float(np.exp(np.mean(np.log(values))))


def report(rows: list[dict]) -> None:
    print(
        f"{'case':<31} {'thr':>3} {'HAI GF/s':>9} {'ORT GF/s':>9} {'HAI ms':>8} {'ORT ms':>8} "
        f"{'HAI/ORT':>7} {'rel err':>8}  {'pick':<18} {'fastest':<18} {'fast ms':>8} {'pick/fast':>9}"
    )
    for r in rows:
        print(
            f"{r['case']:<31} {r['threads']:>3} {r['hai_gflops']:>9.1f} {r['ort_gflops']:>9.1f} "
            f"{r['hai_ms']:>8.3f} {r['ort_ms']:>8.3f} {r['ratio']:>7.2f} {r['rel_error']:>8.1e}  "
            f"{r['pick']:<18} {r['fastest']:<18} {r['fastest_ms']:>8.3f} {r['pick_over_fastest']:>9.2f}"
        )
    print(f"geometric mean HAI/ORT speed ratio: {geo_mean([r['ratio'] for r in rows]):.2f}")
    print(f"geometric mean pick/fastest time: {geo_mean([r['pick_over_fastest'] for r in rows]):.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--case", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--cpu-time", action="store_true", help="time by process CPU time (1 thread)")
    parser.add_argument(
        "--layout",
        nargs="+",
        choices=["NCHW", "NHWC"],
        help="HAI's activation layout for 2-D convs and pools, each a row (default: the compile's)",
    )
    parser.add_argument("--json", type=Path, help="also write the rows as JSON here")
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.case, args.worker, args.cpu_time, args.layout or [None])
        return
    rows = []
    for threads in args.threads:
        env = {**os.environ, "TVM_NUM_THREADS": str(threads), "OMP_NUM_THREADS": str(threads)}
        clock = ["--cpu-time"] if args.cpu_time else []
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                "--worker",
                str(threads),
                *clock,
                "--case",
                *args.case,
                *(["--layout", *args.layout] if args.layout else []),
            ],  # fmt: skip
            env=env,
            check=True,
            stdout=subprocess.PIPE,
            text=True,
        ).stdout
        rows += json.loads(out.strip().splitlines()[-1])
    report(rows)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
