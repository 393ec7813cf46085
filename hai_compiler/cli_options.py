"""The options `hai` commands share, as typed annotations, and the parsing of their values.

Rule: an option that more than one command takes is declared once here
(`...Opt` annotations, `size_option`, `choices`), with its checks: a value that
does not parse is a usage error (exit 2) naming the option.
"""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Annotated, Any

import typer

from hai_compiler.input_spec import InputSpecError, parse_input_files, parse_input_shapes, parse_input_values
from ir import HaiError
from ir.units import EXAMPLES, parse_size


def _usage(check: Any, text: list[str] | None, option: str) -> Any:
    try:
        return check(text or [])
    except InputSpecError as exc:
        raise typer.BadParameter(str(exc), param_hint=option) from None


def input_shapes(text: list[str] | None) -> dict[str, tuple[int, ...]]:
    return _usage(parse_input_shapes, text, "--input-shape")


def input_values(text: list[str] | None) -> dict[str, Any]:
    return _usage(parse_input_values, text, "--input-value")


def input_files(text: list[str] | None) -> dict[str, Path]:
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

InputValueOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--input-value",
        metavar="NAME=V[,V...]",
        help="Fix an .onnx input to a value when compiling (it leaves the artifact's inputs): what an "
        "If or Loop on it decides is then taken at compile time; repeat per input.",
    ),
]


DEFAULT_THREADS = 2
"""Kernel threads of `hai run`, `hai bench` and `hai demo` unless --threads says otherwise."""
ThreadsOpt = Annotated[
    int, typer.Option("--threads", min=1, help="Kernel threads (TVM_NUM_THREADS; onnxruntime's too).")
]


def choices(name: str, values: Any) -> Any:
    """A str enum of `values`, so that `--help` lists them and typer refuses others."""
    return enum.StrEnum(name, {value: value for value in values})


def _target_names() -> list[str]:
    from targets.registry import available_targets

    return available_targets()


TARGET_HELP = (
    "Target family (of this host, unless --cpu or --hardware-profile names another CPU); `hai compile` "
    "also takes a CPU target and devices beside it, which the partition pass splits the model over: "
    "x86+opencl, x86+opencl:gpu, arm64+opencl:accelerator (--placement, --opencl-profile)."
)
Target = choices("Target", _target_names())
TargetOpt = Annotated[
    Target,
    typer.Option("--target", help=TARGET_HELP),
]


def check_target_spelling(value: str) -> str:
    """`--target` of `hai compile`: a target, or `HOST+DEVICE...` over several (targets/device_targets.py)."""
    from runtime.device_names import split_target

    if "+" in value:
        from targets.description import TargetError
        from targets.device_targets import check_spelling

        try:
            check_spelling(value)
        except TargetError as exc:
            raise typer.BadParameter(str(exc)) from None
    elif split_target(value)[0] not in _target_names():
        raise typer.BadParameter(f"{value!r} is not one of {', '.join(_target_names())} (or HOST+DEVICE)")
    return value


DeviceTargetOpt = Annotated[
    str,
    typer.Option(
        "--target",
        metavar=f"<{'|'.join(_target_names())}>[+DEVICE]",
        callback=check_target_spelling,
        help=TARGET_HELP,
    ),
]
CpuOpt = Annotated[
    str | None,
    typer.Option("--cpu", help="CPU to target: an LLVM name (of the --target's arch) or x86-64-v2/v3/v4."),
]
CpuFeaturesOpt = Annotated[
    str | None,
    typer.Option(
        "--cpu-features",
        metavar="+F,-F",
        help="Add or drop ISA features (HAI names, e.g. +amx,+avx512_fp16,-avx512f) on top of the "
        "host, --cpu or the profile; `hai doctor` prints the ones that make --cpu match this host.",
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
ArtifactArg = Annotated[
    Path, typer.Argument(metavar="ARTIFACT", help="A compiled NAME.hai directory.", show_default=False)
]
TrustedKeyOpt = Annotated[
    list[Path] | None,
    typer.Option(
        "--trusted-key",
        metavar="KEY.pub",
        help="Refuse the artifact unless its manifest.sig verifies with this public key (from `hai keygen`; "
        "repeat for several). Needs pip install 'hai-compiler[signing]'.",
    ),
]
