"""`--memory-budget`: what a compiled plan will hold in memory, term by term, against the user's budget.

Rule: the planned peak of a process running an artifact is the sum of seven
terms, all known at compile time: the arena; the weights (`weights.bin`,
mapped and all touched by one inference, or, for a paged plan, its page pool
of `frames x page size`, allocated once and filled from the file); the kernel
libraries (their file size: mapped by the loader, an upper bound on what
becomes resident); the kernel scratch (the most one kernel allocates while it
runs, e.g. a padded input: an upper bound from its schedule, targets/scratch.py);
the graph inputs twice and the outputs once (the caller's
arrays, the aligned copy `run` makes of an input that is not 64-byte aligned,
the copies `run` returns); the runtime's state for the plan (its parsed
steps, argument headers and page bookkeeping: a constant per step and per
page); and the runtime's own baseline. Both constants belong to the target
description, measured by bench/runtime_baseline.py (never while compiling,
so artifacts stay deterministic). A device with memory of its own (OpenCL)
adds an eighth, its driver's buffers in host memory (`device buffers`:
targets/plan/device_memory.py). It is recorded as the
plan's `planned_peak_bytes`.

A plan fits a budget when its planned peak does. The smallest budget a model
can work with is the smaller of its resident peak and its peak paged with
the smallest page pool (the largest step's pages); a budget under it is a
`MemoryBudgetError` naming it, with its terms.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from pathlib import Path

from ir import HaiError
from ir.units import format_size
from runtime.artifact import ExecutionPlan, Manifest, TensorBinding
from runtime.artifact_files import read_manifest

DEFAULT_BUDGET = "512MB"
"""The budget `hai compile` plans for unless told otherwise (`--memory-budget none`: no budget)."""
DEFAULT_PAGE_SIZE = 4 * 2**20
"""Bytes of one weight page when the plan pages (4 MiB: one read each, few enough pages to schedule)."""
TERMS = (
    "arena",
    "weights",
    "kernels",
    "kernel scratch",
    "inputs/outputs",
    "runtime state",
    "runtime baseline",
)


DEVICE_TERM = "device buffers"
"""The term of an OpenCL plan's driver buffers in host memory (staging, or a host-unified device's)."""


class MemoryBudgetError(HaiError):
    """A `--memory-budget` under the smallest budget the model can run with; the message names that one."""


@dataclasses.dataclass(frozen=True)
class MemoryAccount:
    """The planned peak's terms in bytes (module doc: the rule). With `page_size`, the weights term is
    a page pool of `weights // page_size` frames."""

    arena: int
    weights: int
    kernels: int
    io: int
    state: int
    baseline: int
    scratch: int = 0
    page_size: int = 0
    device: int = 0  # a device driver's buffers in host memory (targets/plan/device_memory.py)

    @property
    def paged(self) -> bool:
        return self.page_size > 0

    @property
    def terms(self) -> dict[str, int]:
        values = (self.arena, self.weights, self.kernels, self.scratch, self.io, self.state, self.baseline)
        names = ("arena", "page pool", *TERMS[2:]) if self.paged else TERMS
        terms = dict(zip(names, values, strict=True))
        return terms | {DEVICE_TERM: self.device} if self.device else terms

    @property
    def planned_peak(self) -> int:
        return sum(self.terms.values())

    def with_pool(self, frames: int, page_size: int) -> MemoryAccount:
        """This account with its weights paged through `frames` frames of `page_size` bytes."""
        return dataclasses.replace(self, weights=frames * page_size, page_size=page_size)

    def breakdown(self) -> str:
        """`arena 8 KiB + weights 2 MiB + ...` (the page pool with its frames when paged)."""
        parts = [f"{name} {format_size(nbytes)}" for name, nbytes in self.terms.items()]
        if self.paged:
            parts[1] += f" ({self.weights // self.page_size} pages of {format_size(self.page_size)})"
        return " + ".join(parts)


def account(
    plan: ExecutionPlan,
    weights_size: int,
    inputs: Iterable[TensorBinding],
    outputs: Iterable[TensorBinding],
    kernel_bytes: int,
    baseline: int,
    per_call: int,
) -> MemoryAccount:
    """The memory account of `plan` with a `weights.bin` of `weights_size` bytes (or its page pool);
    `baseline` and `per_call` are the target's runtime constants."""
    pages = len(plan.paging.page_bytes) if plan.paging is not None else 0
    memory = MemoryAccount(
        arena=plan.arena_size,
        weights=weights_size,
        kernels=kernel_bytes,
        io=2 * sum(b.nbytes for b in inputs) + sum(b.nbytes for b in outputs),
        state=per_call * (len(plan.steps) + pages),
        baseline=baseline,
        scratch=plan.scratch_bytes,
    )
    paging = plan.paging
    return memory if paging is None else memory.with_pool(paging.frames, paging.page_size)


def artifact_account(
    directory: str | Path, baseline: int | None = None, per_call: int | None = None
) -> MemoryAccount:
    """The account of a written artifact (for benches); `baseline` and `per_call` default to the
    target's constants."""
    from targets.target import RUNTIME_BASELINE_BYTES, RUNTIME_BYTES_PER_CALL

    directory = Path(directory)
    manifest: Manifest = read_manifest(directory, verify=False)
    kernels = sum((directory / name).stat().st_size for name in manifest.kernel_libraries.values())
    return account(
        manifest.plan, manifest.weights_size, manifest.inputs, manifest.outputs,
        kernels, RUNTIME_BASELINE_BYTES if baseline is None else baseline,
        RUNTIME_BYTES_PER_CALL if per_call is None else per_call,
    )  # fmt: skip


def frames_within(budget: int, memory: MemoryAccount, page_size: int) -> int:
    """How many frames of `page_size` fit `budget` beside the account's other terms (may be < 1)."""
    return (budget - (memory.planned_peak - memory.weights)) // page_size


def too_small(budget: int, smallest: MemoryAccount, model: str, resident: MemoryAccount | None) -> HaiError:
    """The error for a budget under `smallest`, the least any plan needs (module doc)."""
    how = "with paged weights" if smallest.paged else "with weights resident"
    also = (
        f"; with its weights resident it needs {exact(resident.planned_peak)} ({resident.breakdown()})"
        if resident is not None and resident is not smallest
        else ""
    )
    return MemoryBudgetError(
        f"--memory-budget {exact(budget)} is too small for model {model!r}: the smallest budget that can "
        f"work is {exact(smallest.planned_peak)}, {how} ({smallest.breakdown()}){also}"
    )


def exact(nbytes: int) -> str:
    """A size for an error message: readable and exact (`1.5 MiB (1572864 bytes)`)."""
    return f"{format_size(nbytes)} ({nbytes} bytes)"
