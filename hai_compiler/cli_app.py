"""The `hai` Typer application and what every command shares: one error line for a user error, the
`--help` example, the printing of outputs.

Rule: a `HaiError` (bad model, bad option value, bad input file) becomes one
`error: ...` message on stderr and exit code 1; malformed options are usage
errors (exit 2). Command modules (cli.py, compile_commands.py, bench_commands.py, pack_commands.py,
quantize_commands.py) import this module and cli_options.py, never each other's
commands; cli.py, the entry point, imports them all.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer

from hai_compiler import driver
from hai_compiler.warning_lines import printed_warnings
from ir import HaiError
from runtime.errors import HaiRuntimeError

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
    """Turn a user error, the compiler's or the runtime's (bad artifact, bad input), into `error: ...`
    on stderr and exit code 1."""
    try:
        yield
    except (HaiError, HaiRuntimeError) as exc:
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


def example(command: str) -> str:
    """A command's `--help` epilog: one example, kept on its line."""
    return f"\b\nExample:\n  {command}"


def print_outputs(outputs: dict[str, Any], dtypes: dict[str, str], output_dir: Path | None) -> None:
    """One line per output (name, IR dtype, shape, statistics), saving each as .npy into `output_dir`."""
    paths = driver.save_outputs(outputs, output_dir) if output_dir is not None else {}
    for name, array in outputs.items():
        line = f"{name}: {dtypes[name]}{list(array.shape)} {driver.array_stats(array)}"
        if name in paths:
            line += f" -> {paths[name]}"
        typer.echo(line)
