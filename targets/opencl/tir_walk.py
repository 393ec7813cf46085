"""Walking TensorIR statements (this TVM has no Python statement visitor): `walk`, `allocations`,
`lowered_allocations`; and `acc_block`, the GEMM rules' common start.

Rule: a statement's children are the statements held by the attributes of CHILDREN; `walk` yields
them parents first. A schedule's allocations are exact only once lowered: TVM compacts each buffer
to the region its consumers touch (which can come out far larger than the schedule meant, when the
bounds of fused indices are loose), so what a device kernel really declares is read from the
device functions TVM's own pipeline makes of it (`lowered_allocations`). Imports nothing of ours;
TVM lazily.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

CHILDREN = ("block", "body", "seq", "then_case", "else_case", "init")
"""The attributes of TensorIR statements that hold statements."""


def walk(stmt: Any) -> Iterator[Any]:
    """`stmt` and every statement under it, parents first."""
    yield stmt
    for name in CHILDREN:
        child = getattr(stmt, name, None)
        if child is None:
            continue
        for each in child if name == "seq" else (child,):
            yield from walk(each)


def allocations(func: Any) -> dict[str, int]:
    """Bytes `func`'s blocks allocate, by storage scope ("global", "shared", "local"), as scheduled
    (before TVM compacts them: see `lowered_allocations`)."""
    from tvm import s_tir

    found: dict[str, int] = {}
    for node in walk(func.body):
        if isinstance(node, s_tir.SBlock):
            for buf in node.alloc_buffers:
                found[buf.scope()] = found.get(buf.scope(), 0) + buffer_bytes(buf)
    return found


def lowered_allocations(func: Any, target: Any) -> dict[str, dict[str, int]]:
    """Bytes each device kernel of the scheduled `func` allocates once lowered for `target` (TVM's
    default pipeline, as `tvm.compile` runs it), by kernel name, then storage scope ("shared" is
    OpenCL's `__local`, "local" its private memory)."""
    import tvm
    from tvm import tirx
    from tvm.tirx.build import split_host_device_mods

    mod = tirx.transform.BindTarget(target.with_host(target.host))(tvm.IRModule({"main": func}))
    pipeline, _, _ = tirx.get_default_tir_pipeline(target)
    _, devices = split_host_device_mods(pipeline(mod))
    found: dict[str, dict[str, int]] = {}
    for device in devices.values():
        for var, kernel in device.functions.items():
            scopes = found.setdefault(var.name_hint, {})
            for node in walk(kernel.body):
                if isinstance(node, tirx.AllocBuffer):
                    scope = node.buffer.scope()
                    scopes[scope] = scopes.get(scope, 0) + buffer_bytes(node.buffer)
    return found


def buffer_bytes(buffer: Any) -> int:
    import numpy as np

    count = int(np.prod([int(d) for d in buffer.shape], dtype=np.int64))
    return count * np.dtype(str(buffer.dtype)).itemsize


def acc_block(func: Any) -> tuple[Any, Any]:
    """(schedule of `func`, its block named `acc`): the block the GEMM-family rules tile; a ValueError
    (the family's next rule runs) when `func` has none."""
    import tvm.s_tir as s_tir

    sch = s_tir.Schedule(func)
    try:
        return sch, sch.get_sblock("acc")
    except Exception as exc:  # noqa: BLE001  (TVM's ScheduleError: no such block)
        raise ValueError("no acc block") from exc
