"""x86 shape, indexing and generate templates, run through tvm_ffi, against the IR references, exactly.

Every op of those families needs a case here (a new op without a lowering
fails `test_every_op_of_the_families_has_a_case`). All kernels are built with
one `build_kernels` call; shapes are small.
"""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
from movement_helpers import Case, assert_exact, build_cases, run_case, sample

from ir.dtypes import DType
from ir.ops.registry import all_schemas
from runtime.kernel_library import aligned_empty, kernel_function, kernel_tensor, load_kernel_module
from targets.build import build_kernels
from targets.lowering.dispatch import lower_node, supported_ops
from targets.lowering.kernel import LoweringError
from targets.registry import resolve_target

F32 = np.float32
FAMILIES = ("shape", "indexing", "generate")
BF16, I4 = ml_dtypes.bfloat16, ml_dtypes.int4


def idx(values, dtype=np.int64) -> np.ndarray:
    return np.array(values, dtype=dtype)


CASES = [
    # views as copies
    Case("reshape_f32", "Reshape", [sample((2, 3, 4), np.float32)], {"shape": [6, 4]}),
    Case("reshape_bf16", "Reshape", [sample((4, 16), BF16)], {"shape": [64]}),
    Case("flatten_i8", "Flatten", [sample((2, 3, 4, 5), np.int8)], {"axis": 2}),
    Case("squeeze_bool", "Squeeze", [sample((3, 1, 4), bool)], {"axes": [1]}),
    Case("unsqueeze_i4", "Unsqueeze", [sample((3, 4), I4)], {"axes": [0, 3]}),
    Case("identity_i64", "Identity", [sample((5, 7), np.int64)]),
    Case("identity_f16_scalar", "Identity", [sample((), np.float16)]),
    # Transpose
    Case("transpose_f32", "Transpose", [sample((2, 3, 4, 5), np.float32)], {"perm": [0, 2, 3, 1]}),
    Case("transpose_bf16", "Transpose", [sample((3, 4), BF16)], {"perm": [1, 0]}),
    Case("transpose_i64", "Transpose", [sample((2, 1, 3), np.int64)], {"perm": [2, 0, 1]}),
    Case("transpose_u8_rows", "Transpose", [sample((4, 8, 64), np.uint8)], {"perm": [1, 0, 2]}),
    Case("transpose_tiled_f32", "Transpose", [sample((2, 16, 24), np.float32)], {"perm": [0, 2, 1]}),
    Case("transpose_tiled_i8", "Transpose", [sample((3, 8, 16, 8), np.int8)], {"perm": [0, 3, 1, 2]}),
    Case("transpose_bool", "Transpose", [sample((2, 3, 5), bool)], {"perm": [2, 1, 0]}),
    # Concat
    Case(
        "concat_f32_const",
        "Concat",
        [
            sample((2, 1, 16), np.float32),
            sample((2, 3, 16), np.float32, 1),
            sample((2, 2, 16), np.float32, 2),
        ],
        {"axis": 1},
        constants=(1,),
    ),
    Case("concat_i4_axis0", "Concat", [sample((1, 3), I4), sample((2, 3), I4, 1)], {"axis": 0}),
    Case(
        "concat_bool_last",
        "Concat",
        [sample((2, 3), bool), sample((2, 0), bool), sample((2, 2), bool, 1)],
        {"axis": 1},
    ),
    Case("concat_f16_same_twice", "Concat", [sample((3, 2), np.float16)] * 2, {"axis": 1}),
    Case(
        "concat_f32_rows_vectors_and_tails",
        "Concat",
        [
            sample((3, 4, 16), np.float32),
            sample((3, 4, 5), np.float32, 1),
            sample((3, 4, 0), np.float32),
            sample((3, 4, 8), np.float32, 2),
            sample((3, 4, 16), np.float32),
        ],
        {"axis": 2},
        constants=(1,),
    ),
    Case("concat_i4_rows", "Concat", [sample((2, 3), I4), sample((2, 5), I4, 1)], {"axis": 1}),
    # equal flat sizes, other row splits: two kernels, not one (ddddocr_det's NHWC Concats)
    *(
        Case(f"concat_rows_{r}x{c}", "Concat", [sample((r, c), F32), sample((r, c), F32, 1)], {"axis": 1})
        for r, c in ((2, 8), (4, 4))
    ),
    # Split
    Case("split_f32", "Split", [sample((2, 6, 4), np.float32)], {"axis": 1, "split": [1, 2, 3]}),
    Case("split_i16_last", "Split", [sample((3, 5), np.int16)], {"axis": 1, "split": [2, 0, 3]}),
    # Pad
    Case(
        "pad_constant_f32_crop",
        "Pad",
        [sample((3, 5, 6), np.float32)],
        {"pads": [1, -1, 2, 0, 2, -2], "mode": "constant", "value": 1.5},
    ),
    Case("pad_constant_i32_trunc", "Pad", [sample((2, 3), np.int32)], {"pads": [1, 1, 1, 2], "value": -2.7}),
    Case("pad_constant_bool", "Pad", [sample((2, 3), bool)], {"pads": [0, 2, 1, 0], "value": 1.0}),
    Case(
        "pad_reflect_i32_wide",
        "Pad",
        [sample((2, 3, 4), np.int32)],
        {"pads": [0, 5, 3, 0, 4, 7], "mode": "reflect"},
    ),
    Case(
        "pad_reflect_single", "Pad", [sample((2, 1), np.float32)], {"pads": [0, 2, 0, 3], "mode": "reflect"}
    ),
    Case("pad_edge_bf16", "Pad", [sample((3, 4), BF16)], {"pads": [2, 1, 1, 3], "mode": "edge"}),
    Case("pad_wrap_u8", "Pad", [sample((3, 4), np.uint8)], {"pads": [4, -1, 2, 6], "mode": "wrap"}),
    # Expand, Tile
    Case("expand_f32", "Expand", [sample((3, 1), np.float32)], {"shape": [2, 3, 16]}),
    Case("expand_i64", "Expand", [sample((1,), np.int64)], {"shape": [2, 5]}),
    Case("tile_f16", "Tile", [sample((2, 3), np.float16)], {"repeats": [2, 3]}),
    Case("tile_i8", "Tile", [sample((2, 1, 3), np.int8)], {"repeats": [1, 4, 2]}),
    # Slice (bounds resolved, as the converter leaves them)
    Case(
        "slice_f32_negative_steps",
        "Slice",
        [sample((5, 6, 7), np.float32)],
        {"starts": [4, 1], "ends": [-1, 7], "axes": [0, 2], "steps": [-2, 2]},
    ),
    Case("slice_i4", "Slice", [sample((4, 6), I4)], {"starts": [5], "ends": [0], "axes": [1], "steps": [-1]}),
    Case(
        "slice_u8_rows",
        "Slice",
        [sample((6, 32), np.uint8)],
        {"starts": [1], "ends": [5], "axes": [0], "steps": [1]},
    ),
    # Gather family (negative indices count from the end)
    Case("gather_f32_axis1", "Gather", [sample((3, 5, 4), np.float32), idx([[0, -1], [-5, 2]])], {"axis": 1}),
    Case("gather_i32_scalar_index", "Gather", [sample((4, 3), np.int32), idx(-2, np.int32)], {"axis": 0}),
    Case(
        "gather_bf16_last_i8",
        "Gather",
        [sample((2, 6), BF16), idx([5, -6, 0], np.int8)],
        {"axis": 1},
        constants=(1,),
    ),
    Case(
        "gather_elements_f32",
        "GatherElements",
        [sample((3, 4), np.float32), idx([[0, -1, 2], [3, 1, -4], [1, 1, 0]])],
        {"axis": 1},
    ),
    Case(
        "gather_elements_i64_axis0",
        "GatherElements",
        [sample((3, 2), np.int64), idx([[2, -3], [0, 1]])],
        {"axis": 0},
    ),
    Case("gather_nd_f16", "GatherND", [sample((3, 4, 5), np.float16), idx([[0, -1], [2, 3], [1, 0]])]),
    Case(
        "gather_nd_batch_i32",
        "GatherND",
        [sample((2, 3, 4), np.int32), idx([[[1], [-1]], [[0], [2]]])],
        {"batch_dims": 1},
    ),
    # ScatterND (updates applied in order; duplicates reduce)
    Case(
        "scatter_nd_f32",
        "ScatterND",
        [sample((4, 3), np.float32), idx([[1], [-1]]), sample((2, 3), np.float32, 1)],
    ),
    Case(
        "scatter_nd_add_dup",
        "ScatterND",
        [sample((4, 3), np.float32), idx([[1, 0], [1, 0], [-1, 2]]), sample((3,), np.float32, 1)],
        {"reduction": "add"},
    ),
    Case(
        "scatter_nd_max_i32",
        "ScatterND",
        [sample((2, 3, 2), np.int32), idx([[0], [1]], np.int32), sample((2, 3, 2), np.int32, 1)],
        {"reduction": "max"},
    ),
    Case("scatter_nd_bool", "ScatterND", [sample((5,), bool), idx([[3], [0]]), np.array([True, False])]),
    # ScatterElements (the index replaces position `axis`; in order, duplicates reduce)
    Case(
        "scatter_elements_f32",
        "ScatterElements",
        [sample((3, 4, 5), np.float32), idx([[[4, -1, 0]], [[2, 2, 1]]]), sample((2, 1, 3), np.float32, 1)],
        {"axis": 2},
    ),
    Case(
        "scatter_elements_add_dup",
        "ScatterElements",
        [sample((4, 3), np.float32), idx([[1, 0], [1, 0], [-1, 2]], np.int32), sample((3, 2), np.float32, 1)],
        {"axis": 0, "reduction": "add"},
    ),
    Case(
        "scatter_elements_min_i64",
        "ScatterElements",
        [sample((2, 5), np.int64), idx([[0, 4], [3, 3]]), sample((2, 2), np.int64, 1)],
        {"axis": 1, "reduction": "min"},
    ),
    # Trilu, OneHot
    Case("trilu_upper_f32", "Trilu", [sample((2, 4, 5), np.float32)], {"upper": 1, "k": 1}),
    Case("trilu_lower_i8", "Trilu", [sample((5, 3), np.int8)], {"upper": 0, "k": -1}),
    Case(
        "one_hot_f32",
        "OneHot",
        [idx([[1, -1, 4], [0, 5, -6]]), np.array([0.5, 2.0], np.float32)],
        {"depth": 5, "axis": 1},
    ),
    Case(
        "one_hot_float_indices_i32",
        "OneHot",
        [np.array([1.7, -1.2, 3.0], np.float32), idx([-1, 7], np.int32)],
        {"depth": 4, "axis": 0},
    ),
    # generate: no operands
    Case("constant_of_shape_f32", "ConstantOfShape", [], {"shape": [3, 16], "value": 2.5}),
    Case("constant_of_shape_i8", "ConstantOfShape", [], {"shape": [2, 3], "value": -3.0, "dtype": DType.I8}),
    Case("constant_of_shape_bool", "ConstantOfShape", [], {"shape": [4], "value": 1.0, "dtype": DType.BOOL}),
    Case("constant_of_shape_bf16", "ConstantOfShape", [], {"shape": [5], "value": 0.1, "dtype": DType.BF16}),
    Case("constant_of_shape_i4", "ConstantOfShape", [], {"shape": [2, 2], "value": -2.0, "dtype": DType.I4}),
    Case("range_f32", "Range", [], {"start": 0.5, "limit": 10.0, "delta": 0.7, "dtype": DType.F32}),
    Case("range_f64", "Range", [], {"start": 0.1, "limit": 3.0, "delta": 0.3, "dtype": DType.F64}),
    Case("range_i64_down", "Range", [], {"start": 5.0, "limit": -7.0, "delta": -3.0, "dtype": DType.I64}),
    Case("range_f16", "Range", [], {"start": -1.0, "limit": 2.0, "delta": 0.25, "dtype": DType.F16}),
]
EXCEPTIONS: dict[str, str] = {}  # op -> why it has no lowering (none so far)


