"""`hai ir`, `hai passes`, `hai targets`, `hai interp`, `hai demo`, `hai samples`, `hai doctor`: the
commands on a model or this machine (compile_commands.py compiles and runs artifacts,
bench_commands.py measures them, pack_commands.py ships them, quantize_commands.py quantizes).

Rule: commands parse options and print; the work is done by `driver.py`. A
`HaiError` becomes one `error: ...` line (cli_app.py); malformed options are
usage errors (cli_options.py). A traceback means a bug in HAI, never bad input.
"""

from __future__ import annotations

import dataclasses
import enum
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from hai_compiler import driver
from hai_compiler.cli_app import app, example, print_outputs, reported_errors
from hai_compiler.cli_options import (
    DEFAULT_RUNS,
    DEFAULT_THREADS,
    DumpIrOpt,
    InputOpt,
    InputShapeOpt,
    InputValueOpt,
    ModelArg,
    OutputDirOpt,
    PassesOpt,
    RunsOpt,
    SeedOpt,
    ThreadsOpt,
    input_files,
    input_shapes,
    input_values,
)
from hai_compiler.input_spec import load_input_arrays
from hai_compiler.summary import render_summary
from ir import HaiError


def _load(model: Path, input_shape: list[str] | None, input_value: list[str] | None) -> Any:
    return driver.load_model_any(model, input_shapes(input_shape), input_values(input_value) or None)


@app.command("ir", epilog=example("hai ir model.onnx --passes default -o model.hir"))
def ir_command(
    model: ModelArg,
    input_shape: InputShapeOpt = None,
    input_value: InputValueOpt = None,
    passes: PassesOpt = None,
    print_ir_before: Annotated[
        list[str] | None,
        typer.Option(metavar="PASS|all", help="Print the IR (to stderr) before this pass; repeatable."),
    ] = None,
    print_ir_after: Annotated[
        list[str] | None,
        typer.Option(metavar="PASS|all", help="Print the IR (to stderr) after this pass; repeatable."),
    ] = None,
    dump_ir: DumpIrOpt = None,
    verify_each: Annotated[
        bool, typer.Option("--verify-each", help="Verify the IR after every pass.", show_default=False)
    ] = False,
    timing: Annotated[
        bool, typer.Option("--timing", help="Print a per-pass timing table (stderr).", show_default=False)
    ] = False,
    save_weights: Annotated[
        bool | None,
        typer.Option(
            "--save-weights/--no-save-weights",
            help="Write the weights file (OUT.weights.npz) next to each .hir; the default with -o, "
            "not with --dump-ir alone.",
            show_default=False,
        ),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option("-o", "--output", metavar="OUT.hir", help="Write the IR here, not to stdout."),
    ] = None,
    summary: Annotated[
        bool,
        typer.Option(
            "--summary",
            help="Print a short table (ops, constants, inputs, outputs) instead of the IR.",
            show_default=False,
        ),
    ] = False,
) -> None:
    """Import a model, run a pass pipeline over it and print its .hir text (or write it with -o)."""
    if save_weights and output is None and dump_ir is None:
        raise typer.BadParameter(
            "needs -o OUT.hir or --dump-ir DIR (weights go next to the .hir)", param_hint="--save-weights"
        )
    with reported_errors():
        graph = _load(model, input_shape, input_value)
        options = driver.InstrumentOptions(
            print_ir_before or (), print_ir_after or (), dump_ir, bool(save_weights), timing
        )
        instruments = driver.make_instruments(options)
        ctx = driver.new_context()
        pipeline = driver.build_pipeline(passes)
        graph = driver.run_pipeline(graph, pipeline, instruments, verify_each=verify_each, ctx=ctx)
        if instruments and not pipeline:
            sys.stderr.write(
                "note: no pass ran, so there is nothing to print, dump or time: "
                "give --passes default or a pipeline (see `hai passes`)\n"
            )
        ran = [p.name for p in pipeline]
        for option, names in (("--print-ir-before", print_ir_before), ("--print-ir-after", print_ir_after)):
            for name in names or ():
                if pipeline and name != "all" and name not in ran:
                    sys.stderr.write(
                        f"note: {option} {name}: no such pass in the pipeline ({', '.join(ran)})\n"
                    )
        for line in driver.pipeline_report(instruments if pipeline else (), ctx):
            sys.stderr.write(line + "\n")
        if output is not None:
            driver.write_ir(graph, output, save_weights=save_weights is not False)
        if summary:
            render_summary(graph, Console(highlight=False))
        elif output is None:
            text = driver.graph_text(graph)
            sys.stdout.write(text if text.endswith("\n") else text + "\n")


