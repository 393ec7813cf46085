"""`--memory-budget`: what a compiled plan will hold in memory, term by term, against the user's budget.

Rule: the planned peak of a process running an artifact is the sum of five
terms, all known at compile time: the arena, `weights.bin` (mapped and all
touched by one inference), the kernel libraries (their file size: mapped by
the loader, an upper bound on what becomes resident), the graph inputs twice
and the outputs once (the caller's arrays, the aligned copy `run` makes of an
input that is not 64-byte aligned, the copies `run` returns) and the runtime's
own baseline (a constant of the target description, measured by
bench/runtime_baseline.py; never measured while compiling, so artifacts stay
deterministic). It is recorded as the plan's `planned_peak_bytes`. Not yet
counted: the scratch memory kernels allocate while they run (TVM workspaces,
e.g. a convolution's padded input), which bench/memory.py shows as the gap
between planned and measured peak RSS.

With a budget, the plan fits when its planned peak does. Otherwise the weights
would have to be paged: the smallest budget paging can work with replaces the
weights term by the smallest page pool (passes/page_schedule.smallest_pool of
the pages each step reads, weights cut by passes/weight_pages.cut_into_pages
into pages of `DEFAULT_PAGE_SIZE`, larger when one row of a weight needs it).
A budget under the smallest that works (resident or paged) is a
`MemoryBudgetError` naming it; one that only paging could meet is a
`PagingNotImplementedError` naming paging's smallest budget, since paging
execution is not implemented yet.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from pathlib import Path

from ir import HaiError
from ir.units import format_size
from passes.page_schedule import smallest_pool
from passes.weight_pages import DEFAULT_ALIGNMENT, WeightTensor, cut_into_pages, step_pages
from runtime.artifact import ExecutionPlan, Manifest, TensorBinding, WeightEntry, read_manifest

DEFAULT_PAGE_SIZE = 4 * 2**20
"""Bytes of one weight page when the plan pages (4 MiB: one read each, few enough pages to schedule)."""
TERMS = ("arena", "weights", "kernels", "inputs/outputs", "runtime baseline")


class MemoryBudgetError(HaiError):
    """A `--memory-budget` under the smallest budget the model can run with; the message names that one."""


class PagingNotImplementedError(MemoryBudgetError):
    """The budget could be met by paging weights, which the runtime cannot execute yet."""


@dataclasses.dataclass(frozen=True)
class MemoryAccount:
    """The planned peak's terms in bytes (module doc: the rule), and what paging would need instead."""

    arena: int
    weights: int
    kernels: int
    io: int
    baseline: int
    paged_weights: int  # the smallest page pool's bytes: what the weights term becomes when paged
    page_size: int

    @property
    def terms(self) -> dict[str, int]:
        return dict(zip(TERMS, (self.arena, self.weights, self.kernels, self.io, self.baseline), strict=True))

    @property
    def planned_peak(self) -> int:
        return sum(self.terms.values())

    @property
    def paged_peak(self) -> int:
        """The smallest budget paging can work with: the weights term replaced by the page pool."""
        return self.planned_peak - self.weights + self.paged_weights

    @property
    def smallest_budget(self) -> int:
        return min(self.planned_peak, self.paged_peak)

    def breakdown(self, paged: bool = False) -> str:
        """`arena 8 KiB + weights 2 MiB + ...`; `paged`: the page pool in place of the weights."""
        parts = [f"{name} {format_size(nbytes)}" for name, nbytes in self.terms.items()]
        if paged:
            pages = f"{self.paged_weights // self.page_size} pages of {format_size(self.page_size)}"
            parts[1] = f"page pool {format_size(self.paged_weights)} ({pages})"
        return " + ".join(parts)


