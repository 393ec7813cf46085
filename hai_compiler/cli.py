"""The `hai` command line: `hai ir`, `hai passes`, `hai interp`, `hai demo`, `hai doctor`, and
`hai compile`, `hai run`, `hai bench` (hai_compiler/compile_commands.py).

Rule: commands parse options and print; the work is done by `driver.py`. A
`HaiError` (bad model, bad option value, bad input file) becomes one
`error: ...` message on stderr and exit code 1; malformed options are usage
errors (exit 2). A traceback means a bug in HAI, never bad input.
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
from ir import HaiError

app = typer.Typer(
    name="hai",
    help="HAI: an ahead-of-time compiler from ONNX models to edge devices.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


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


@app.command("ir")
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
    dump_ir: Annotated[
        Path | None, typer.Option(metavar="DIR", help="Write one numbered .hir per pass into DIR.")
    ] = None,
    verify_each: Annotated[
        bool, typer.Option("--verify-each", help="Verify the IR after every pass.", show_default=False)
    ] = False,
    timing: Annotated[
        bool, typer.Option("--timing", help="Print a per-pass timing table (stderr).", show_default=False)
    ] = False,
    save_weights: Annotated[
        bool,
        typer.Option(
            "--save-weights",
            help="With -o (and --dump-ir), also write the weights file next to each .hir.",
            show_default=False,
        ),
    ] = False,
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
    """Import a model, run a pass pipeline over it and print its .hir text."""
    if save_weights and output is None and dump_ir is None:
        raise typer.BadParameter(
            "needs -o OUT.hir or --dump-ir DIR (weights go next to the .hir)", param_hint="--save-weights"
        )
    with reported_errors():
        graph = _load(model, input_shape)
        options = driver.InstrumentOptions(
            print_ir_before or (), print_ir_after or (), dump_ir, save_weights, timing
        )
        instruments = driver.make_instruments(options)
        ctx = driver.new_context()
        graph = driver.run_pipeline(graph, passes, instruments, verify_each=verify_each, ctx=ctx)
        for line in driver.pipeline_report(instruments, ctx):
            sys.stderr.write(line + "\n")
        if output is not None:
            driver.write_ir(graph, output, save_weights=save_weights)
        if summary:
            render_summary(graph, Console(highlight=False))
        elif output is None:
            text = driver.graph_text(graph)
            sys.stdout.write(text if text.endswith("\n") else text + "\n")


@app.command("passes")
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


@app.command("interp")
def interp_command(
    model: ModelArg,
    input_shape: InputShapeOpt = None,
    input: Annotated[
        list[str] | None,
        typer.Option(
            "--input", metavar="NAME=FILE.npy", help="Input data from a .npy file; repeat per input."
        ),
    ] = None,
    passes: PassesOpt = None,
    output_dir: Annotated[
        Path | None,
        typer.Option(metavar="DIR", help="Write one NAME.npy per output into DIR (created if needed)."),
    ] = None,
    seed: Annotated[
        int, typer.Option(help="Seed of the random data for inputs not given.", show_default=True)
    ] = 0,
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


@app.command("demo")
def demo_command(
    threads: Annotated[int, typer.Option("--threads", min=1, help="Threads for HAI and onnxruntime.")] = 2,
    runs: Annotated[int, typer.Option("--runs", min=1, help="Timed runs for the latency.")] = 200,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Keep the artifact here.")] = None,
) -> None:
    """The main job on the embedded digits CNN: compile for this host, run, and measure against
    onnxruntime (held-out accuracy, p50 latency, peak RSS)."""
    from hai_compiler.demo import run_demo

    with reported_errors():
        run_demo(Console(highlight=False), threads=threads, runs=runs, output=output)


class ProfileFormat(enum.StrEnum):
    json = "json"
    table = "table"


@app.command("doctor")
def doctor_command(
    scan: Annotated[bool, typer.Option("--scan", help="Probe this machine's hardware.")] = False,
    output_format: Annotated[
        ProfileFormat, typer.Option("--format", help="json (default; `> hardware_profile.json`) or table.")
    ] = ProfileFormat.json,
) -> None:
    """Report this machine's hardware: CPU, ISA features, caches, memory, OpenCL devices, target."""
    from hai_compiler import doctor

    if not scan:
        raise typer.BadParameter("say what to do: --scan probes this machine", param_hint="--scan")
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
