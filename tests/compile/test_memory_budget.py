"""`hai compile --memory-budget`: the planned peak recorded and checked, as a user runs it.

Expected sizes are summed here from the written artifact's files and manifest (arena, weights.bin,
kernels.cpu.so, the bindings) and the target's baseline constant, not from the compiler's account."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hai_compiler.cli import app
from ir.units import format_size
from runtime.artifact import MANIFEST_FILE, nbytes_of
from targets.plan.memory_budget import MemoryAccount, too_small
from targets.target import RUNTIME_BASELINE_BYTES, RUNTIME_BYTES_PER_CALL

MIB = 2**20
DIGITS = Path(__file__).resolve().parents[2] / "hai_compiler/models/digits_cnn.onnx"


def hai(*args: object):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)


def compile_digits(output: Path, budget: str) -> object:
    return hai("compile", DIGITS, "--input-shape", "image=1,1,8,8", "-o", output, "--memory-budget", budget)


def peak_of_files(artifact: Path) -> int:
    """arena + weights.bin + kernel library + inputs (twice) and outputs + the runtime's state per step
    + the runtime baseline."""
    manifest = json.loads((artifact / MANIFEST_FILE).read_text())
    inputs, outputs = (
        [nbytes_of(tuple(b["shape"]), b["dtype"]) for b in manifest[k]] for k in ("inputs", "outputs")
    )
    io = 2 * sum(inputs) + sum(outputs)  # an input may be copied once to align it
    files = (artifact / "weights.bin").stat().st_size + (artifact / "kernels.cpu.so").stat().st_size
    state = len(manifest["plan"]["steps"]) * RUNTIME_BYTES_PER_CALL
    scratch = manifest["plan"]["scratch_bytes"]  # the largest kernel's (tests/targets/test_scratch.py)
    return manifest["plan"]["arena_size"] + files + scratch + io + state + RUNTIME_BASELINE_BYTES


def test_digits_fits_512mb_and_records_budget_and_peak(tmp_path: Path) -> None:
    artifact = tmp_path / "digits.hai"
    done = hai("compile", DIGITS, "--input-shape", "image=1,1,8,8", "-o", artifact,
               "--memory-budget", "512MB", "--report")  # fmt: skip
    assert done.exit_code == 0, done.output
    manifest = json.loads((artifact / MANIFEST_FILE).read_text())
    assert manifest["compiler"]["options"]["memory_budget"] == 512 * MIB
    peak = peak_of_files(artifact)
    assert manifest["plan"]["planned_peak_bytes"] == peak
    assert "planned peak memory vs budget 512 MiB" in done.output
    assert re.search(rf"runtime baseline\s*│\s*{RUNTIME_BASELINE_BYTES}\s*│", done.output)
    assert f"planned peak {format_size(peak)} of budget 512 MiB" in done.output

    too_small = compile_digits(tmp_path / "small.hai", "30MB")
    assert too_small.exit_code == 1 and not (tmp_path / "small.hai").exists()
    first_line = too_small.output.strip().splitlines()[0]
    assert first_line.startswith(
        f"error: --memory-budget 30 MiB (31457280 bytes) is too small for model 'digits_cnn': the smallest "
        f"budget that can work is {format_size(peak)} ({peak} bytes), with weights resident (arena "
    ), first_line
    assert first_line.endswith(f"+ runtime baseline {format_size(RUNTIME_BASELINE_BYTES)})")
    assert compile_digits(tmp_path / "exact.hai", str(peak)).exit_code == 0  # the named minimum works


@pytest.mark.parametrize(
    ("budget", "message"),
    [
        ("512XB", "unknown unit 'XB' in '512XB'"),
        ("lots", "malformed size 'lots'"),
        ("1.5", "'1.5' is a fraction of a byte"),
    ],
)
def test_malformed_budget_is_one_line_error(tmp_path: Path, budget: str, message: str) -> None:
    done = compile_digits(tmp_path / "bad.hai", budget)
    assert done.exit_code == 2  # a malformed option is a usage error
    assert f"Invalid value for '--memory-budget': {message}" in done.output, done.output
    assert not (tmp_path / "bad.hai").exists()


def test_budget_below_paging_minimum_names_paged_and_resident_sizes() -> None:
    resident = MemoryAccount(arena=MIB, weights=300 * MIB, kernels=MIB, io=0, state=MIB, baseline=37 * MIB)
    paged = resident.with_pool(frames=5, page_size=4 * MIB)
    assert (resident.planned_peak, paged.planned_peak) == (340 * MIB, 60 * MIB)
    assert str(too_small(50 * MIB, paged, "m", resident)) == (
        "--memory-budget 50 MiB (52428800 bytes) is too small for model 'm': the smallest budget that can "
        "work is 60 MiB (62914560 bytes), with paged weights (arena 1 MiB + page pool 20 MiB (5 pages of "
        "4 MiB) + kernels 1 MiB + kernel scratch 0 B + inputs/outputs 0 B + runtime state 1 MiB + runtime "
        "baseline 37 MiB); with its weights resident it needs 340 MiB (356515840 bytes) (arena 1 MiB + "
        "weights 300 MiB + kernels 1 MiB + kernel scratch 0 B + inputs/outputs 0 B + runtime state 1 MiB + "
        "runtime baseline 37 MiB)"
    )


def test_page_size_must_be_aligned(tmp_path: Path) -> None:
    done = hai(
        "compile", DIGITS, "--input-shape", "image=1,1,8,8", "-o", tmp_path / "d.hai", "--page-size", "100"
    )
    assert done.exit_code == 1
    assert done.output.startswith("error: --page-size 100: must be a positive multiple of 64 bytes"), (
        done.output
    )


def test_budget_and_page_size_reach_plan_memory_as_numbers() -> None:
    """--memory-budget and --page-size reach the pipeline's plan-memory as byte counts (no pipeline text
    in between), after the user's passes, an added predicate-control-flow and fuse; a plan-memory the
    user names decides."""
    from hai_compiler.compiler import CompileOptions
    from passes.plan_memory import PlanMemory

    options = CompileOptions(passes="fold-constants", memory_budget="100MB", page_size="8MiB")
    passes = options.pipeline(True)
    assert [p.name for p in passes] == ["fold-constants", "predicate-control-flow", "fuse", "plan-memory"]
    planner = passes[-1]
    assert isinstance(planner, PlanMemory) and not planner.arena_inputs
    assert (planner.budget, planner.page_size) == (100 * 2**20, 8 * 2**20)
    assert options.memory_plan() == (100 * 2**20, 8 * 2**20)
    assert CompileOptions(memory_budget="none").memory_plan() == (None, 4 * MIB)
    named = CompileOptions(passes="plan-memory{budget=1GB page-size=1MiB}", memory_budget="100MB")
    assert named.memory_plan() == (2**30, 2**20)
    assert [p.name for p in named.pipeline(True, split_bytes=2**20)] == [
        "predicate-control-flow",
        "split-weights",
        "fuse",
        "plan-memory",
    ]
