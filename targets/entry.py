"""One exported entry function per model: `hai_entry(arena, weights, inputs...)` calls every kernel.

Rule: each distinct kernel is also compiled, alone and cached like the kernel
itself, as a *subroutine*: an exported C function `<kernel>_sub(pointers...)`
returning int32 (0: success), its buffers declared over pointer parameters. The
entry function takes the arena, `weights.bin` and each graph input (the
caller's buffer, outside the arena) as 1-D uint8 buffers and calls the
subroutines in plan order (`call_extern`) at their arguments'
absolute byte offsets, throwing TVM's last error when one returns non-zero.
Subroutines live in objects of their own, never in the entry's: LLVM must not
inline them into one function, because TVM tags each buffer's accesses with its
own TBAA type, and one kernel's output and the next kernel's input (the same
arena bytes) would then look unrelated and be reordered. A subroutine that
allocates scratch memory gets the CPU device attributes the exported kernels get
from MakePackedAPI (wrapping its body before the `return 0`, so the workspace
is freed before returning). The library links the entry, the subroutines and
the kernels' own objects (still exported, for profiling), and the object of the
final plan's digest (targets/digest_function.py; the driver links it once the
plan is final). Same calls, same bytes.

A paged plan has several such functions in one object, one per segment of
steps (`hai_segment_<k>`), each taking the page pool in place of `weights.bin`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from targets.build import kernel_objects, link_library, tvm_target_of
from targets.description import TargetDescription
from targets.kernel_cache import cache_key, cached_file
from targets.llvm_build import unique_kernels
from targets.lowering.kernel import LoweredKernel

ENTRY_SYMBOL = "hai_entry"
SUBROUTINE_SUFFIX = "_sub"
PIPELINE = "hai_subroutine_s_tir"
GENERATOR_VERSION = 2  # bump whenever this module changes the code it generates (cache keys hold it)
C_CALLING_CONV = 1  # CallingConv::kCPackedFunc: MakePackedAPI leaves the C signature as it is
KDL_CPU = 1
ARENA, WEIGHTS = "arena", "weights"
PACKED_CALLS = ("call_packed", "call_cpacked", "tvm_call_packed", "tvm_call_cpacked", "call_packed_lowered",
                "call_cpacked_lowered", "tvm_call_packed_lowered", "tvm_call_cpacked_lowered")  # fmt: skip


@dataclass(frozen=True)
class EntryCall:
    """One kernel call of the entry: each argument as (ARENA, WEIGHTS or `input_place(i)`, byte offset)."""

    kernel: LoweredKernel
    offsets: tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class BufferSizes:
    """The byte sizes of the entry's buffer parameters: arena, weights, each graph input in order."""

    arena: int
    weights: int
    inputs: tuple[int, ...] = ()


def input_place(index: int) -> str:
    """The EntryCall base naming graph input `index`'s buffer parameter."""
    return f"input{index}"


def subroutine_symbol(kernel: LoweredKernel) -> str:
    return kernel.name + SUBROUTINE_SUFFIX


def subroutine_refusal(kernel: LoweredKernel) -> str | None:
    """Why `kernel` cannot be a subroutine of the entry function, or None when it can.

    The entry passes only pointers, so every parameter must be a buffer; a packed-function call
    needs the calling environment of an exported packed function, which a subroutine lacks.
    """
    from tvm.tirx.buffer import is_buffer_var

    scalars = [p.name for p in kernel.func.params if not is_buffer_var(p)]
    if scalars:
        return f"takes non-buffer parameter(s) {', '.join(scalars)}"
    text = kernel.func.script()
    packed = sorted(call for call in PACKED_CALLS if f"T.{call}(" in text)
    if packed:
        return f"calls packed functions ({', '.join(packed)})"
    return None


# -- kernels as subroutines ----------------------------------------------------------------------------


def storage_type(dtype: Any) -> Any:
    """The element type a buffer of `dtype` has in memory: bool is one byte (int8), as in DLPack."""
    import tvm

    return tvm.ir.PrimType("int8") if str(dtype) == "bool" else dtype


def subroutine(kernel: LoweredKernel) -> Any:
    """The C-callable int32 function of a scheduled kernel: pointer params, its buffers declared on them."""
    import tvm
    from tvm import tirx

    func = kernel.func
    pointers = [tvm.ir.Var(f"{b.name}_ptr", tvm.ir.PointerType(storage_type(b.ty.dtype), "global"))
                for b in func.params]  # fmt: skip
    declared = [tirx.DeclBuffer(b, data=p) for b, p in zip(func.params, pointers, strict=True)]
    body = tirx.SeqStmt([*declared, func.body, tirx.Return(tirx.const(0, "int32"))])
    result = tirx.PrimFunc(pointers, body, ret_type=tvm.ir.PrimType("int32"))
    for key, value in (func.attrs or {}).items():
        result = result.with_attr(key, value)
    result = result.with_attr("global_symbol", subroutine_symbol(kernel))
    return result.with_attr("calling_conv", C_CALLING_CONV)


def with_device_scope(func: Any) -> Any:
    """`func` with its body (all but the final `return`) in the CPU device_id/device_type attributes."""
    from tvm import tirx

    body = func.body
    stmts = list(body.seq) if isinstance(body, tirx.SeqStmt) else [body]
    tail = [stmts[-1]] if isinstance(stmts[-1], tirx.Return) else []
    inner = stmts[: len(stmts) - len(tail)]
    zero = tirx.const(0, "int32")
    scoped = tirx.AttrStmt(zero, "device_id", zero, tirx.SeqStmt(inner) if len(inner) != 1 else inner[0])
    scoped = tirx.AttrStmt(zero, "device_type", tirx.const(KDL_CPU, "int32"), scoped)
    return func.with_body(tirx.SeqStmt([scoped, *tail]))


