"""`hai compile --report`: what each kernel of an artifact does, the arena against the naive sum, and
the planned peak memory term by term against the `--memory-budget`.

Rule: the report is read from a `CompileResult` (kernels as lowered, memory
facts recomputed from the final graph's offsets by passes.memory_check, the
memory account of memory_budget.py), never from timings, so it is the same on
every machine.
"""

from __future__ import annotations

from typing import Any

from hai_compiler.compiler.driver import CompileResult
from hai_compiler.compiler.layer_precision import layer_precisions, summary
from ir.units import format_size


def human_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{n} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"  # pragma: no cover


def percent(part: float, whole: float) -> str:
    """`part` as a percentage of `whole`: one decimal from 1 % (`8.7`), two significant digits below
    (`0.018`), so that small shares do not show as 0.0; `<0.001` below that, `0` for nothing."""
    share = 100 * part / whole
    if share == 0:
        return "0"
    if share >= 1:
        return f"{share:.1f}"
    return f"{share:.2g}" if share >= 0.001 else "<0.001"


def kernel_rows(result: CompileResult) -> list[tuple[str, str, str, int]]:
    """(kernel name, ops, source node names, FLOPs) for every step, in plan order."""
    rows = []
    groups = list(result.groups) + [None] * (len(result.plan.kernels) - len(result.groups))
    for kernel, group in zip(result.plan.kernels, groups, strict=True):
        ops = "+".join(n.op for n in group.nodes) if group is not None else "copy"
        sources = ", ".join(kernel.sources) or "(graph output)"
        rows.append((kernel.name, ops, sources, int(kernel.flops)))
    return rows


def render_report(result: CompileResult, console: Any) -> None:
    """Print the kernel table (with each kernel's device over several), the partition and its
    transfers, and the memory summary."""
    from rich.table import Table

    table = Table(title=f"{result.path.name}: {len(result.plan.kernels)} steps", show_edge=False)
    table.add_column("#", justify="right")
    table.add_column("kernel", no_wrap=True)
    if result.devices is not None:
        table.add_column("device")
    table.add_column("ops", overflow="fold")
    table.add_column("nodes", overflow="fold")
    table.add_column("MFLOP", justify="right")
    named = {result.devices.runtime_device(n): n for n in result.devices.names} if result.devices else {}
    devices = [named.get(s.device, s.device) for s in result.plan.plan.steps if not s.transfer_from]
    for index, (name, ops, sources, flops) in enumerate(kernel_rows(result)):
        placed = [devices[index]] if result.devices is not None else []
        table.add_row(str(index), name, *placed, ops, sources.replace(", ", "\n"), f"{flops / 1e6:.3f}")
    console.print(table)
    render_partition(result, console)
    memory = result.memory
    arena, naive = result.plan.plan.arena_size, memory["naive_bytes"]
    ratio = f" ({arena / naive:.2f}x)" if naive else ""
    total_flops = sum(row[3] for row in kernel_rows(result))
    weights = sum(a.nbytes for a in result.plan.weights.values())
    console.print(
        f"arena {human_bytes(arena)} vs naive {human_bytes(naive)}{ratio}; "
        f"{memory['views']} views and {memory['in_place']} in-place results share bytes; "
        f"weights {human_bytes(weights)}; {total_flops / 1e6:.1f} MFLOP; "
        f"{len({k.name for k in result.plan.kernels})} distinct kernels "
        f"({result.cache_hits} from the cache); {result.seconds:.2f} s"
    )
    render_layers(result, console)
    render_budget(result, console)
    render_device_memory(result, console)


