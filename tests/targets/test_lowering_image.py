"""x86 image templates (Resize, DepthToSpace, SpaceToDepth) through tvm_ffi, against the IR references.

Resize covers every mode, coordinate transformation and nearest rounding, the
integer fast path of nearest (PP-OCR's ×2 asymmetric/floor), antialiasing,
exclude_outside and tf_crop_and_resize extrapolation, on several dtypes. All
kernels are built with one `build_kernels` call.
"""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
from movement_helpers import Case, assert_exact, build_cases, run_case, sample

from ir.ops.registry import all_schemas
from targets.lowering.dispatch import supported_ops
from targets.registry import resolve_target

BF16, I4 = ml_dtypes.bfloat16, ml_dtypes.int4


def resize(
    case_id: str, x: np.ndarray, sizes, mode: str = "nearest", coord: str = "half_pixel", scales=None, **attrs
) -> Case:
    scales = scales or [o / i for o, i in zip(sizes, x.shape, strict=True)]
    attrs = {
        "sizes": list(sizes),
        "scales": list(scales),
        "mode": mode,
        "coordinate_transformation_mode": coord,
        **attrs,
    }
    return Case(case_id, "Resize", [x], attrs)


X = sample((1, 2, 5, 6), np.float32)
CASES = [
    resize(
        "nearest_x2_asymmetric_floor",
        sample((1, 3, 4, 16), np.float32),
        (1, 3, 8, 32),
        coord="asymmetric",
        nearest_mode="floor",
    ),
    resize(
        "nearest_x2_tail_i8",
        sample((2, 3, 70), np.int8),
        (2, 6, 140),
        coord="asymmetric",
        nearest_mode="floor",
    ),
    resize(
        "nearest_x3_rows_f16",
        sample((1, 2, 3, 5), np.float16),
        (1, 2, 9, 15),
        nearest_mode="floor",
        coord="asymmetric",
    ),
    resize(
        "nearest_rows_only_i64",
        sample((3, 4, 8), np.int64),
        (3, 8, 8),
        coord="asymmetric",
        nearest_mode="floor",
    ),
    resize(
        "nearest_down_u8", sample((1, 2, 7, 9), np.uint8), (1, 2, 3, 4), nearest_mode="round_prefer_floor"
    ),
    resize(
        "nearest_align_ceil_i64",
        sample((2, 5, 4), np.int64),
        (2, 7, 9),
        coord="align_corners",
        nearest_mode="round_prefer_ceil",
    ),
    resize(
        "nearest_pytorch_ceil_bf16",
        sample((1, 1, 3, 5), BF16),
        (1, 1, 1, 8),
        coord="pytorch_half_pixel",
        nearest_mode="ceil",
    ),
    resize(
        "nearest_symmetric_i4",
        sample((1, 4, 5), I4),
        (1, 7, 3),
        coord="half_pixel_symmetric",
        scales=[1.0, 1.5, 0.7],
    ),
    resize(
        "nearest_crop_i8",
        sample((1, 1, 6, 6), np.int8),
        (1, 1, 4, 5),
        coord="tf_crop_and_resize",
        roi=[0, 0, 0.2, -0.1, 1, 1, 0.9, 1.2],
        extrapolation_value=-300.0,
    ),
    resize("nearest_bool", sample((2, 3), bool), (5, 2), nearest_mode="floor"),
    resize("linear_half_pixel_f32", X, (1, 2, 7, 9), mode="linear"),
    resize(
        "linear_align_u8", sample((1, 2, 4, 5), np.uint8), (1, 2, 7, 3), mode="linear", coord="align_corners"
    ),
    resize(
        "linear_asymmetric_f16",
        sample((1, 2, 4, 5), np.float16),
        (1, 2, 6, 10),
        mode="linear",
        coord="asymmetric",
    ),
    resize(
        "linear_antialias_down_f32",
        sample((1, 1, 9, 12), np.float32),
        (1, 1, 4, 5),
        mode="linear",
        antialias=1,
    ),
    resize(
        "linear_crop_f32",
        X,
        (1, 2, 4, 4),
        mode="linear",
        coord="tf_crop_and_resize",
        roi=[0, 0, -0.2, 0.1, 1, 1, 0.8, 1.3],
        extrapolation_value=7.5,
    ),
    resize(
        "linear_symmetric_f64",
        sample((1, 2, 5, 4), np.float64),
        (1, 2, 3, 7),
        mode="linear",
        coord="half_pixel_symmetric",
        scales=[1.0, 1.0, 0.7, 1.9],
    ),
    resize("linear_bf16", sample((1, 1, 4, 4), BF16), (1, 1, 6, 3), mode="linear"),
    resize("cubic_half_pixel_f32", X, (1, 2, 8, 4), mode="cubic"),
    resize(
        "cubic_exclude_outside_f32", X, (1, 2, 9, 11), mode="cubic", exclude_outside=1, cubic_coeff_a=-0.5
    ),
    resize(
        "cubic_antialias_down_f32",
        sample((1, 1, 17, 16), np.float32),
        (1, 1, 4, 7),
        mode="cubic",
        antialias=1,
    ),
    resize(
        "cubic_pytorch_i16",
        sample((1, 1, 3, 4), np.int16),
        (1, 1, 5, 1),
        mode="cubic",
        coord="pytorch_half_pixel",
    ),
    Case("depth_to_space_dcr_f32", "DepthToSpace", [sample((1, 8, 2, 3), np.float32)], {"blocksize": 2}),
    Case(
        "depth_to_space_crd_i8",
        "DepthToSpace",
        [sample((2, 9, 2, 2), np.int8)],
        {"blocksize": 3, "mode": "CRD"},
    ),
    Case("space_to_depth_dcr_bf16", "SpaceToDepth", [sample((1, 2, 4, 6), BF16)], {"blocksize": 2}),
    Case(
        "space_to_depth_crd_bool",
        "SpaceToDepth",
        [sample((1, 3, 6, 3), bool)],
        {"blocksize": 3, "mode": "CRD"},
    ),
]


@pytest.fixture(scope="module")
def built():
    return build_cases(CASES, resolve_target("x86"))


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_kernel_matches_reference_exactly(built, case: Case) -> None:
    module, library = built
    assert_exact(run_case(case, module, library), case.reference())


@pytest.mark.parametrize("op", sorted(s.name for s in all_schemas() if s.family == "image"))
def test_every_image_op_has_a_lowering_and_a_case(op: str) -> None:
    assert op in supported_ops()
    assert any(c.op == op for c in CASES)


def test_ppocr_upsample_uses_integer_indices() -> None:
    from targets.lowering.dispatch import lower_node

    case = CASES[0]
    kernel = lower_node(case.make_node(), resolve_target("x86"))
    assert "float64" not in str(kernel.func)
