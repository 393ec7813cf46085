"""The arm64 target module without an emulator: features from LLVM's aarch64 cpu tables in HAI's names,
NEON facts (32 x 16 bytes) and precisions, cortex-a72 when cross-compiling without --cpu, a profile and
--cpu-features, the TVM target JSON, the cross linker, and NEON knobs within 32 registers."""

from __future__ import annotations

import platform

import pytest

from ir import HaiError
from targets.arm64 import DEFAULT_CPU, LLVM_FEATURES
from targets.lowering.integer_gemm import LANES
from targets.registry import get_target, resolve_target
from targets.schedules import schedules_of

pytest.importorskip("tvm")

CROSS = platform.machine() != "aarch64"


@pytest.mark.parametrize(
    ("cpu", "features", "supported", "preferred"),
    [
        ("cortex-a53", {"neon"}, ("f32", "i8"), ("f32",)),
        ("cortex-a72", {"neon"}, ("f32", "i8"), ("f32",)),
        ("neoverse-n1", {"neon", "fp16", "dotprod"}, ("f32", "i8", "f16"), ("f32", "i8")),
        ("neoverse-v1", {"neon", "fp16", "dotprod", "i8mm", "bf16", "sve"}, ("f32", "i8", "f16", "bf16"),
         ("f32", "i8")),
    ],
)  # fmt: skip
def test_cpu_models_give_features_and_precisions(
    cpu: str, features: set[str], supported: tuple[str, ...], preferred: tuple[str, ...]
) -> None:
    desc = resolve_target("arm64", cpu=cpu)
    assert desc.features == features
    assert (desc.supported_precisions, desc.preferred_precisions) == (supported, preferred)
    assert (desc.name, desc.arch, desc.vector_bytes, desc.vector_registers) == ("arm64", "aarch64", 16, 32)
    facts = get_target("arm64").facts(desc)
    assert facts.supports("f16") == ("fp16" in features)


def test_an_unknown_cpu_is_a_user_error() -> None:
    with pytest.raises(HaiError, match="LLVM does not know the arm64 cpu 'cortex-z9'"):
        resolve_target("arm64", cpu="cortex-z9")


@pytest.mark.skipif(not CROSS, reason="on an aarch64 host --target arm64 describes the host")
def test_cross_compiling_without_cpu_takes_the_default() -> None:
    desc = resolve_target("arm64")
    assert (desc.cpu, desc.features, desc.triple) == (DEFAULT_CPU, {"neon"}, "aarch64-linux-gnu")
    assert "default" in desc.source


def test_profile_and_feature_edits() -> None:
    recommended = {"target": "arm64", "cpu": "cortex-a72", "features": ["neon", "dotprod"]}
    from_profile = resolve_target("arm64", profile=recommended)
    edited = resolve_target("arm64", cpu="cortex-a72", cpu_features="+dotprod")
    assert from_profile.features == edited.features == {"neon", "dotprod"}
    assert "i8" in edited.preferred_precisions


def test_tvm_target_pins_every_feature_for_the_triple() -> None:
    desc = resolve_target("arm64", cpu="neoverse-n1", cpu_features="-fp16")
    target = get_target("arm64").tvm_target(desc)
    assert target["mcpu"] == "neoverse-n1" and target["kind"] == "llvm"
    assert set(target["mattr"]) == {"+neon", "-fullfp16", "+dotprod", "-i8mm", "-bf16", "-sve", "-sve2"}
    assert len(target["mattr"]) == len(LLVM_FEATURES)
    if CROSS:
        assert target["mtriple"] == "aarch64-linux-gnu"
        assert get_target("arm64").linker(desc) == "aarch64-linux-gnu-gcc"


@pytest.mark.parametrize(("m", "n"), [(4, 64), (6, 256), (49, 512), (3, 10)])
def test_neon_gemm_tiles_fit_32_registers(m: int, n: int) -> None:
    desc = resolve_target("arm64", cpu="cortex-a72")
    knobs = schedules_of(desc).gemm(desc, m, n, None)
    assert knobs.lanes == 4 and knobs.nb % 4 == 0 and m % knobs.mi == 0
    assert knobs.mi * knobs.vectors + knobs.vectors + 1 <= 32


@pytest.mark.parametrize(
    ("cpu", "dot"), [("neoverse-n1", "sdot"), ("neoverse-v1", "usdot"), ("cortex-a72", "")]
)
def test_neon_integer_tiles_fit_the_panels_and_take_the_cpus_dot_step(cpu: str, dot: str) -> None:
    desc = resolve_target("arm64", cpu=cpu)
    table = schedules_of(desc)
    knobs = table.integer_gemm(desc, 64, 256, 1 << 20, False)
    panels = 32 * 16 // (4 * LANES)  # a 16-lane int32 panel is four q registers
    assert knobs.rows * knobs.vectors + knobs.vectors + 1 <= panels
    assert knobs.dot == table.integer_dot(desc) == dot


@pytest.mark.parametrize(
    ("cpu", "positions", "dot"),
    [("neoverse-v1", 64, "usmmla"), ("neoverse-v1", 4, "usmmla"), ("neoverse-v1", 63, "usdot"),
     ("neoverse-n1", 64, "sdot"), ("cortex-a72", 64, "")],
)  # fmt: skip
def test_rows_of_a_matrix_take_i8mms_two_row_step(cpu: str, positions: int, dot: str) -> None:
    """Positions that pair up (paired_rows) take `usmmla`'s 2 x 16 x 8 step where the cpu has i8mm:
    tile rows a multiple of 2 within the registers, weights packed 8 bytes deep."""
    desc = resolve_target("arm64", cpu=cpu)
    table = schedules_of(desc)
    knobs = table.integer_gemm(desc, positions, 256, 1 << 20, True)
    assert knobs.dot == dot
    step = table.dot_intrinsic(dot) if dot else None
    if dot == "usmmla":
        assert step is not None and (step.rows, step.depth, step.shift) == (2, 8, 0)
        assert knobs.rows % 2 == 0 and positions % knobs.rows == 0
        assert knobs.rows >= 4 or positions < 4  # each weight register serves two steps at least
        assert knobs.rows * knobs.vectors + knobs.vectors + 1 <= 32 * 16 // (4 * LANES)


def test_i8mm_added_by_cpu_features_picks_usdot() -> None:
    desc = resolve_target("arm64", cpu="neoverse-n1", cpu_features="+i8mm")
    assert schedules_of(desc).integer_dot(desc) == "usdot"
