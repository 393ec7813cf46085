"""The `hai compile` and `hai run` commands (on cli_app.py's `app`): an artifact made, and run once.

Rule: as in model_commands.py, commands parse options and print; `hai_compiler.compiler`
compiles, the runtime runs. A `HaiError` becomes one `error: ...` line and exit code 1.
Progress (hai_compiler/progress.py) and notes go to stderr, results to stdout. `hai bench` is
bench_commands.py; `hai pack` and `hai keygen` are pack_commands.py.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from rich.console import Console

from hai_compiler.cli_app import app, example, print_outputs, reported_errors
from hai_compiler.cli_options import (
    DEFAULT_THREADS,
    ArtifactArg,
    CpuFeaturesOpt,
    CpuOpt,
    DeviceTargetOpt,
    DumpIrOpt,
    HardwareProfileOpt,
    InputOpt,
    InputShapeOpt,
    InputValueOpt,
    ModelArg,
    OutputDirOpt,
    SeedOpt,
    ThreadsOpt,
    TrustedKeyOpt,
    input_files,
    input_shapes,
    input_values,
    size_option,
)
from hai_compiler.input_spec import check_inputs, load_input_arrays, random_input
from hai_compiler.progress import reporting, stage
from hai_compiler.quantize_commands import QuantizeOptions, print_quantization, quantization_options
from targets.plan.memory_budget import DEFAULT_BUDGET


@app.command(
    "compile",
    epilog=example(
        "hai compile model.onnx --input-shape x=1,3,224,224 --memory-budget 256MB --report -o model.hai"
    ),
)
@quantization_options
def compile_command(
    model: ModelArg,
    output: Annotated[
        Path, typer.Option("-o", "--output", metavar="OUT.hai", help="The artifact directory.")
    ],
    target: DeviceTargetOpt = "x86",
    cpu: CpuOpt = None,
    hardware_profile: HardwareProfileOpt = None,
    cpu_features: CpuFeaturesOpt = None,
    opencl_profile: Annotated[
        str | None,
        typer.Option(
            "--opencl-profile",
            metavar="PROFILE",
            help="The OpenCL device of --target x86+opencl: a preset (pocl-cpu, nvidia-h100); default: the "
            "--hardware-profile's OpenCL device of the named kind, else this machine's.",
        ),
    ] = None,
    placement: Annotated[
        str | None,
        typer.Option(
            "--placement",
            metavar="PATTERN=DEVICE;...",
            help="Force nodes onto devices of a target over several (fnmatch patterns on node or op names, "
            "devices as the IR names them: 'Conv*=opencl;Softmax=cpu'); the partition pass places the rest.",
        ),
    ] = None,
    partition_objective: Annotated[
        str,
        typer.Option(
            "--partition-objective",
            metavar="latency|throughput",
            help="What the partition over several devices minimises: one inference's latency, or the "
            "period of a stream of inputs (each device a pipeline stage).",
        ),
    ] = "latency",
    input_shape: InputShapeOpt = None,
    input_value: InputValueOpt = None,
    passes: Annotated[
        str, typer.Option("--passes", metavar="PIPELINE", help="Passes before fuse and plan-memory.")
    ] = "default",
    dump_ir: DumpIrOpt = None,
    print_ir_after: Annotated[
        list[str] | None,
        typer.Option(
            metavar="PASS|all",
            help="Print the IR (to stderr) after this pass; repeatable.",
        ),
    ] = None,
    report: Annotated[
        bool,
        typer.Option(
            "--report",
            help="Print every kernel (and its device) and the arena vs naive size; over several devices, "
            "each device's share of the predicted time and the transfers.",
        ),
    ] = False,
    entry: Annotated[
        str,
        typer.Option(
            "--entry", metavar="auto|on|off", help="One exported call runs every kernel (auto: when all can)."
        ),
    ] = "auto",
    memory_budget: Annotated[
        str,
        size_option(
            "--memory-budget",
            "Plan the peak memory (arena + weights + kernels + inputs/outputs + the runtime's "
            "baseline) under SIZE, paging the weights from weights.bin when they do not fit beside the "
            "rest; fail, naming the smallest that works, when nothing fits.",
            none=True,
        ),
    ] = DEFAULT_BUDGET,
    page_size: Annotated[
        str, size_option("--page-size", "Bytes of one weight page when the plan pages.")
    ] = "4MiB",
    device_memory_budget: Annotated[
        str | None,
        size_option(
            "--device-memory-budget",
            "Plan a device's own memory (--target opencl: arena + weights + input and scratch buffers) "
            "under SIZE (default: the device profile's global memory); fail, naming the bytes needed, "
            "when the plan does not fit. Checked again at load against the device.",
        ),
    ] = None,
    sign: Annotated[
        Path | None,
        typer.Option(
            "--sign",
            metavar="KEY",
            help="Sign the artifact (manifest.sig) with this Ed25519 private key from `hai keygen`.",
        ),
    ] = None,
    *,
    quantize: QuantizeOptions,
) -> None:
    """Compile a model into an artifact directory that `hai run` and `runtime.load` execute.

    With --precision, the model is quantized first (as `hai quantize` does) and the sizes are reported.
    """
    from hai_compiler.compiler import CompileOptions, compile_model
    from hai_compiler.compiler.options import profile_target_of, resolve_compile_target
    from hai_compiler.compiler.report import render_report
    from targets.artifact import sign_artifact, signing_key

    shapes = input_shapes(input_shape)
    fixed = input_values(input_value) or None
    console = Console(highlight=False)
    with reported_errors():
        key = signing_key(sign) if sign is not None else None  # a bad key fails before compiling
        options = CompileOptions(str(target), cpu, hardware_profile, shapes or None, passes, dump_ir,
                                 entry=entry, memory_budget=memory_budget, page_size=page_size,
                                 cpu_features=cpu_features, input_values=fixed,
                                 device_memory_budget=device_memory_budget, placement=placement or "",
                                 objective=partition_objective,
                                 opencl_profile=opencl_profile,
                                 print_ir_after=tuple(print_ir_after or ()))  # fmt: skip
        quantized = quality = None
        with reporting():
            if quantize.precision is not None:
                quantize_dump = Path(dump_ir) / "quantize" if dump_ir else None
                described = resolve_compile_target(options, profile_target_of(options))  # --cpu too
                quantized = quantize.fit(model, shapes, described, quantize_dump)
            result = compile_model(quantized.graph if quantized else model, output, options)
            if quantized is not None:
                with stage("measuring against fp32"):
                    quality = quantize.quality(model, shapes, quantized)
        if key is not None:
            sign_artifact(result.path, key)
        if quantized is not None:
            weights = (result.path / "weights.bin").stat().st_size
            print_quantization(console, model, quantized, weights, quality)
        if report:
            render_report(result, console)
        sys.stderr.write(
            f"compiled {model} for {target_name(result)}: {len(result.plan.kernels)} "
            f"steps{steps_how(result.plan.plan)}, "
            f"arena {result.plan.plan.arena_size} bytes, planned peak {planned_peak(result)}"
            f"{device_memory(result)}, {result.seconds:.2f} s -> {result.path}\n"
        )


def target_name(result: Any) -> str:
    """`x86 (znver4)`, or over several devices `x86+opencl:cpu (znver4 + pocl-cpu), 2 transfers`."""
    if result.devices is None:
        return f"{result.target.name} ({result.target.cpu})"
    cpus = " + ".join(desc.cpu for _, desc in result.devices.devices)
    transfers = sum(1 for step in result.plan.plan.steps if step.transfer_from)
    return f"{result.devices.spelling} ({cpus}), {transfers} transfers"


def steps_how(plan: Any) -> str:
    """How the steps are called: ` in one entry call`, ` in N segments, weights paged (F frames)`, or ``."""
    if plan.paging is not None:
        calls = f"{len(plan.segments)} segments" if plan.segments else "step-by-step calls"
        return f" in {calls}, weights paged through {plan.paging.frames} frames"
    return " in one entry call" if plan.entry else ""


def planned_peak(result: Any) -> str:
    """`37.56 MiB` (`of budget 512 MiB` when one was given): the plan's memory, for the summary line."""
    from ir.units import format_size

    peak = format_size(result.plan.plan.planned_peak_bytes or 0)
    return f"{peak} of budget {format_size(result.memory_budget)}" if result.memory_budget else peak