def account(
    plan: ExecutionPlan,
    weights: Sequence[WeightEntry],
    weights_size: int,
    inputs: Iterable[TensorBinding],
    outputs: Iterable[TensorBinding],
    kernel_bytes: int,
    baseline: int,
    page_size: int = DEFAULT_PAGE_SIZE,
) -> MemoryAccount:
    """The memory account of a plan whose weight slots name `weights` (laid out as in `weights.bin`)."""
    pool, size = paged_weights(plan, weights, page_size)
    return MemoryAccount(
        arena=plan.arena_size,
        weights=weights_size,
        kernels=kernel_bytes,
        io=2 * sum(b.nbytes for b in inputs) + sum(b.nbytes for b in outputs),
        baseline=baseline,
        paged_weights=pool,
        page_size=size,
    )


def artifact_account(directory: str | Path, baseline: int | None = None) -> MemoryAccount:
    """The account of a written artifact (for benches); `baseline` defaults to the target constant."""
    from targets.target import RUNTIME_BASELINE_BYTES

    directory = Path(directory)
    manifest: Manifest = read_manifest(directory, verify=False)
    kernels = sum((directory / name).stat().st_size for name in manifest.kernel_libraries.values())
    return account(
        manifest.plan, manifest.weights, manifest.weights_size, manifest.inputs, manifest.outputs,
        kernels, RUNTIME_BASELINE_BYTES if baseline is None else baseline,
    )  # fmt: skip


def paged_weights(
    plan: ExecutionPlan, weights: Sequence[WeightEntry], page_size: int = DEFAULT_PAGE_SIZE
) -> tuple[int, int]:
    """(bytes of the smallest page pool, page size): weights in order of first use, cut into pages
    (rows along the outermost axis), the largest step's pages. Pages grow to hold the largest row."""
    by_name = {w.name: w for w in weights}
    steps = [[s.name for s in step.args if s.kind == "weight" and s.name in by_name] for step in plan.steps]
    order = list(dict.fromkeys(name for step in steps for name in step))
    tensors = [weight_tensor(by_name[name]) for name in order]
    rows = [t.row_bytes or t.nbytes for t in tensors if t.nbytes > page_size]
    size = max([page_size] + [-(-r // DEFAULT_ALIGNMENT) * DEFAULT_ALIGNMENT for r in rows])
    layout = cut_into_pages(tensors, size)
    return smallest_pool(step_pages(layout, steps)) * size, size


def weight_tensor(entry: WeightEntry) -> WeightTensor:
    """A weight as passes/weight_pages sees it: rows along its outermost axis (none for a scalar)."""
    rows = entry.nbytes // entry.shape[0] if entry.shape and entry.shape[0] else None
    return WeightTensor(entry.name, entry.nbytes, rows)


def check_budget(memory: MemoryAccount, budget: int | None, model: str) -> None:
    """Nothing when the plan fits `budget` (or there is none), else the error of the module doc."""
    if budget is None or memory.planned_peak <= budget:
        return
    resident = f"{exact(memory.planned_peak)} with its weights resident ({memory.breakdown()})"
    paged = f"{exact(memory.paged_peak)} ({memory.breakdown(paged=True)})"
    if budget < memory.smallest_budget:
        way = (
            f"with weights resident ({memory.breakdown()})" if memory.planned_peak <= memory.paged_peak
            else f"with paged weights once paging execution is implemented ({memory.breakdown(paged=True)}); "
            f"today it needs {resident}"
        )  # fmt: skip
        raise MemoryBudgetError(
            f"--memory-budget {exact(budget)} is too small for model {model!r}: the smallest budget "
            f"that can work is {exact(memory.smallest_budget)}, {way}"
        )
    raise PagingNotImplementedError(
        f"model {model!r} needs {resident}, over --memory-budget {exact(budget)}: its weights must be "
        f"paged, and paging execution is not implemented yet; smallest budget that paging needs: {paged}"
    )


def exact(nbytes: int) -> str:
    """A size for an error message: readable and exact (`1.5 MiB (1572864 bytes)`)."""
    return f"{format_size(nbytes)} ({nbytes} bytes)"