@pytest.fixture(scope="module")
def built():
    target = resolve_target("x86")
    return build_cases(CASES, target)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_kernel_matches_reference_exactly(built, case: Case) -> None:
    module, library = built
    assert_exact(run_case(case, module, library), case.reference())


@pytest.mark.parametrize(
    "op", sorted(s.name for s in all_schemas() if s.family in FAMILIES and s.name not in EXCEPTIONS)
)
def test_every_op_of_the_families_has_a_case(op: str) -> None:
    assert op in supported_ops(), f"{op} has no x86 lowering"
    assert any(c.op == op for c in CASES), f"{op} has no test case here"


def test_identical_workloads_share_a_kernel() -> None:
    target = resolve_target("x86")
    a = Case("a", "Transpose", [sample((2, 3, 4), np.float32)], {"perm": [0, 2, 1]}).make_node()
    b = Case("b", "Transpose", [sample((6, 4), np.float32)], {"perm": [0, 1]}).make_node()
    c = Case("c", "Transpose", [sample((1, 2, 3, 4), np.float32)], {"perm": [0, 1, 3, 2]}).make_node()
    assert lower_node(a, target).name == lower_node(c, target).name != lower_node(b, target).name


def test_epilogue_is_refused() -> None:
    target = resolve_target("x86")
    node = CASES[7].make_node()
    with pytest.raises(LoweringError, match="epilogue"):
        lower_node(node, target, [node])


