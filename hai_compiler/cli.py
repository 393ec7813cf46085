"""The `hai` command line: `hai ir`, `hai passes`, `hai targets`, `hai interp`, `hai demo`, `hai samples`,
`hai doctor`, and `hai compile`, `hai run`, `hai bench`, `hai pack` (compile_commands.py), `hai quantize`
(quantize_commands.py).

Rule: commands parse options and print; the work is done by `driver.py`. A
`HaiError` (bad model, bad option value, bad input file) becomes one
`error: ...` message on stderr and exit code 1; malformed options are usage
errors (exit 2). A traceback means a bug in HAI, never bad input. A `HaiWarning`
raised while any command runs is one `warning: ...` line on stderr
(warning_lines.py).
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from hai_compiler import driver
from hai_compiler.input_spec import InputSpecError, load_input_arrays, parse_input_files, parse_input_shapes
from hai_compiler.summary import render_summary
from hai_compiler.warning_lines import printed_warnings
from ir import HaiError
from ir.units import EXAMPLES, parse_size

app = typer.Typer(
    name="hai",
    help="HAI: an ahead-of-time compiler from ONNX models to edge devices.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _print_version(show: bool) -> None:
    if show:
        from hai_compiler.distribution import version

        sys.stdout.write(f"hai {version()}\n")
        raise typer.Exit()


@app.callback()
def _options(
    ctx: typer.Context,
    version: Annotated[
        bool,
        typer.Option(
            "--version", help="Print HAI's version and exit.", callback=_print_version, is_eager=True
        ),
    ] = False,
) -> None:
    ctx.with_resource(printed_warnings())  # every command: each HaiWarning one `warning:` line


@contextlib.contextmanager
def reported_errors() -> Iterator[None]:
    """Turn a user error into `error: ...` on stderr and exit code 1."""
    try:
        yield
    except HaiError as exc:
        sys.stdout.flush()
        sys.stderr.write(f"error: {exc}\n")
        raise typer.Exit(1) from None
    except MemoryError as exc:  # a shape the user gave that this machine cannot hold
        sys.stdout.flush()
        sys.stderr.write(f"error: out of memory: {exc or 'give smaller shapes'}\n")
        raise typer.Exit(1) from None
    except OSError as exc:  # an unwritable output path, a full disk
        sys.stdout.flush()
        where = f"{exc.filename}: " if exc.filename else ""
        sys.stderr.write(f"error: {where}{exc.strerror or exc}\n")
        raise typer.Exit(1) from None


def _usage(check: Any, text: list[str] | None, option: str) -> Any:
    try:
        return check(text or [])
    except InputSpecError as exc:
        raise typer.BadParameter(str(exc), param_hint=option) from None


def _shapes(text: list[str] | None) -> dict[str, tuple[int, ...]]:
    return _usage(parse_input_shapes, text, "--input-shape")


def _files(text: list[str] | None) -> dict[str, Path]:
    return _usage(parse_input_files, text, "--input")


ModelArg = Annotated[
    Path,
    typer.Argument(
        metavar="MODEL", help="The model: an .onnx file, or a .hir with its weights file.", show_default=False
    ),
]
InputShapeOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--input-shape",
        metavar="NAME=D0,D1,...",
        help="Static shape of an input (needed for symbolic dims); repeat per input.",
    ),
]


def example(command: str) -> str:
    """A command's `--help` epilog: one example, kept on its line."""
    return f"\b\nExample:\n  {command}"


DEFAULT_THREADS = 2
"""Kernel threads of `hai run`, `hai bench` and `hai demo` unless --threads says otherwise."""
ThreadsOpt = Annotated[
    int, typer.Option("--threads", min=1, help="Kernel threads (TVM_NUM_THREADS; onnxruntime's too).")
]


def _choices(name: str, values: Any) -> Any:
    """A str enum of `values`, so that `--help` lists them and typer refuses others."""
    return enum.StrEnum(name, {value: value for value in values})


def _target_names() -> list[str]:
    from targets.registry import available_targets

    return available_targets()


