"""Tiny artifacts built by hand, before the real compiler exists: TVM kernels, a plan written by hand.

`y = relu(x @ W + b)`: kernel `matmul(x, W, C)` (C in the arena) then `bias_relu(C, b, y)`
(parallel, vectorised, so libtvm_runtime's thread pool is exercised). `numpy_reference`
computes the same thing independently. `write_entry_artifact` builds one whose plan is a
single exported `run_all(arena, weights, a)` (u8 add), to test the one-call path. Each library
also exports `hai_plan_digest` for the plan written beside it, built by the compiler's own
`targets/digest_function.py` from runtime/plan_digest.py's digest of that plan, as `load` requires.
The digest covers the target: the tiny library is built for the host's features, so an artifact
written with other `features` (`write_tiny_artifact(..., features=)`) loads only as far as the CPU
check, which refuses a feature the host lacks before the digest is read.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from runtime.artifact import (
    CPU_EXECUTABLE,
    CompilerInfo,
    ExecutionPlan,
    Slot,
    Step,
    TargetInfo,
    TensorBinding,
    kernel_library_file,
)
from runtime.cpu_features import host_cpu
from runtime.plan_digest import PLAN_DIGEST_SYMBOL, plan_digest
from targets.artifact import ManifestParts, layout_weights, resolve_weight_slots, write_artifact

M, K, N = 4, 16, 8
C_OFFSET, Y_OFFSET, ARENA = 256, 384, 512


def host_target(features: tuple[str, ...] | None = None) -> TargetInfo:
    cpu = host_cpu()
    return TargetInfo("x86", cpu.arch, "host", tuple(cpu.features if features is None else features))


def llvm_target(target: dict | None = None):  # type: ignore[no-untyped-def]
    """The TVM target `target` (a Target's JSON), by default this host's CPU."""
    import tvm

    return tvm.target.Target(target or {"kind": "llvm", "mcpu": tvm.target.codegen.llvm_get_system_cpu()})


def export(lib, path: Path, cross_compiler: str | None) -> None:  # type: ignore[no-untyped-def]
    """Link the compiled `lib` into the shared library `path`, with `cross_compiler` (a gcc) if given."""
    import tvm

    fcompile = tvm.support.cc.cross_compiler(cross_compiler) if cross_compiler else None
    lib.export_library(str(path), **({"fcompile": fcompile} if fcompile else {}))


def parts_digest(parts: ManifestParts, weights: dict[str, np.ndarray]) -> bytes:
    """The plan digest of the artifact `write_artifact(parts, weights)` writes (weights laid out by it)."""
    layout = layout_weights(weights)
    plan = resolve_weight_slots(parts.plan, layout[0])
    return plan_digest(parts.target, plan, parts.inputs, parts.outputs, *layout)


def digest_entry(parts: ManifestParts, weights: dict[str, np.ndarray]) -> dict:
    """The IRModule entry exporting `hai_plan_digest` for that artifact's plan."""
    from targets.digest_function import digest_function

    return {PLAN_DIGEST_SYMBOL: digest_function(parts_digest(parts, weights))}


def build_kernels(
    path: Path,
    digest: bool = True,
    target: dict | None = None,
    cross_compiler: str | None = None,
    info: TargetInfo | None = None,
    devices: tuple[str, str] = ("cpu", "cpu"),
    parts: ManifestParts | None = None,
) -> Path:
    """Compile `matmul` and `bias_relu` (and, with `digest`, the plan digest of `parts`, by default
    `tiny_parts(target=info, devices=devices)`) into the library `path`, for `target` (default: this
    host), linked by `cross_compiler` when given."""
    import tvm
    from tvm import te

    x = te.placeholder((M, K), "float32", name="x")
    w = te.placeholder((K, N), "float32", name="W")
    k = te.reduce_axis((0, K), name="k")
    c = te.compute((M, N), lambda i, j: te.sum(x[i, k] * w[k, j], axis=k), name="C")
    c_in = te.placeholder((M, N), "float32", name="C_in")
    b = te.placeholder((N,), "float32", name="b")
    y = te.compute((M, N), lambda i, j: te.max(c_in[i, j] + b[j], tvm.tirx.const(0, "float32")), name="y")
    mod = tvm.IRModule(
        {
            "matmul": te.create_prim_func([x, w, c]).with_attr("global_symbol", "matmul"),
            "bias_relu": te.create_prim_func([c_in, b, y]).with_attr("global_symbol", "bias_relu"),
            **(
                digest_entry(parts or tiny_parts(target=info, devices=devices), tiny_weights())
                if digest
                else {}
            ),
        }
    )
    sch = tvm.s_tir.Schedule(mod)
    sch.work_on("bias_relu")
    rows, cols = sch.get_loops(sch.get_sblock("y"))
    sch.parallel(rows)
    sch.vectorize(cols)
    export(tvm.compile(sch.mod, target=llvm_target(target)), path, cross_compiler)
    return path


def tiny_weights(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "W": rng.standard_normal((K, N)).astype(np.float32),
        "b": rng.standard_normal(N).astype(np.float32),
    }


def tiny_parts(
    features: tuple[str, ...] | None = None,
    target: TargetInfo | None = None,
    devices: tuple[str, str] = ("cpu", "cpu"),
) -> ManifestParts:
    """The tiny plan, for this host (its features, or `features`) unless `target` names another; its two
    steps run on `devices`, each from that device's kernel library."""
    f32 = "float32"
    steps = (
        Step(
            "matmul",
            (Slot("input", (M, K), f32, name="x"), Slot("weight", (K, N), f32, name="W"),
             Slot("arena", (M, N), f32, C_OFFSET, writes=True)),
            ("/fc/MatMul",), devices[0], kernel_library_file(devices[0]),
        ),
        Step(
            "bias_relu",
            (Slot("arena", (M, N), f32, C_OFFSET), Slot("weight", (N,), f32, name="b"),
             Slot("output", (M, N), f32, name="y", writes=True)),
            ("/fc/Add", "/relu/Relu"), devices[1], kernel_library_file(devices[1]),
        ),
    )  # fmt: skip
    return ManifestParts(
        name="tiny",
        compiler=CompilerInfo("0.1.0", "0.27.0.post1", {"target": "x86", "passes": "default"}),
        target=target or host_target(features),
        inputs=(TensorBinding("x", (M, K), f32),),
        outputs=(TensorBinding("y", (M, N), f32, Y_OFFSET),),
        plan=ExecutionPlan(ARENA, steps),
    )


def write_tiny_artifact(
    out: Path,
    kernels: Path,
    features: tuple[str, ...] | None = None,
    target: TargetInfo | None = None,
    tvm_runtime: Path | None = None,
    devices: tuple[str, str] = ("cpu", "cpu"),
) -> Path:
    """The tiny artifact of `kernels`; `target` and its `tvm_runtime` for another machine than this one;
    its steps on `devices`, `kernels` the library of each (built with the same `devices`)."""
    parts = tiny_parts(features, target, devices)
    libraries = dict.fromkeys(devices, kernels)
    return write_artifact(out, parts, tiny_weights(), libraries, "// tiny model\n", tvm_runtime)


def numpy_reference(x: np.ndarray, weights: dict[str, np.ndarray]) -> np.ndarray:
    return np.maximum(x.astype(np.float64) @ weights["W"] + weights["b"], 0)


# -- the one-call entry path --------------------------------------------------------------------------

ENTRY_ARENA, ENTRY_BYTES = 128, 16


def build_entry_kernels(path: Path) -> Path:
    """`run_all(arena u8[128], weights u8[16], a u8[16])`: arena[64:80] = a + weights (wrapping u8 add),
    and the plan digest of `entry_parts`."""
    import tvm
    from tvm.script import tirx as T

    @T.prim_func
    def run_all(
        arena: T.Buffer((ENTRY_ARENA,), "uint8"),
        weights: T.Buffer((ENTRY_BYTES,), "uint8"),
        a: T.Buffer((ENTRY_BYTES,), "uint8"),
    ):
        T.func_attr({"global_symbol": "run_all"})
        for i in range(ENTRY_BYTES):
            arena[64 + i] = a[i] + weights[i]

    digest = digest_entry(entry_parts(), {"offset": np.zeros(ENTRY_BYTES, np.uint8)})
    module = tvm.IRModule({"run_all": run_all, **digest})
    tvm.compile(module, target=llvm_target()).export_library(str(path))
    return path


def entry_parts() -> ManifestParts:
    u8 = "uint8"
    provenance = Step(  # what `run_all` does, for people: the runtime calls only the entry
        "add",
        (Slot("input", (ENTRY_BYTES,), u8, name="a"), Slot("weight", (ENTRY_BYTES,), u8, name="offset"),
         Slot("output", (ENTRY_BYTES,), u8, name="sum", writes=True)),
    )  # fmt: skip
    return ManifestParts(
        name="entry",
        compiler=CompilerInfo("0.1.0", "0.27.0.post1", {}),
        target=host_target(()),
        inputs=(TensorBinding("a", (ENTRY_BYTES,), u8),),
        outputs=(TensorBinding("sum", (ENTRY_BYTES,), u8, 64),),
        plan=ExecutionPlan(ENTRY_ARENA, (provenance,), entry="run_all", entry_executable=CPU_EXECUTABLE),
    )


def write_entry_artifact(out: Path, kernels: Path, offset: np.ndarray) -> Path:
    return write_artifact(out, entry_parts(), {"offset": offset}, {"cpu": kernels}, "// entry model\n")
