"""The OpenCL target module without a device: profiles, the TVM target, thread-binding refusals."""

from __future__ import annotations

from typing import Any

import pytest

from targets.description import TargetError
from targets.lowering.kernel import KernelArg, LoweredKernel
from targets.opencl import threads
from targets.opencl.flat import flat_schedule
from targets.registry import available_targets, get_target, resolve_target


def test_presets_describe_their_devices() -> None:
    assert "opencl" in available_targets()
    pocl = resolve_target("opencl", cpu="pocl-cpu")
    h100 = resolve_target("opencl", cpu="nvidia-h100")
    assert (pocl.arch, pocl.features, pocl.buffer_alignment) == ("opencl", frozenset({"host_unified"}), 128)
    assert (h100.features, h100.buffer_alignment) == (frozenset(), 512)  # NVIDIA's driver: no cl_khr_fp16
    assert pocl.to_pass_context().buffer_alignment == 128  # plan-memory aligns offsets to it
    tvm_target = get_target("opencl").tvm_target(h100)
    assert (tvm_target["kind"], tvm_target["max_num_threads"]) == ("opencl", 1024)
    assert "thread_warp_size" not in tvm_target  # see test_a_work_group_reduction_keeps_every_barrier...


def test_feature_edits_reach_the_profile() -> None:
    edited = resolve_target("opencl", cpu="nvidia-h100", cpu_features="-fp16,+int8_dot")
    assert edited.features == frozenset({"int8_dot"})
    assert dict(edited.device)["int8_dot"] and not dict(edited.device)["fp16"]
    assert edited.buffer_alignment == 512  # the rest of the profile stays


def test_unknown_profile_names_the_presets() -> None:
    with pytest.raises(TargetError, match="unknown OpenCL device profile 'mali'.*pocl-cpu, nvidia-h100"):
        resolve_target("opencl", cpu="mali")


def elementwise_kernel() -> LoweredKernel:
    from tvm import te

    x = te.placeholder((4, 300), name="x")
    y = te.compute((4, 300), lambda i, j: x[i, j] * 2.0, name="y")
    func = te.create_prim_func([x, y])
    args = (KernelArg("x", "input", (4, 300), "float32"), KernelArg("y", "output", (4, 300), "float32"))
    return LoweredKernel("hai_test_double", func, args, 1200, ("Mul_0",), {"op": "Mul"}, compute=func)


def test_a_kernel_without_thread_bindings_is_refused_by_name() -> None:
    kernel = elementwise_kernel()
    with pytest.raises(threads.ThreadBindingError, match=r"kernel hai_test_double \(Mul_0\).*host code"):
        threads.check_bound(kernel.compute, kernel)


def test_no_rule_that_binds_fails_naming_the_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    import tvm

    kernel = elementwise_kernel()
    monkeypatch.setitem(threads.FAMILY_RULES, "pointwise", ("Matmul",))  # takes no elementwise compute
    target = tvm.target.Target(get_target("opencl").tvm_target(resolve_target("opencl", cpu="pocl-cpu")))
    with pytest.raises(
        threads.ThreadBindingError, match=r"hai_test_double \(Mul_0\): no OpenCL thread schedule"
    ):
        threads.thread_schedule(kernel, target)


def test_flat_schedule_binds_and_sizes_the_launch() -> None:
    kernel = elementwise_kernel()
    scheduled = flat_schedule(kernel.compute, 256)
    threads.check_bound(scheduled, kernel)
    (size,) = threads.launch_sizes(scheduled)
    assert (size.global_size, size.local_size) == ((1280, 1, 1), (256, 1, 1))  # 1200 work-items, padded


def test_the_library_carries_source_and_launches(tmp_path: Any) -> None:
    import json

    from targets.opencl.build import kernel_record

    target = get_target("opencl")
    record = kernel_record(elementwise_kernel(), target.tvm_target(resolve_target("opencl", cpu="pocl-cpu")))
    assert "__kernel void hai_test_double_kernel(" in record["source"]
    (launch,) = record["launches"]
    assert launch["args"] == [["param", 0, 4], ["param", 1, 4]] and record["params"] == 2  # element sizes
    assert "int x_ptr_off" in record["source"] and "x_ptr += x_ptr_off;" in record["source"]
    json.dumps(record)  # plain data


