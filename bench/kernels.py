"""GFLOP/s of HAI's x86 GEMM, conv, pool and recurrent templates beside onnxruntime running the same op.

Each case is one op (weights random, fixed seed): HAI lowers it with
targets.lowering, builds it through the kernel cache and calls it through
libtvm_ffi's C ABI (as the runtime does); onnxruntime runs a one-node ONNX model with
`intra_op_num_threads` equal to HAI's TVM_NUM_THREADS. Each thread count runs
in its own subprocess (the TVM thread pool reads TVM_NUM_THREADS once).
Prints a table of GFLOP/s, milliseconds, the HAI / onnxruntime ratio (> 1: HAI faster) and the
template HAI chose (its workload `op`: conv_general / pool are the unscheduled fallbacks); the
error compares the first output (a recurrent layer's Y).

`--layout NCHW NHWC` runs HAI's 2-D convs and pools in each layout named (NHWC: the kernels of a
channels-last region; the input relaid before and the output compared after).

    .venv/bin/python bench/kernels.py [--threads 1 2] [--json out.json] [--case conv3x3_16_32_80]
        [--layout NCHW NHWC]
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


def timed(fn, min_seconds: float = 0.3) -> float:
    """Median seconds per call over 5 rounds of enough calls to last `min_seconds / 5`."""
    fn()
    start, calls = time.perf_counter(), 0
    while time.perf_counter() - start < 0.05:
        fn()
        calls += 1
    per_round = max(1, int(calls * (min_seconds / 5) / 0.05))
    rounds = []
    for _ in range(5):
        t = time.perf_counter()
        for _ in range(per_round):
            fn()
        rounds.append((time.perf_counter() - t) / per_round)
    return statistics.median(rounds)


def bound_kernel(
    node, epilogue, feeds: dict, consts: dict, layout: str = "NCHW", cpu_features: str | None = None
):  # type: ignore[no-untyped-def]
    """Lower `node` (with `epilogue`) for this host (its `cpu_features` edited) with activations in
    `layout`, build it (kernel cache), and bind it to aligned buffers holding `feeds` (logical NCHW,
    relaid here) and its packed `consts`: (call running it once, its buffers, the kernel)."""
    from runtime.amx import check_tile_state
    from runtime.kernel_library import aligned_empty, kernel_function, kernel_tensor, load_kernel_module
    from targets.build import build_kernels
    from targets.lowering.dispatch import lower_node
    from targets.registry import resolve_target

    target = resolve_target("x86", cpu_features=cpu_features)
    kernel = lower_node(node, target, epilogue, layout)
    library = build_kernels([kernel], target)
    check_tile_state(target.features, library)  # as the runtime does: AMX kernels need the tile state
    fn = kernel_function(load_kernel_module(library), str(library), kernel.name)
    packed = kernel.pack_weights({a.value: consts[a.value] for a in kernel.weights})
    arrays = []
    for a in kernel.args:
        buf = aligned_empty(a.shape, a.dtype)
        source = feeds.get(a.value, packed.get(a.key))
        if source is not None:
            buf[...] = (
                to_layout(source, layout).reshape(a.shape) if a.value in feeds else source.reshape(a.shape)
            )
        arrays.append(buf)
    tensors = [kernel_tensor(x, i, kernel.name) for i, x in enumerate(arrays)]
    return (lambda: fn(*tensors)), arrays, kernel


def to_layout(array: np.ndarray, layout: str) -> np.ndarray:
    """A rank-4 NCHW array stored as `layout` (other ranks and NCHW unchanged)."""
    return array.transpose(0, 2, 3, 1) if layout == "NHWC" and array.ndim == 4 else array


def measure(case: str, threads: int, layout: str = "NCHW") -> dict:
    """GFLOP/s of HAI and onnxruntime for one case at `threads` (TVM_NUM_THREADS already set), HAI's
    activations stored in `layout` (a 2-D conv or pool; others stay NCHW)."""
    import onnxruntime as ort

    _, node, feeds, consts = ir_node(case)
    layout = layout if CASES[case][0] in (*CONVS, *POOLS) and len(CASES[case][1]) == 4 else "NCHW"
    call, arrays, kernel = bound_kernel(node, (), feeds, consts, layout)
    hai_s = timed(call)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(onnx_model(case, consts), options, providers=["CPUExecutionProvider"])
    want = session.run(None, feeds)[0]  # the first output (a recurrent layer's Y)
    stored = arrays[len(kernel.args) - len(kernel.outputs)]
    got = (stored.transpose(0, 3, 1, 2) if layout == "NHWC" else stored).reshape(want.shape)
    error = float(np.linalg.norm(got - want) / np.linalg.norm(want))
    ort_s = timed(lambda: session.run(None, feeds))
    flops = kernel.flops
    return {
        "case": case,
        "threads": threads,
        "layout": layout,
        "flops": flops,
        "hai_gflops": flops / hai_s / 1e9,
        "ort_gflops": flops / ort_s / 1e9,
        "hai_ms": hai_s * 1e3,
        "ort_ms": ort_s * 1e3,
        "ratio": ort_s / hai_s,
        "rel_error": error,
        "knobs": str(kernel.notes.get("knobs", kernel.workload.get("knobs", ""))),
        "template": kernel.workload.get("op", kernel.name),
    }


def worker(cases: list[str], threads: int, layouts: list[str]) -> None:
    print(json.dumps([measure(c, threads, layout) for c in cases for layout in layouts]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--case", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument(
        "--layout",
        nargs="+",
        default=["NCHW"],
        choices=["NCHW", "NHWC"],
        help="HAI's activation layout for 2-D convs and pools (each one named is a row)",
    )
    parser.add_argument("--json", type=Path, help="also write the rows as JSON here")
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.case, args.worker, args.layout)
        return
    rows = []
    for threads in args.threads:
        env = {**os.environ, "TVM_NUM_THREADS": str(threads), "OMP_NUM_THREADS": str(threads)}
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                "--worker",
                str(threads),
                "--case",
                *args.case,
                "--layout",
                *args.layout,
            ],  # fmt: skip
            env=env,
            check=True,
            stdout=subprocess.PIPE,
            text=True,
        ).stdout
        rows += json.loads(out.strip().splitlines()[-1])
    print(
        f"{'case':<26} {'thr':>3} {'lay':>4} {'HAI GFLOP/s':>12} {'ORT GFLOP/s':>12} "
        f"{'HAI ms':>8} {'ORT ms':>8} "
        f"{'HAI/ORT':>8} {'rel err':>9}  template"
    )
    for r in rows:
        print(
            f"{r['case']:<26} {r['threads']:>3} {r['layout']:>4} "
            f"{r['hai_gflops']:>12.1f} {r['ort_gflops']:>12.1f} "
            f"{r['hai_ms']:>8.3f} {r['ort_ms']:>8.3f} {r['ratio']:>8.2f} {r['rel_error']:>9.1e}  "
            f"{r['template']}"
        )
    ratios = [r["ratio"] for r in rows]
    print(f"geometric mean HAI/ORT speed ratio: {float(np.exp(np.mean(np.log(ratios)))):.2f}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