def render_partition(result: CompileResult, console: Any) -> None:
    """Over several devices: the partition's prediction with each device's share of the predicted
    time (passes/partition.py `render_summary`), and every transfer step of the plan; or that the
    partition chose one device, whose compile alone this was."""
    from rich.table import Table

    from passes.partition import render_summary

    if result.partition is None:
        return
    for line in render_summary(result.partition):
        console.print(line, markup=False)
    if result.devices is None:  # hai_compiler/compiler/device_choice.py
        console.print(
            f"the partition chose one device, {result.partition.sole_device}: compiled as --target "
            f"{result.target.name} alone",
            markup=False,
        )
    transfers = [s for s in result.plan.plan.steps if s.transfer_from]
    if not transfers:
        return
    table = Table(title=f"{len(transfers)} transfers per inference", show_edge=False)
    for column in ("step", "value", "from", "to", "bytes"):
        table.add_column(column, justify="right" if column in ("step", "bytes") else "left")
    for index, step in enumerate(result.plan.plan.steps):
        if step.transfer_from:
            value = ", ".join(step.nodes)
            table.add_row(str(index), value, step.transfer_from, step.device, str(step.args[0].nbytes))
    console.print(table)


def render_layers(result: CompileResult, console: Any) -> None:
    """Each layer's precision and where it came from (layer_precision.py), then a one-line summary."""
    from rich.table import Table

    rows = layer_precisions(result.groups, result.plan.kernels)
    if not rows:
        return
    table = Table(title="layers: precision and where it came from", show_edge=False)
    table.add_column("kernel", no_wrap=True)
    table.add_column("nodes", overflow="fold")
    for column in ("op", "precision", "source"):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(row.kernel, row.nodes.replace(", ", "\n"), row.op, row.precision, row.source)
    console.print(table)
    console.print(summary(rows))


def render_budget(result: CompileResult, console: Any) -> None:
    """Each term of the planned peak, its share of the budget, and the total against it."""
    from rich.table import Table

    memory, budget = result.memory_account, result.memory_budget
    if memory is None:
        return
    against = f"budget {format_size(budget)}" if budget is not None else "no --memory-budget"
    table = Table(title=f"planned peak memory vs {against}", show_edge=False)
    for column in ("term", "bytes", "size", "% of budget"):
        table.add_column(column, justify="left" if column == "term" else "right")
    rows = [*memory.terms.items(), ("planned peak", memory.planned_peak)]
    for term, nbytes in rows:
        share = percent(nbytes, budget) if budget else "-"
        table.add_row(term, str(nbytes), format_size(nbytes), share)
    console.print(table)
    if budget is not None:
        console.print(
            f"fits: planned peak {format_size(memory.planned_peak)} <= budget {format_size(budget)} "
            f"({format_size(budget - memory.planned_peak)} to spare); {weights_residency(result)}"
        )


def render_device_memory(result: CompileResult, console: Any) -> None:
    """What the plan holds in a device's own memory (targets/plan/device_memory.py), term by term."""
    from rich.table import Table

    device = result.device_plan
    if device is None:
        return
    budget = device.record.budget_bytes
    against = f"budget {format_size(budget)}" if budget is not None else "no --device-memory-budget"
    table = Table(title=f"{device.record.device} device memory vs {against}", show_edge=False)
    for column in ("term", "bytes", "size", "% of budget"):
        table.add_column(column, justify="left" if column == "term" else "right")
    for term, nbytes in [*device.terms.items(), ("device memory", device.record.total_bytes)]:
        table.add_row(term, str(nbytes), format_size(nbytes), percent(nbytes, budget) if budget else "-")
    console.print(table)
    console.print(f"largest device buffer: {format_size(device.record.largest_buffer_bytes)}")


def weights_residency(result: CompileResult) -> str:
    """`weights stay resident`, or how a paged plan pages them."""
    paging = result.plan.plan.paging
    if paging is None:
        return "weights stay resident"
    loads = sum(len(step.loads) for step in paging.schedule)
    return (
        f"weights paged: {len(paging.page_bytes)} pages of {format_size(paging.page_size)} through "
        f"{paging.frames} frames, {loads} page loads per inference, {len(result.plan.plan.segments)} segments"
    )