def test_an_op_without_an_opencl_schedule_fails_the_compile_naming_it(tmp_path: Any) -> None:
    """ScatterND's template writes a serial CPU loop nest: no OpenCL schedule yet, so the compile stops
    with an error naming the op and its node (until partitioning gives such ops a CPU home)."""
    from onnx import TensorProto, helper

    from hai_compiler.compiler import CompileOptions, compile_model
    from ir.errors import HaiError

    graph = helper.make_graph(
        [helper.make_node("ScatterND", ["data", "indices", "updates"], ["out"], name="scatter")],
        "scatter",
        [
            helper.make_tensor_value_info("data", TensorProto.FLOAT, [8]),
            helper.make_tensor_value_info("indices", TensorProto.INT64, [2, 1]),
            helper.make_tensor_value_info("updates", TensorProto.FLOAT, [2]),
        ],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [8])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    options = CompileOptions(target="opencl", cpu="pocl-cpu")
    with pytest.raises(HaiError, match=r"\(scatter\): op ScatterND has no OpenCL schedule yet"):
        compile_model(model, tmp_path / "s.hai", options)


def gemm_kernel() -> LoweredKernel:
    """A GEMM compute: `a` (128 x 40) times the weights `w` (40 x 96), then a ReLU."""
    from tvm import te

    a = te.placeholder((128, 40), name="a")
    w = te.placeholder((40, 96), name="w")
    k = te.reduce_axis((0, 40), name="k")
    acc = te.compute((128, 96), lambda i, j: te.sum(a[i, k] * w[k, j], axis=k), name="acc")
    out = te.compute((128, 96), lambda i, j: te.max(acc[i, j], 0.0), name="out")
    func = te.create_prim_func([a, w, out])
    name = "hai_gemm_0123456789abcdef"
    return LoweredKernel(name, func, (), 0, ("MatMul_0",), {"op": "gemm"}, compute=func)


def opencl_tvm_target(cpu: str, **profile: Any) -> Any:
    """TVM's target for a preset, `profile` replacing some of its facts."""
    import dataclasses

    import tvm

    from targets.opencl import OpenCLTarget
    from targets.opencl.profiles import PRESETS

    backend = get_target("opencl")
    assert isinstance(backend, OpenCLTarget)
    profiled = dataclasses.replace(PRESETS[cpu], **profile)
    desc = backend.with_profile(resolve_target("opencl", cpu=cpu), profiled)
    return tvm.target.Target(backend.tvm_target(desc))


def test_the_gemm_family_is_tiled_in_local_memory() -> None:
    """A GEMM compute (weights indexed by the channel axis) gets 16 x 16 work-items (4 x 2 outputs each),
    its operand tiles in local memory; the OpenCL source has the __local tiles and barriers."""
    import tvm

    from targets.opencl.tiled import tiled_schedule

    kernel = gemm_kernel()
    target = opencl_tvm_target("nvidia-h100")
    scheduled = tiled_schedule(kernel.compute, frozenset({"w"}), target)
    threads.check_bound(scheduled, kernel)
    sizes = threads.launch_sizes(scheduled)
    assert (sizes[0].local_size, sizes[0].global_size) == (
        (16, 16, 1),
        (96, 16, 1),
    )  # 2 x 3 groups of 64 x 32
    source = (
        tvm.compile(tvm.IRModule({kernel.name: scheduled}), target=target).mod.imports[0].inspect_source()
    )
    assert "__local float" in source and "barrier(CLK_LOCAL_MEM_FENCE)" in source
    with pytest.raises(ValueError, match="not a GEMM"):
        tiled_schedule(kernel.compute, frozenset(), target)  # no weights: no channel axis