def register_pipeline() -> None:
    """Register PIPELINE: the s_tir pipeline, then every subroutine put in the CPU device scope."""
    import tvm
    from tvm import tirx
    from tvm.s_tir.pipeline import default_s_tir_pipeline

    if PIPELINE in tirx.compilation_pipeline.PIPELINE_MAP:
        return

    def factory():  # type: ignore[no-untyped-def]
        pipeline, finalize_host, finalize_device = default_s_tir_pipeline()

        @tvm.transform.module_pass(opt_level=0)
        def subroutine_pipeline(mod, _ctx):  # type: ignore[no-untyped-def]
            mod = pipeline(mod)
            for gv, func in list(mod.functions.items()):
                if (
                    isinstance(func, tirx.PrimFunc)
                    and int(func.attrs.get("calling_conv", 0)) == C_CALLING_CONV
                ):
                    mod[gv] = with_device_scope(func)
            return mod

        return subroutine_pipeline, finalize_host, finalize_device

    tirx.register_tir_pipeline(PIPELINE, factory)


def compile_subroutine(kernel: LoweredKernel, target_json: dict, path: Path) -> None:
    import tvm

    register_pipeline()
    module = tvm.IRModule({subroutine_symbol(kernel): subroutine(kernel)})
    lib = tvm.compile(module, target=tvm.target.Target(target_json), tir_pipeline=PIPELINE)
    lib.mod.write_to_file(str(path))


def tir_hash(kernel: LoweredKernel) -> str:
    return hashlib.sha256(kernel.func.script().encode()).hexdigest()


def subroutine_object(kernel: LoweredKernel, desc: TargetDescription) -> Path:
    """The cached object file of one kernel's subroutine (compiled now if missing)."""
    target_json = tvm_target_of(desc)
    workload = {"subroutine": kernel.name, "tir": tir_hash(kernel), "generator": GENERATOR_VERSION}
    path, _ = cached_file(cache_key(workload, target_json), ".o",
                          lambda tmp: compile_subroutine(kernel, target_json, tmp))  # fmt: skip
    return path


# -- the entry function --------------------------------------------------------------------------------


EntryFunctions = Sequence[tuple[str, Sequence[EntryCall]]]
"""Entry functions to build into one object: (exported symbol, its calls in order) each."""


def segment_symbol(index: int) -> str:
    return f"hai_segment_{index}"


def entry_function(calls: Sequence[EntryCall], sizes: BufferSizes, symbol: str = ENTRY_SYMBOL) -> Any:
    """`symbol(arena, weights, input0, ...)` (1-D uint8 buffers) calling every subroutine in order."""
    import tvm
    from tvm import tirx

    arena = tirx.decl_buffer((sizes.arena,), "uint8", name="arena")
    weights = tirx.decl_buffer((sizes.weights,), "uint8", name="weights")
    inputs = [tirx.decl_buffer((n,), "uint8", name=input_place(i)) for i, n in enumerate(sizes.inputs)]
    bases = {ARENA: arena, WEIGHTS: weights, **{input_place(i): b for i, b in enumerate(inputs)}}
    stmts = []
    for call in calls:
        args = [tirx.address_of(tirx.BufferLoad(bases[base], [tirx.const(offset, "int64")]))
                for base, offset in call.offsets]  # fmt: skip
        code = tirx.call_extern("int32", subroutine_symbol(call.kernel), *args)
        stmts.append(tirx.IfThenElse(code != 0, tirx.Evaluate(tirx.tvm_throw_last_error()), None))
    stmts.append(tirx.Return(tirx.const(0, "int32")))
    func = tirx.PrimFunc([arena, weights, *inputs], tirx.SeqStmt(stmts), ret_type=tvm.ir.PrimType("int32"))
    return func.with_attr("global_symbol", symbol)


def compile_entry(functions: EntryFunctions, sizes: BufferSizes, target_json: dict, path: Path) -> None:
    import tvm

    module = tvm.IRModule({symbol: entry_function(calls, sizes, symbol) for symbol, calls in functions})
    lib = tvm.compile(module, target=tvm.target.Target(target_json))
    lib.mod.write_to_file(str(path))


def entry_key(functions: EntryFunctions, sizes: BufferSizes) -> dict[str, Any]:
    """What decides the entry object: each function's calls (subroutine, argument offsets), the sizes."""
    order = {symbol: [[subroutine_symbol(c.kernel), [list(o) for o in c.offsets]] for c in calls]
             for symbol, calls in functions}  # fmt: skip
    return {"entries": order, "generator": GENERATOR_VERSION,
            "arena": sizes.arena, "weights": sizes.weights, "inputs": list(sizes.inputs)}  # fmt: skip


def entry_objects(functions: EntryFunctions, sizes: BufferSizes, desc: TargetDescription) -> list[Path]:
    """The object files of a library exporting every function of `functions` and each kernel they
    call: the entry object, each kernel's subroutine and the kernel itself (all cached)."""
    target_json = tvm_target_of(desc)
    key = cache_key(entry_key(functions, sizes), target_json)
    entry, _ = cached_file(key, ".o", lambda tmp: compile_entry(functions, sizes, target_json, tmp))
    kernels = unique_kernels([c.kernel for _, calls in functions for c in calls])
    return [entry, *(subroutine_object(k, desc) for k in kernels), *kernel_objects(kernels, desc)]


def build_entry_library(
    functions: EntryFunctions, sizes: BufferSizes, desc: TargetDescription, digest: bytes | None = None
) -> Path:
    """A shared library of `entry_objects` (cached), with the plan `digest` when given."""
    return link_library(entry_objects(functions, sizes, desc), desc, digest)
