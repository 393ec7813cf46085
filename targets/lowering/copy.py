"""The byte-copy kernel: how a graph output whose bytes live elsewhere (a weight) reaches its binding.

Rule: a copy moves `nbytes` bytes, viewed as uint8 on both sides, in one flat
loop that the target vectorises; its name comes from its workload, so every
copy of one size shares a kernel. The runtime only copies outputs out of the
arena, so an output that is a constant (or a view of one) is copied into its
arena place by a step of the plan.
"""

from __future__ import annotations

from ir.graph import Value
from targets.lowering.kernel import KernelArg, LoweredKernel, kernel_name, snapshot
from targets.target import TargetDescription


def copy_kernel(source: Value, destination: Value, target: TargetDescription) -> LoweredKernel:
    """A kernel copying `source`'s bytes (a weight) into `destination`'s (same byte count)."""
    import tvm.s_tir as s_tir
    from tvm import te

    nbytes = destination.type.nbytes
    workload = {"op": "copy", "bytes": nbytes, "lanes": target.vector_bytes}
    name = kernel_name("copy", workload)
    src = te.placeholder((nbytes,), "uint8", name="src")
    dst = te.compute((nbytes,), lambda i: src[i], name="dst")
    compute = te.create_prim_func([src, dst])
    sch = s_tir.Schedule(snapshot(compute).with_attr("global_symbol", name))
    lanes = target.vector_bytes
    if nbytes >= lanes and nbytes % lanes == 0:
        (loop,) = sch.get_loops(sch.get_sblock("dst"))
        _, inner = sch.split(loop, [None, lanes])
        sch.vectorize(inner)
    role = "weight" if source.is_constant else "input"
    return LoweredKernel(
        name=name,
        func=sch.mod["main"].with_attr("global_symbol", name),
        args=(
            KernelArg(source.name, role, (nbytes,), "uint8"),
            KernelArg(destination.name, "output", (nbytes,), "uint8"),
        ),
        flops=0,
        sources=(),
        workload=workload,
        layout="any",
        compute=compute,
    )
