"""GOP/s of HAI's INT8 conv kernels (ConvInteger with the requantising epilogue fused) next to onnxruntime's
QLinearConv and ConvInteger on the same shapes, u8 activations, i8 per-channel weights.

HAI lowers ConvInteger -> DequantizeLinear -> QuantizeLinear(u8) as one kernel (AMX-INT8 `tdpbusd` tiles
where the host has them and the layer pays, else VNNI `vpdpbusd` when the host has avx512_vnni) and, for
ConvInteger alone, returns the int32 accumulator; onnxruntime runs one-node models (QLinearConv: u8 in and
out; ConvInteger: int32 out). The "VNNI" column is HAI's kernel with the host's AMX taken away (the same
as "HAI" where the host has no AMX or the layer does not pay); "kernel" says which HAI ran ("amx" or the
dot GEMM's knobs). Each thread count runs in its own subprocess.

    .venv/bin/python bench/kernels_int8.py [--threads 1 2] [--case conv3x3_64_64_56]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from kernels import bound_kernel, timed  # noqa: E402

# name -> (x shape, w shape, pad, stride, group)
CASES = {
    "conv3x3_64_64_56": ((1, 64, 56, 56), (64, 64, 3, 3), 1, 1, 1),
    "conv1x1_256_256_14": ((1, 256, 14, 14), (256, 256, 1, 1), 0, 1, 1),
    "conv3x3_32_64_28": ((1, 32, 28, 28), (64, 32, 3, 3), 1, 1, 1),
    "conv1x1_16_32_112": ((1, 16, 112, 112), (32, 16, 1, 1), 0, 1, 1),  # orientation's Conv.2
    "dw3x3_16_112": ((1, 16, 112, 112), (16, 1, 3, 3), 1, 1, 16),  # orientation's Conv.1
    "dw3x3s2_32_112": ((1, 32, 112, 112), (32, 1, 3, 3), 1, 2, 32),
    "dw5x5_256_14": ((1, 256, 14, 14), (256, 1, 5, 5), 2, 1, 256),
    "conv3x3_3_32_112": ((1, 3, 112, 112), (32, 3, 3, 3), 1, 2, 1),  # a stem conv
    "conv3x3_128_128_7": ((1, 128, 7, 7), (128, 128, 3, 3), 1, 1, 1),
    "conv1x1_32_16_28": ((1, 32, 28, 28), (16, 32, 1, 1), 0, 1, 1),
    "conv1x1_64_64_4": ((1, 64, 4, 4), (64, 64, 1, 1), 0, 1, 1),
    "conv3x3_16_32_56": ((1, 16, 56, 56), (32, 16, 3, 3), 1, 1, 1),
}
NO_AMX = "-amx,-amx_bf16,-amx_int8"
X_SCALE, X_ZERO, Y_SCALE, Y_ZERO = 0.02, 5, 0.05, 3


def graph_nodes(case: str, requantise: bool):
    from ir.builder import Builder
    from ir.dtypes import DType
    from ir.graph import Graph
    from ir.types import QuantParams, TensorType

    xs, ws, pad, stride, group = CASES[case]
    rng = np.random.default_rng(0)
    graph = Graph(case)
    x = graph.add_input("x", TensorType(DType.U8, xs, quant=QuantParams((X_SCALE,), (X_ZERO,))))
    w_scales = rng.uniform(0.002, 0.01, ws[0])
    w = graph.add_constant("w", rng.integers(-127, 128, ws).astype(np.int8))
    w.type = TensorType(DType.I8, ws, quant=QuantParams(tuple(map(float, w_scales)), (0,) * ws[0], 0))
    b = graph.add_constant("b", rng.integers(-2000, 2000, ws[0]).astype(np.int32))
    builder = Builder(graph)
    attrs = {"pads": [pad] * 4, "strides": [stride] * 2, "dilations": [1, 1], "group": group}
    operands = [x, w, b] if requantise else [x, w]  # onnxruntime's ConvInteger takes no bias
    (acc,) = builder.op("ConvInteger", operands, attrs, name="conv")
    nodes = [acc.producer]
    if requantise:
        (dq,) = builder.op("DequantizeLinear", [acc], {"dtype": DType.F32}, name="dq")
        (q,) = builder.op(
            "QuantizeLinear", [dq], {"dtype": DType.U8, "scale": [Y_SCALE], "zero_point": [Y_ZERO]}
        )
        nodes += [dq.producer, q.producer]
    feeds = {"x": rng.integers(0, 256, xs).astype(np.uint8)}
    return graph, nodes, feeds, w_scales


def onnx_model(case: str, graph, w_scales: np.ndarray, op: str) -> bytes:
    from onnx import TensorProto, helper, numpy_helper

    xs, ws, pad, stride, group = CASES[case]
    w, b = graph.constants["w"].constant_array(), graph.constants["b"].constant_array()
    out = [1, ws[0], (xs[2] + 2 * pad - ws[2]) // stride + 1, (xs[3] + 2 * pad - ws[3]) // stride + 1]
    inits = [numpy_helper.from_array(w, "w")]
    if op == "QLinearConv":
        inits += [
            numpy_helper.from_array(np.float32(X_SCALE), "xs"),
            numpy_helper.from_array(np.uint8(X_ZERO), "xz"),
            numpy_helper.from_array(w_scales.astype(np.float32), "ws"),
            numpy_helper.from_array(np.zeros(ws[0], np.int8), "wz"),
            numpy_helper.from_array(np.float32(Y_SCALE), "ys"),
            numpy_helper.from_array(np.uint8(Y_ZERO), "yz"),
            numpy_helper.from_array(b, "b"),
        ]  # fmt: skip
        names, out_type = ["x", "xs", "xz", "w", "ws", "wz", "ys", "yz", "b"], TensorProto.UINT8
    else:
        inits.append(numpy_helper.from_array(np.uint8(X_ZERO), "xz"))
        names, out_type = ["x", "w", "xz"], TensorProto.INT32
    node = helper.make_node(
        op, names, ["y"], pads=[pad] * 4, kernel_shape=list(ws[2:]), strides=[stride] * 2, group=group
    )
    graph_proto = helper.make_graph(
        [node], case, [helper.make_tensor_value_info("x", TensorProto.UINT8, list(xs))],
        [helper.make_tensor_value_info("y", out_type, out)], inits,
    )  # fmt: skip
    return helper.make_model(graph_proto, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


def hai_seconds(graph, nodes, feeds, cpu_features: str | None = None) -> tuple[float, np.ndarray, object]:
    consts = {k: v.constant_array() for k, v in graph.constants.items()}
    call, arrays, kernel = bound_kernel(nodes[0], nodes[1:], feeds, consts, cpu_features=cpu_features)
    return timed(call), arrays[-1], kernel


def kernel_kind(kernel) -> str:  # type: ignore[no-untyped-def]
    return "amx" if "tiles" in kernel.workload else str(kernel.workload.get("knobs"))


def measure(case: str, threads: int) -> list[dict]:
    import onnxruntime as ort

    rows = []
    for op, requantise in (("QLinearConv", True), ("ConvInteger", False)):
        graph, nodes, feeds, w_scales = graph_nodes(case, requantise)
        hai_s, got, kernel = hai_seconds(graph, nodes, feeds)
        vnni_s, vnni_got, _ = hai_seconds(graph, nodes, feeds, NO_AMX)
        assert np.array_equal(got, vnni_got), f"{case} {op}: HAI's AMX and VNNI kernels differ"
        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
        try:
            session = ort.InferenceSession(onnx_model(case, graph, w_scales, op), options,
                                           providers=["CPUExecutionProvider"])  # fmt: skip
        except Exception as exc:  # noqa: BLE001 - an op onnxruntime lacks for these dtypes
            rows.append({"case": case, "op": op, "threads": threads, "error": str(exc).splitlines()[0][:80]})
            continue
        (want,) = session.run(None, feeds)
        diff = int(np.abs(got.reshape(want.shape).astype(np.int64) - want).max())
        ort_s = timed(lambda session=session, feeds=feeds: session.run(None, feeds))
        ops = 2 * np.prod(want.shape) * np.prod(CASES[case][1][1:])
        rows.append({"case": case, "op": op, "threads": threads, "hai_gops": ops / hai_s / 1e9,
                     "vnni_gops": ops / vnni_s / 1e9, "ort_gops": ops / ort_s / 1e9, "ratio": ort_s / hai_s,
                     "max_diff": diff, "kernel": kernel_kind(kernel)})  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[2])
    parser.add_argument("--case", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps([row for c in args.case for row in measure(c, args.worker)]))
        return
    rows = []
    for threads in args.threads:
        env = {**os.environ, "TVM_NUM_THREADS": str(threads), "OMP_NUM_THREADS": str(threads)}
        command = [sys.executable, __file__, "--worker", str(threads), "--case", *args.case]
        out = subprocess.run(command, env=env, check=True, stdout=subprocess.PIPE, text=True).stdout
        rows += json.loads(out.strip().splitlines()[-1])
    cols = ["HAI GOP/s", "VNNI GOP/s", "ORT GOP/s", "ORT/HAI", "max|diff|"]
    print(f"{'case':<22} {'vs ORT op':<12} {'thr':>3} " + " ".join(f"{c:>10}" for c in cols))
    for r in rows:
        head = f"{r['case']:<22} {r['op']:<12} {r['threads']:>3}"
        if "error" in r:
            print(f"{head}  ORT: {r['error']}")
            continue
        numbers = [f"{r[k]:.1f}" for k in ("hai_gops", "vnni_gops", "ort_gops")]
        numbers += [f"{r['ratio']:.2f}", str(r["max_diff"])]
        print(head + " " + " ".join(f"{n:>10}" for n in numbers) + f"  {r['kernel'][:40]}")


if __name__ == "__main__":
    main()