@app.command("passes", epilog=example("hai passes"))
def passes_command() -> None:
    """List every registered pass with its rule and options."""
    from rich.table import Table
    from rich.text import Text

    with reported_errors():
        from passes.registry import available_passes

        console = Console(highlight=False)
        for name, pass_class in sorted(available_passes().items()):
            console.print(Text(name, style="bold"))
            doc = _dedent_doc(pass_class.__doc__)
            if doc:
                console.print(Text(doc))
            options = pass_options(pass_class)
            if options:
                table = Table(show_edge=False, pad_edge=False, box=None, padding=(0, 2, 0, 2))
                for column in ("option", "type", "default", "help"):
                    table.add_column(column, style="bold" if column == "option" else None)
                for row in options:
                    table.add_row(*(Text(cell) for cell in row))
                console.print(table)
            console.print()


@app.command("targets", epilog=example("hai targets"))
def targets_command() -> None:
    """List every registered target: the machine arch it compiles for, its CPUs and features."""
    from rich.table import Table
    from rich.text import Text

    with reported_errors():
        from targets.registry import arch_of_target, available_targets, get_target

        console = Console(highlight=False)
        for name in available_targets():
            try:
                backend = get_target(name)
            except HaiError as exc:  # a broken plugin is reported, the others still listed
                console.print(Text(f"{name}: {exc}", style="bold"))
                continue
            console.print(Text(name, style="bold"), Text(f"({arch_of_target(name)}, {backend.triple})"))
            console.print(Text(_dedent_doc(type(backend).__doc__)))
            table = Table(show_edge=False, pad_edge=False, box=None, padding=(0, 2, 0, 2))
            for column in ("--cpu", "", "features"):
                table.add_column(column, style="bold" if column == "--cpu" else None)
            for cpu, note in backend.cpus().items():
                table.add_row(Text(cpu), Text(note), Text(" ".join(sorted(backend.cpu_features(cpu))) or "-"))
            console.print(table)
            features = " ".join(backend.known_features())
            others = backend.other_cpus.format(name=name)
            console.print(Text(f"  or {others}; --cpu-features edits any of: {features}"))
            console.print()


def _dedent_doc(doc: str | None) -> str:
    """A docstring as paragraphs of one line each, for the terminal to wrap."""
    import inspect

    paragraphs = inspect.cleandoc(doc or "").split("\n\n")
    return "\n\n".join(" ".join(p.split()) for p in paragraphs if p.strip())


def pass_options(pass_class: type) -> list[tuple[str, str, str, str]]:
    """(option, type, default, help) for each dataclass field of a pass class."""
    if not dataclasses.is_dataclass(pass_class):
        return []
    rows = []
    for field in dataclasses.fields(pass_class):
        if not field.init or field.name.startswith("_"):
            continue
        if field.default is not dataclasses.MISSING:
            default = repr(field.default)
        elif field.default_factory is not dataclasses.MISSING:
            default = repr(field.default_factory())
        else:
            default = "(required)"
        type_name = (
            field.type if isinstance(field.type, str) else getattr(field.type, "__name__", str(field.type))
        )
        help_text = str(field.metadata.get("help", "")) if field.metadata else ""
        rows.append((field.name.replace("_", "-"), str(type_name), default, help_text))
    return rows