def test_kernels_of_one_name_but_other_functions_are_refused() -> None:
    """A template whose workload misses a parameter would name two functions alike; the build refuses
    that instead of letting one kernel stand in for the other (the NHWC Concat bug)."""
    import dataclasses

    from targets.llvm_build import unique_kernels

    target = resolve_target("x86")
    first, second = (lower_node(case.make_node(), target) for case in CASES[:2])
    assert first.name != second.name
    assert unique_kernels([first, first, second]) == sorted([first, second], key=lambda k: k.name)
    with pytest.raises(LoweringError, match="share the name .* but not their function"):
        unique_kernels([first, dataclasses.replace(second, name=first.name)])


def guarded(array: np.ndarray, guard: int) -> np.ndarray:
    """A copy of `array` (a whole number of pages) between `guard` inaccessible pages on each side:
    a kernel reading outside it faults instead of reading a neighbour's bytes."""
    import ctypes
    import mmap

    page = mmap.PAGESIZE
    assert array.nbytes % page == 0
    memory = mmap.mmap(-1, array.nbytes + 2 * guard * page)
    base = ctypes.addressof(ctypes.c_char.from_buffer(memory))
    libc = ctypes.CDLL(None, use_errno=True)
    for start in (base, base + guard * page + array.nbytes):
        assert libc.mprotect(ctypes.c_void_p(start), guard * page, 0) == 0  # PROT_NONE
    view = np.frombuffer(memory, array.dtype, array.size, guard * page).reshape(array.shape)
    view[...] = array
    return view