Target = _choices("Target", _target_names())
TargetOpt = Annotated[
    Target,
    typer.Option(
        "--target", help="Target family (of this host, unless --cpu or --hardware-profile names another CPU)."
    ),
]
HardwareProfileOpt = Annotated[
    Path | None,
    typer.Option(
        "--hardware-profile",
        metavar="FILE",
        help="Target the machine a `hai doctor` profile (JSON) describes.",
    ),
]


def size_option(name: str, help: str, none: bool = False) -> Any:
    """A typer option holding a byte size in ir/units.py's grammar (checked, kept as written);
    `none`: the word `none` is accepted too."""

    def check(value: str | None) -> str | None:
        if value is None or (none and value.strip().lower() == "none"):
            return value
        try:
            parse_size(value, name)
        except HaiError as exc:
            raise typer.BadParameter(str(exc).removeprefix(f"{name}: ")) from None
        return value

    grammar = f"SIZE: {EXAMPLES}" + (", or none" if none else "")
    return typer.Option(name, metavar="SIZE", help=f"{help} {grammar}.", callback=check)


DEFAULT_RUNS = 100
"""Timed runs of `hai bench` and `hai demo` unless --runs says otherwise."""
RunsOpt = Annotated[int, typer.Option("--runs", min=1, help="Timed runs (after one warm-up).")]
InputOpt = Annotated[
    list[str] | None,
    typer.Option("--input", metavar="NAME=FILE.npy", help="Input data from a .npy file; repeat per input."),
]
OutputDirOpt = Annotated[
    Path | None,
    typer.Option(
        "--output-dir", metavar="DIR", help="Write one NAME.npy per output into DIR (created if needed)."
    ),
]
SeedOpt = Annotated[int, typer.Option("--seed", help="Seed of the random data for inputs not given.")]
DumpIrOpt = Annotated[
    Path | None, typer.Option("--dump-ir", metavar="DIR", help="Write one numbered .hir per pass into DIR.")
]
PassesOpt = Annotated[
    str | None,
    typer.Option(
        "--passes",
        metavar="PIPELINE",
        help="Pass pipeline, e.g. 'fold-constants,dce' or 'default' (none when absent). See `hai passes`.",
    ),
]


def _load(model: Path, input_shape: list[str] | None) -> Any:
    return driver.load_model_any(model, _shapes(input_shape))


@app.command("ir", epilog=example("hai ir model.onnx --passes default -o model.hir"))
def ir_command(
    model: ModelArg,
    input_shape: InputShapeOpt = None,
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
        graph = _load(model, input_shape)
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
            console.print(Text(f"  or any {name} cpu LLVM knows; --cpu-features edits any of: {features}"))
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
    input: InputOpt = None,
    passes: PassesOpt = None,
    output_dir: OutputDirOpt = None,
    seed: SeedOpt = 0,
) -> None:
    """Run a model with the reference interpreter and print each output's shape and statistics.

    Inputs not given with --input get seeded random data (normal floats,
    integers in [0, 10), booleans), and the command says which ones did.
    """
    files = _files(input)
    with reported_errors():
        given = load_input_arrays(files)
        graph = _load(model, input_shape)
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


def print_outputs(outputs: dict[str, Any], dtypes: dict[str, str], output_dir: Path | None) -> None:
    """One line per output (name, IR dtype, shape, statistics), saving each as .npy into `output_dir`."""
    paths = driver.save_outputs(outputs, output_dir) if output_dir is not None else {}
    for name, array in outputs.items():
        line = f"{name}: {dtypes[name]}{list(array.shape)} {driver.array_stats(array)}"
        if name in paths:
            line += f" -> {paths[name]}"
        typer.echo(line)


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
) -> None:
    """Probe this machine's hardware: CPU, ISA features, caches, memory, OpenCL devices, target.

    The JSON profile is what `--hardware-profile FILE` of `hai compile` and `hai quantize` reads.
    """
    from hai_compiler import doctor

    with reported_errors():
        profile = doctor.scan()
        if output_format is ProfileFormat.json:
            doctor.write_json(profile, sys.stdout)
        else:
            doctor.render_table(profile, Console(highlight=False))


from hai_compiler import compile_commands, quantize_commands  # noqa: E402, F401  (register their commands)


def main() -> None:
    """Entry point of the `hai` console script."""
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # `hai ir m.onnx | head` ends quietly
    app(prog_name="hai")


if __name__ == "__main__":
    main()