@app.command("interp", epilog=example("hai interp model.onnx --input image=image.npy --output-dir out/"))
def interp_command(
    model: ModelArg,
    input_shape: InputShapeOpt = None,
    input_value: InputValueOpt = None,
    input: InputOpt = None,
    passes: PassesOpt = None,
    output_dir: OutputDirOpt = None,
    seed: SeedOpt = 0,
) -> None:
    """Run a model with the reference interpreter and print each output's shape and statistics.

    Inputs not given with --input get seeded random data (normal floats,
    integers in [0, 10), booleans), and the command says which ones did.
    """
    files = input_files(input)
    with reported_errors():
        given = load_input_arrays(files)
        graph = _load(model, input_shape, input_value)
        ctx = driver.new_context() if passes else None
        graph = driver.run_pipeline(graph, passes, ctx=ctx)
        for line in driver.pipeline_report((), ctx):
            sys.stderr.write(line + "\n")
        inputs, randomized = driver.make_inputs(graph, given, seed)
        for name in randomized:
            value_type = next(v.type for v in graph.inputs if v.name == name)
            sys.stderr.write(
                f"note: input '{name}' is random {value_type} (seed {seed}); give --input {name}=FILE.npy\n"
            )
        outputs = driver.interpret(graph, inputs)
        print_outputs(outputs, {v.name: str(v.type.dtype) for v in graph.outputs}, output_dir)


@app.command("demo", epilog=example("hai demo --threads 2"))
def demo_command(
    threads: ThreadsOpt = DEFAULT_THREADS,
    runs: RunsOpt = DEFAULT_RUNS,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Keep the artifact here.")] = None,
) -> None:
    """The main job on the embedded digits CNN: compile for this host, run, and measure against
    onnxruntime (held-out accuracy, p50 latency, peak RSS)."""
    from hai_compiler.demo import run_demo
    from hai_compiler.progress import reporting

    with reported_errors(), reporting():
        run_demo(Console(highlight=False), threads=threads, runs=runs, output=output)


@app.command("samples", epilog=example("hai samples ."))
def samples_command(
    directory: Annotated[
        Path, typer.Argument(metavar="DIR", help="Where to write the files (created if needed).")
    ] = Path("."),
) -> None:
    """Write the embedded digits CNN and sample data into DIR: digits.onnx, an input image.npy,
    calibration.npz, eval.npz and labels.npy, the files README's "Using it" runs on."""
    from hai_compiler.samples import write_samples

    with reported_errors():
        written = write_samples(directory)
    for path, what in written.items():
        typer.echo(f"{path}: {what}")


class ProfileFormat(enum.StrEnum):
    json = "json"
    table = "table"


@app.command("doctor", epilog=example("hai doctor > hardware_profile.json"))
def doctor_command(
    scan: Annotated[
        bool, typer.Option("--scan", help="Probe this machine's hardware (what bare `hai doctor` does).")
    ] = True,
    output_format: Annotated[
        ProfileFormat, typer.Option("--format", help="json (`> hardware_profile.json`) or table.")
    ] = ProfileFormat.json,
    measure: Annotated[
        bool,
        typer.Option(
            "--measure",
            help="Also run microbenchmarks (HAI kernels) on every device: FLOP/s per precision, memory "
            "bandwidth, launch overhead, host<->device transfers (the profile's `measured` section).",
        ),
    ] = False,
    quick: Annotated[bool, typer.Option("--quick", help="With --measure: tiny sizes, a fast look.")] = False,
    measure_runs: Annotated[
        int, typer.Option("--measure-runs", min=1, help="With --measure: timed runs per case.")
    ] = 20,
) -> None:
    """Probe this machine's hardware: CPU, ISA features, caches, memory, OpenCL devices, target.

    The JSON profile is what `--hardware-profile FILE` of `hai compile` and `hai quantize` reads.
    """
    from hai_compiler import doctor

    with reported_errors():
        profile = doctor.scan()
        if measure:
            from hai_compiler.microbench import measure_profile

            profile = measure_profile(profile, quick=quick, runs=measure_runs)
        if output_format is ProfileFormat.json:
            doctor.write_json(profile, sys.stdout)
        else:
            doctor.render_table(profile, Console(highlight=False))