def run_guarded(name: str, op: str, parts: list[np.ndarray], attrs: dict) -> np.ndarray:
    """`op`'s x86 kernel run on `parts`, each between inaccessible pages (a read outside faults)."""
    target = resolve_target("x86")
    case = Case(name, op, parts, attrs)
    case.node = case.make_node()
    case.kernel = lower_node(case.node, target)
    library = build_kernels([case.kernel], target)
    module = load_kernel_module(library)
    buffers = [guarded(p.reshape(a.shape), 8) for p, a in zip(parts, case.kernel.args, strict=False)]
    out = aligned_empty(case.kernel.args[-1].shape, "float32")
    fn = kernel_function(module, str(library), case.kernel.name)
    fn(*[kernel_tensor(b, i, case.kernel.name) for i, b in enumerate([*buffers, out])])
    return out


def test_channel_concat_reads_only_its_parts() -> None:
    """PP-OCR det's FPN Concat (four branches along the channels, NCHW): each part is read only
    inside its own bytes. An element-wise select read every part at every channel (its clamps
    simplified away), up to 72 channel planes below the last part: a SIGSEGV at the arena's start."""
    parts = [sample((1, 2, 32, 32), F32, seed) for seed in range(4)]  # 8 KiB each: two pages
    out = run_guarded("concat_guarded", "Concat", parts, {"axis": 1})
    np.testing.assert_array_equal(out.reshape(1, 8, 32, 32), np.concatenate(parts, axis=1))


def test_constant_pad_reads_only_its_input() -> None:
    """A constant Pad on every padded axis, before and after: the fill is chosen without reading
    outside the input (its source indices are clamped; the Select keeps them here)."""
    x = sample((1, 2, 32, 32), F32, 5)
    pads = [0, 1, 1, 1, 0, 1, 1, 1]
    out = run_guarded("pad_guarded", "Pad", [x], {"pads": pads, "value": 0.5})
    want = np.pad(x, [(0, 0), (1, 1), (1, 1), (1, 1)], constant_values=0.5)
    np.testing.assert_array_equal(out.reshape(want.shape), want)