def device_memory(result: Any) -> str:
    """`, device memory 1.2 MiB of budget 4 GiB` for a plan on a device with memory of its own, else ``."""
    from ir.units import format_size

    if result.device_plan is None:
        return ""
    record = result.device_plan.record
    budget = f" of budget {format_size(record.budget_bytes)}" if record.budget_bytes is not None else ""
    return f", device memory {format_size(record.total_bytes)}{budget}"


def binding_types(bindings: Any) -> dict[str, Any]:
    """Each binding's IR TensorType (for input checks and random inputs)."""
    from ir import DType, TensorType
    from runtime.artifact import numpy_dtype

    return {b.name: TensorType(DType.from_numpy(numpy_dtype(b.dtype)), tuple(b.shape)) for b in bindings}


@app.command("run", epilog=example("hai run model.hai --input x=x.npy --output-dir out/"))
def run_command(
    artifact: ArtifactArg,
    input: InputOpt = None,
    output_dir: OutputDirOpt = None,
    threads: ThreadsOpt = DEFAULT_THREADS,
    seed: SeedOpt = 0,
    trusted_key: TrustedKeyOpt = None,
) -> None:
    """Run a compiled artifact and print each output's shape and statistics (as `hai interp` does)."""
    import runtime

    files = input_files(input)
    with reported_errors():
        given = load_input_arrays(files)
        model = runtime.load(artifact, threads=threads, trusted_keys=trusted_key or None)
        expected = binding_types(model.inputs)
        feeds = check_inputs(given, expected)
        rng = np.random.default_rng(seed)
        for name, value_type in expected.items():
            if name not in feeds:
                feeds[name] = random_input(value_type, rng)
                note = f"input '{name}' is random {value_type} (seed {seed}); give --input {name}=FILE.npy"
                sys.stderr.write(f"note: {note}\n")
        outputs = model.run({name: feeds[name] for name in expected})
        dtypes = {name: str(t.dtype) for name, t in binding_types(model.outputs).items()}
        print_outputs(outputs, dtypes, output_dir)
