"""What the 2-D conv templates share: `Geometry` (shapes and window facts), padding, the output index
of a layout, bias and epilogue, and turning a TE compute plus schedule into a LoweredKernel.

Rule: shapes are the IR's NCHW terms; a layout ("NCHW" or "NHWC") only decides
how activations are stored. A 1-D conv (N, C, W) is the 2-D conv of height 1 (kernel
height 1, row stride 1, no row pads): templates see (N, C, 1, W) and give a fused
epilogue the IR's own (rank-3) index (`Geometry.logical`). Templates: dense and grouped
(conv.py), depthwise with any channel multiplier (conv_depthwise.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tvm import te

from ir.graph import Node, Value
from targets.lowering.elementwise import Epilogue
from targets.lowering.kernel import KernelArg, LoweredKernel, LoweringError, kernel_name, snapshot


class Geometry:
    """Shapes and window facts of one 2-D conv, in the IR's NCHW terms."""

    def __init__(self, node: Node) -> None:
        x, w = node.operands[0], node.operands[1]
        assert x is not None and w is not None
        if x.type.rank not in (3, 4):
            raise LoweringError(f"node {node.name!r}: only 1-D and 2-D Conv is lowered here, got X {x.type}")
        self.rank = x.type.rank
        a = node.attrs
        if self.rank == 3:  # the 2-D conv of height 1
            self.n, self.c, self.w = x.type.shape
            self.m, _, self.kw = w.type.shape
            _, _, self.ow = node.results[0].type.shape
            self.h = self.kh = self.oh = 1
            self.stride = (1, a["strides"][0])
            self.dilation = (1, a["dilations"][0])
            self.pads = (0, a["pads"][0], 0, a["pads"][1])
        else:
            self.n, self.c, self.h, self.w = x.type.shape
            self.m, _, self.kh, self.kw = w.type.shape
            _, _, self.oh, self.ow = node.results[0].type.shape
            self.stride = tuple(a["strides"])
            self.dilation = tuple(a["dilations"])
            self.pads = tuple(a["pads"])  # top, left, bottom, right
        self.group = a["group"]
        self.hp = self.h + self.pads[0] + self.pads[2]
        self.wp = self.w + self.pads[1] + self.pads[3]

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items()}

    @property
    def cg(self) -> int:
        """Input channels of one group."""
        return self.c // self.group

    @property
    def mg(self) -> int:
        """Output channels of one group."""
        return self.m // self.group

    def logical(self, n: Any, o: Any, y: Any, xx: Any) -> tuple[Any, ...]:
        """The IR's index of output element (n, o, y, xx): (n, o, xx) for a 1-D conv."""
        return (n, o, xx) if self.rank == 3 else (n, o, y, xx)

    @property
    def pointwise(self) -> bool:
        """1x1, stride 1, unpadded: the conv is a GEMM over contiguous positions."""
        return (self.kh, self.kw, self.stride, any(self.pads)) == (1, 1, (1, 1), False)

    def flat_in_shape(self, layout: str) -> tuple[int, ...]:
        hw = self.h * self.w
        return (self.n, self.c, hw) if layout == "NCHW" else (self.n, hw, self.c)

    def flat_out_shape(self, layout: str) -> tuple[int, ...]:
        hw = self.oh * self.ow
        return (self.n, self.m, hw) if layout == "NCHW" else (self.n, hw, self.m)

    def in_shape(self, layout: str) -> tuple[int, ...]:
        return (self.n, self.c, self.h, self.w) if layout == "NCHW" else (self.n, self.h, self.w, self.c)

    def out_shape(self, layout: str) -> tuple[int, ...]:
        return (self.n, self.m, self.oh, self.ow) if layout == "NCHW" else (self.n, self.oh, self.ow, self.m)


def padded_input(x: Any, g: Geometry, layout: str, width: int | None = None) -> tuple[Any, Any]:
    """(accessor xp(n, c, y, x) over the padded input, pad stage tensor or None); `width`: columns
    the stage holds when more than the padded input's (zeros on the right, for padded tiles)."""
    top, left = g.pads[0], g.pads[1]
    wp = max(g.wp, width or 0)
    if not any(g.pads) and wp == g.wp:
        src = x
    else:
        shape = (g.n, g.c, g.hp, wp) if layout == "NCHW" else (g.n, g.hp, wp, g.c)

        def fill(*i: Any) -> Any:
            n, c, y, xx = i if layout == "NCHW" else (i[0], i[3], i[1], i[2])
            inside = te.all(y >= top, y < top + g.h, xx >= left, xx < left + g.w)
            read = x[n, c, y - top, xx - left] if layout == "NCHW" else x[n, y - top, xx - left, c]
            return te.if_then_else(inside, read, te.const(0, "float32"))

        src = te.compute(shape, fill, name="pad")
    if layout == "NCHW":
        return (lambda n, c, y, xx: src[n, c, y, xx]), (src if src is not x else None)
    return (lambda n, c, y, xx: src[n, y, xx, c]), (src if src is not x else None)


def schedule_pad(sch: Any, lanes: int) -> None:
    block = sch.get_sblock("pad")
    loops = sch.get_loops(block)
    sch.parallel(sch.fuse(loops[0], loops[1]))


def out_index(layout: str, i: Sequence[Any]) -> tuple[Any, Any, Any, Any]:
    """(n, c, y, x) of an output index in `layout`."""
    return tuple(i) if layout == "NCHW" else (i[0], i[3], i[1], i[2])  # type: ignore[return-value]


def bias_and_epilogue(
    node: Node, epilogue: Sequence[Node], layout: str
) -> tuple[Value | None, Any, Epilogue]:
    b = node.operands[2] if len(node.operands) > 2 else None
    bias = te.placeholder((b.type.shape[0],), "float32", name="bias") if b is not None else None
    return b, bias, Epilogue.build(node.results[0], epilogue, layout=layout)


PARALLEL_MIN_FLOPS = 1 << 20
"""Convolutions below this many flops run serial: waking the thread pool costs more than it saves
(the digits CNN at 2 threads took 19 or 37 µs by whether its tiny convs launched in parallel)."""


class SerialSchedule:
    """A schedule whose `parallel` does nothing, for kernels too small for the thread pool."""

    def __init__(self, sch: Any) -> None:
        self._sch = sch

    def parallel(self, loop: Any) -> None:
        """Kept serial."""

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sch, name)


def finish_kernel(
    node: Node,
    epilogue: Sequence[Node],
    op: str,
    workload: dict[str, Any],
    sch_fn: Any,
    params: list[Any],
    args: list[KernelArg],
    flops: int,
    layout: str,
    pack: Any,
) -> LoweredKernel:
    import tvm.s_tir as s_tir

    name = kernel_name(op, workload)
    compute = te.create_prim_func(params)
    sch = s_tir.Schedule(snapshot(compute))
    sch_fn(sch if flops >= PARALLEL_MIN_FLOPS else SerialSchedule(sch))
    return LoweredKernel(
        name,
        sch.mod["main"].with_attr("global_symbol", name),
        tuple(args),
        flops,
        (node.name, *(n.name for n in epilogue)),
        workload,
        layout=layout,
        pack_weights=pack,
        compute=compute,
    )