def test_a_barrier_some_work_items_skip_is_found() -> None:
    """A barrier nested in `if (get_local_id ...)` (or its else) hangs a GPU: found, naming the kernel;
    barriers beside such branches, or inside loops every work-item runs, are fine."""
    from targets.opencl.threads import divergent_barriers

    fine = """__kernel void a_kernel(__global float* restrict x_ptr) {
  for (int k = 0; k < 4; ++k) {
    barrier(CLK_LOCAL_MEM_FENCE);
    if ((convert_int(get_local_id(0))) < 8) {
      x_ptr[0] = 1.0f;
    } else {
      x_ptr[1] = 1.0f;
    }
    barrier(CLK_LOCAL_MEM_FENCE);
  }
}"""
    hangs = """__kernel void b_kernel(__global float* restrict x_ptr) {
  if ((convert_int(get_local_id(0))) < 16) {
    x_ptr[0] = 1.0f;
  } else {
    barrier(CLK_LOCAL_MEM_FENCE);
  }
}"""
    assert divergent_barriers(fine) == []
    assert divergent_barriers(fine + "\n" + hangs) == ["b_kernel"]


def test_a_work_group_reduction_keeps_every_barrier_outside_branches() -> None:
    """A row sum compiled for the H100 preset: the tree's last rounds must not sync a warp with
    barriers inside `if (local id < 16)`, which hung NVIDIA's OpenCL. With a warp size in the TVM
    target (what the preset once set) dlight's Reduction rule does exactly that: it is refused and the
    family's next rule takes the kernel."""
    from tvm import te

    from targets.opencl.build import kernel_record
    from targets.opencl.threads import divergent_barriers

    x = te.placeholder((4, 512), name="x")
    k = te.reduce_axis((0, 512), name="k")
    out = te.compute((4,), lambda i: te.sum(x[i, k], axis=k), name="out")
    func = te.create_prim_func([x, out])
    kernel = LoweredKernel("hai_reducesum_0123456789abcdef", func, (), 0, ("ReduceSum_0",),
                           {"op": "reducesum"}, compute=func)  # fmt: skip
    target = get_target("opencl")
    tvm_target = target.tvm_target(resolve_target("opencl", cpu="nvidia-h100"))
    record = kernel_record(kernel, tvm_target)
    assert record["schedule"] == "Reduction" and "barrier(" in record["source"]
    assert divergent_barriers(record["source"]) == []
    warped = kernel_record(kernel, {**tvm_target, "thread_warp_size": 32})
    assert warped["schedule"] != "Reduction" and divergent_barriers(warped["source"]) == []


def test_a_rule_over_the_local_memory_once_lowered_is_refused() -> None:
    """What a schedule's kernels declare once lowered is checked against the device's local memory (the
    GEMM above stages (64 + 32) x 40 floats: its 40 reduction elements in one step); on a smaller
    device the family's next rule takes the kernel, within its local memory."""
    from targets.opencl.tiled import tiled_schedule
    from targets.opencl.tir_walk import lowered_allocations

    kernel = gemm_kernel()
    h100 = opencl_tvm_target("nvidia-h100")
    scheduled = tiled_schedule(kernel.compute, frozenset({"w"}), h100)
    (used,) = [s["shared"] for s in lowered_allocations(scheduled, h100).values() if s.get("shared")]
    assert used == (64 + 32) * 40 * 4
    threads.check_local_memory(scheduled, opencl_tvm_target("nvidia-h100", local_memory_bytes=used))
    small = opencl_tvm_target("nvidia-h100", local_memory_bytes=used - 4)
    refusal = rf"declares {used} bytes of local memory once lowered, the device has {used - 4}"
    with pytest.raises(ValueError, match=refusal):
        threads.check_local_memory(scheduled, small)
    kept, _ = threads.thread_schedule(kernel, small)
    assert kept.attrs["hai.schedule"] != "Tiled"
    assert all(s.get("shared", 0) <= used - 4 for s in lowered_allocations(kept, small).values())
