# mypy: disable-error-code="valid-type"
"""The `IntGemm` OpenCL schedule: the integer GEMM per work-item and panel, its 1 x 16 x 4 step on OpenCL's
integer dot products where the device has them.

Rule: the `acc` block of the integer anchors (ConvInteger, MatMulInteger:
targets/lowering/integer_gemm.py, weights packed 16 lanes x 4 bytes) runs one work-item per
(position, panel of 16 output channels; positions along work-groups of the largest size dividing
them, panels and batch along the other two axes), its 16 int32 accumulators in private memory. The
pad stage, the per-channel table (`ctab`) and the epilogue run flat (`flat.flat_bind_unbound`), each
a kernel of its own: inlined into a tiled epilogue (dlight's `Matmul`), the table's byte assembly and
the fused quantize chain grew one kernel of PP-OCR rec to 1 MB of OpenCL C. On a device with integer
dot products (profile feature `int8_dot`: cl_khr_integer_dot_product, OpenCL 3.0's
`__opencl_c_integer_dot_product_input_4x8bit`) each reduction block is the shared dot step
(targets/lowering/dot_step.py: C[j] += sum_k u8(A[k]) * i8(B[j, k])) tensorized into 16
`dot(uchar4, char4)` calls, which return the exact int32 sum (the x86 and arm64 steps' result, no
saturation); elsewhere it stays a plain int32 reduction. A compute without such an `acc` block is
not taken (ValueError): the family's next rule runs.
"""

from __future__ import annotations

from typing import Any

from targets.lowering.dot_step import register_dot_step
from targets.lowering.integer_gemm import DEPTH, LANES
from targets.opencl.tir_walk import acc_block
from targets.schedules import DotStep

OPENCL_DOT_16X4 = "hai_dot_16x4_opencl"


def register_opencl_dot() -> DotStep:
    """The step of 16 OpenCL `dot` calls, registered once."""
    return register_dot_step(DotStep(OPENCL_DOT_16X4), dot_implementation)


def dot_implementation() -> Any:
    from tvm.script import tirx as T

    @T.prim_func(s_tir=True)
    def impl(
        A: T.Buffer((DEPTH,), "uint8", offset_factor=1),
        B: T.Buffer((LANES, DEPTH), "int8", offset_factor=1),
        C: T.Buffer((LANES,), "int32", offset_factor=1, scope="local"),
    ) -> None:
        with T.sblock("root"):
            T.reads(C[0:LANES], A[0:DEPTH], B[0:LANES, 0:DEPTH])
            T.writes(C[0:LANES])
            for j in T.unroll(LANES):
                C[j] = C[j] + T.call_pure_extern(
                    "int32", "dot", A.vload([0], "uint8x4"), B.vload([j, 0], "int8x4")
                )

    return impl


def int_gemm_schedule(func: Any, threads: int, int8_dot: bool) -> Any:
    """`func` with its integer `acc` block per work-item and panel, on OpenCL dot products where
    `int8_dot` (module doc); ValueError where the rule does not apply."""
    from targets.opencl.flat import flat_bind_unbound

    sch, acc = acc_block(func)
    block = sch.get(acc)
    kinds = [int(iv.iter_type) for iv in block.iter_vars]
    if str(block.writes[0].source.dtype) != "int32" or kinds[:3] != [0, 0, 0] or set(kinds[3:]) != {2}:
        raise ValueError("acc is not an integer GEMM (n, positions, channels x reduction)")
    loops = sch.get_loops(acc)
    n, p, o, *blocks, ci = loops
    if int(sch.get(ci).extent) != DEPTH or int(sch.get(o).extent) % LANES:
        raise ValueError("acc's reduction is not in steps of 4 bytes over panels of 16 channels")
    panel, lane = sch.split(o, [None, LANES])
    width = max(t for t in range(1, threads + 1) if int(sch.get(p).extent) % t == 0)
    p_group, p_item = sch.split(p, [None, width])
    sch.reorder(n, p_group, panel, p_item, *blocks, lane, ci)
    for loop, axis in (
        (n, "blockIdx.z"),
        (p_group, "blockIdx.x"),
        (panel, "blockIdx.y"),
        (p_item, "threadIdx.x"),
    ):
        sch.bind(loop, axis)  # no fused loop: the step's bindings stay affine for tensorize
    private = sch.cache_write(acc, 0, "local")
    sch.reverse_compute_at(private, p_item)
    sch.decompose_reduction(acc, blocks[0] if blocks else lane)
    if int8_dot:
        sch.tensorize(lane, register_opencl_dot().intrinsic)
    flat_bind_unbound(sch, threads)
    return sch.mod["main"]
