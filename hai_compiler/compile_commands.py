"""The `hai compile`, `hai run`, `hai bench`, `hai pack` and `hai keygen` commands (on cli_app.py's `app`).

Rule: as in model_commands.py, commands parse options and print; `hai_compiler.compiler`
compiles, the runtime runs, `hai_compiler.compiler.bench` measures. A `HaiError`
becomes one `error: ...` line and exit code 1. Progress (hai_compiler/progress.py)
and notes go to stderr, results to stdout.
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
    DEFAULT_RUNS,
    DEFAULT_THREADS,
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
    RunsOpt,
    SeedOpt,
    ThreadsOpt,
    input_files,
    input_shapes,
    input_values,
    size_option,
)
from hai_compiler.input_spec import check_inputs, load_input_arrays, random_input
from hai_compiler.progress import reporting, stage
from hai_compiler.quantize_commands import QuantizeOptions, print_quantization, quantization_options
from targets.plan.memory_budget import DEFAULT_BUDGET

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


@app.command("bench", epilog=example("hai bench model.hai --onnx model.onnx --profile --json -"))
def bench_command(
    artifacts: Annotated[
        list[Path],
        typer.Argument(
            metavar="ARTIFACT...",
            help="A compiled NAME.hai directory (several, side by side, with --power).",
            show_default=False,
        ),
    ],
    onnx: Annotated[
        Path | None, typer.Option("--onnx", metavar="MODEL.onnx", help="Also run onnxruntime on this model.")
    ] = None,
    threads: ThreadsOpt = DEFAULT_THREADS,
    runs: RunsOpt = DEFAULT_RUNS,
    profile: Annotated[
        bool, typer.Option("--profile", help="Time every step next to its source nodes.")
    ] = False,
    json_path: Annotated[
        str | None,
        typer.Option(
            "--json",
            metavar="FILE",
            help="Also write the numbers as JSON (- : to stdout, the tables to stderr).",
        ),
    ] = None,
    seed: SeedOpt = 0,
    trusted_key: TrustedKeyOpt = None,
    memory: Annotated[
        bool,
        typer.Option(
            "--memory",
            help="Run each inference in a fresh process (--runs processes) and report the peak RSS the OS "
            "measured beside the planned peak and budget (and the pager's counters when paged).",
        ),
    ] = False,
    transfers: Annotated[
        bool,
        typer.Option(
            "--transfers",
            help="Report host<->device transfer time per inference (OpenCL event timestamps) with zero-copy "
            "on and off, run alternately --runs times each, and the reduction in %.",
        ),
    ] = False,
    power: Annotated[
        bool,
        typer.Option(
            "--power",
            help="Report joules per inference of each artifact, side by side: CPU packages through RAPL, "
            "NVIDIA GPUs through NVML, each figure with its source; a source that cannot be read is "
            "reported unavailable with the reason. Blocks of at least --runs inferences and "
            "--power-seconds, 3 rounds alternating the artifacts.",
        ),
    ] = False,
    power_seconds: Annotated[
        float, typer.Option("--power-seconds", min=0.0, help="With --power: the least seconds per block.")
    ] = 1.0,
    throughput: Annotated[
        bool,
        typer.Option(
            "--throughput",
            help="Report inputs/s and p50/p99 latency over a stream of --stream inputs, serial runs against "
            "the pipelined run_many (stages of the plan on their own threads), alternately.",
        ),
    ] = False,
    stream: Annotated[
        int, typer.Option("--stream", min=1, metavar="N", help="Inputs in the --throughput stream.")
    ] = 100,
    in_flight: Annotated[
        int | None,
        typer.Option(
            "--in-flight",
            min=1,
            metavar="K",
            help="Inputs run_many keeps in flight (default: one per stage).",
        ),
    ] = None,
) -> None:
    """Time an artifact (p50/p99 latency, peak RSS), beside onnxruntime with --onnx; with --power, the
    energy per inference of one or more artifacts.

    With --trusted-key the artifacts' signatures are checked once, before anything runs."""
    import runtime
    from hai_compiler.compiler import bench

    console = Console(highlight=False, stderr=json_path == "-")
    if trusted_key:
        from runtime.artifact_files import read_manifest

        with reported_errors():
            for artifact in artifacts:
                read_manifest(artifact, trusted_keys=trusted_key)
    if power:
        with reported_errors():
            bench_power(artifacts, runs, power_seconds, seed, json_path, console)
        return
    if len(artifacts) > 1:
        raise typer.BadParameter("several artifacts are compared with --power only", param_hint="ARTIFACT")
    artifact = artifacts[0]
    if transfers:
        with reported_errors():
            bench_transfers(artifact, runs, seed, json_path, console)
        return
    if throughput:
        with reported_errors():
            bench_throughput(artifact, threads, stream, in_flight, seed, json_path, console)
        return
    if memory:
        with reported_errors():
            results = bench.memory_bench(artifact, onnx, threads, runs, seed)
            render_bench_memory(results, console)
            if json_path is not None:
                bench.write_json(results, json_path)
        return
    with reported_errors():
        model = runtime.load(artifact, threads=threads)
        inputs = bench.sample_inputs(model.inputs, seed)
        results: dict[str, Any] = {"artifact": str(artifact), "threads": threads, "runs": runs}
        hai = bench.hai_isolated(artifact, inputs, threads, runs)  # each engine in a process of its own
        results["hai"] = {
            "latency": hai.latency,
            "peak_rss_bytes": hai.peak_rss_bytes,
            "python_overhead_us": bench.python_overhead_us(model, inputs, runs),
            "transfers": bench.transfers_per_inference(model, inputs),
        }
        if onnx is not None:
            ort = bench.onnxruntime_isolated(onnx, inputs, threads, runs)
            results["onnxruntime"] = {"latency": ort.latency, "peak_rss_bytes": ort.peak_rss_bytes}
        if profile:
            results["steps"] = bench.profile_steps(model, inputs, max(3, runs // 10))
        render_bench(results, console)
        if json_path is not None:
            bench.write_json(results, json_path)


def bench_transfers(artifact: Path, runs: int, seed: int, json_path: str | None, console: Console) -> None:
    """`hai bench --transfers`: runtime/transfer_bench.py on `runs` alternating runs per side."""
    from hai_compiler.compiler import bench
    from runtime.artifact_files import read_manifest
    from runtime.transfer_bench import measure, report_lines

    inputs = bench.sample_inputs(read_manifest(artifact, verify=False).inputs, seed)
    results = measure(artifact, runs, inputs)
    for line in report_lines(results):
        console.print(line, markup=False, soft_wrap=True)
    if json_path is not None:
        bench.write_json(results, json_path)


def bench_power(
    artifacts: list[Path], runs: int, seconds: float, seed: int, json_path: str | None, console: Console
) -> None:
    """`hai bench --power`: runtime/power_bench.py over `artifacts`, on seeded random inputs."""
    from hai_compiler.compiler import bench
    from runtime.artifact_files import read_manifest
    from runtime.power_bench import measure, report_lines

    inputs = [bench.sample_inputs(read_manifest(a, verify=False).inputs, seed) for a in artifacts]
    results = measure(artifacts, runs, min_seconds=seconds, inputs=inputs)
    for line in report_lines(results):
        console.print(line, markup=False, soft_wrap=True)
    if json_path is not None:
        bench.write_json(results, json_path)


def bench_throughput(
    artifact: Path,
    threads: int,
    stream: int,
    in_flight: int | None,
    seed: int,
    json_path: str | None,
    console: Console,
) -> None:
    """`hai bench --throughput`: runtime/stream_bench.py, serial runs against run_many on one stream."""
    from hai_compiler.compiler import bench
    from runtime.artifact_files import read_manifest
    from runtime.stream_bench import DISTINCT_INPUTS, measure, report_lines

    bindings = read_manifest(artifact, verify=False).inputs
    inputs = [bench.sample_inputs(bindings, seed + i) for i in range(DISTINCT_INPUTS)]
    results = measure(artifact, stream, in_flight, threads=threads, inputs=inputs)
    for line in report_lines(results):
        console.print(line, markup=False, soft_wrap=True)
    if json_path is not None:
        bench.write_json(results, json_path)


def render_bench(results: dict[str, Any], console: Console) -> None:
    from rich.table import Table

    from hai_compiler.compiler.report import percent

    table = Table(title=f"{results['artifact']} ({results['threads']} threads, {results['runs']} runs)")
    for column in ("", "p50 ms", "p99 ms", "peak RSS MiB"):
        table.add_column(column, justify="right" if column else "left")
    for who in ("hai", "onnxruntime"):
        if who in results:
            lat, rss = results[who]["latency"], results[who]["peak_rss_bytes"]
            table.add_row(who, f"{lat.p50_ms:.3f}", f"{lat.p99_ms:.3f}", f"{rss / 2**20:.1f}")
    if "onnxruntime" in results:
        hai, ort = results["hai"], results["onnxruntime"]
        table.add_row(
            "hai / onnxruntime",
            f"{hai['latency'].p50_ms / ort['latency'].p50_ms:.2f}x",
            f"{hai['latency'].p99_ms / ort['latency'].p99_ms:.2f}x",
            f"{hai['peak_rss_bytes'] / ort['peak_rss_bytes']:.2f}x",
        )
    console.print(table)
    console.print(f"Python overhead per inference: {results['hai']['python_overhead_us']:.1f} µs")
    moved = results["hai"].get("transfers", {})
    if moved.get("transfers"):
        console.print(
            f"transfers between devices per inference: {moved['transfers']}, {moved['transfer_bytes']} bytes"
        )
    if "steps" in results:
        steps = Table(title="time per step", show_edge=False)
        for column in ("#", "µs", "%"):
            steps.add_column(column, justify="right")
        steps.add_column("kernel", no_wrap=True)
        steps.add_column("nodes", overflow="fold")
        total = sum(s.median_us for s in results["steps"]) or 1.0
        for s in results["steps"]:
            share = percent(s.median_us, total)
            steps.add_row(str(s.index), f"{s.median_us:.1f}", share, s.kernel, "\n".join(s.nodes))
        console.print(steps)


def render_bench_memory(results: dict[str, Any], console: Console) -> None:
    from rich.table import Table

    planned = results["planned"]
    fresh = f"{results['processes']} fresh processes ({results['threads']} threads)"
    table = Table(title=f"{results['artifact']}: peak RSS of {fresh}")
    for column in ("", "peak RSS MiB (median)", "max", "planned", "max / planned", "budget", "p50 ms"):
        table.add_column(column, justify="right" if column else "left")
    budget = mib_text(planned.budget_bytes) if planned.budget_bytes is not None else "unbounded"
    for who in ("hai", "onnxruntime"):
        if who in results:
            runs = results[who]
            plan = planned.planned_peak_bytes if who == "hai" else None
            ratio = f"{runs.max_peak_bytes / plan:.3f}" if plan else "-"
            table.add_row(
                who, mib_text(runs.median_peak_bytes), mib_text(runs.max_peak_bytes),
                mib_text(plan), ratio, budget if who == "hai" else "-", f"{runs.latency.p50_ms:.3f}",
            )  # fmt: skip
    console.print(table)
    if not planned.paged:
        console.print("weights resident (not paged)")
        return
    pool = f"paged: {planned.frames} frames x {mib_text(planned.page_size)} MiB"
    count = dict.fromkeys(
        ("loads", "bytes_read", "read_seconds", "stall_seconds", "hits", "misses", "reused"), 0.0
    )
    count.update(results["hai"].page_counters or {})
    console.print(
        f"{pool}; per inference (median): {count['loads']:.0f} page loads, "
        f"{mib_text(int(count['bytes_read']))} MiB read in {1e3 * count['read_seconds']:.1f} ms, "
        f"stalled {1e3 * count['stall_seconds']:.1f} ms, {count['hits']:.0f} hits, "
        f"{count['misses']:.0f} misses, {count['reused']:.0f} reused"
    )


def mib_text(nbytes: int | None) -> str:
    return "-" if nbytes is None else f"{nbytes / 2**20:.1f}"


@app.command("pack", epilog=example("hai pack model.hai -o bundle/"))
def pack_command(
    artifact: ArtifactArg,
    output: Annotated[Path, typer.Option("-o", "--output", help="The bundle folder to write.")],
    microbench: Annotated[
        bool,
        typer.Option(
            "--microbench",
            help="Also bundle the device microbenchmarks, compiled for the artifact's target: "
            "`python measure_device.py` measures the device without the compiler.",
        ),
    ] = False,
) -> None:
    """Bundle ARTIFACT with the minimal runtime: a folder that runs where only numpy and
    apache-tvm-ffi are installed (`pip install -r requirements.txt`, then `python run_model.py`)."""
    from hai_compiler.microbench import Sizes
    from hai_compiler.pack import pack

    with reported_errors():
        bundle = pack(artifact, output, microbench=Sizes() if microbench else None)
    typer.echo(f"{bundle}: pip install -r {bundle / 'requirements.txt'}; python {bundle / 'run_model.py'}")


@app.command(
    "keygen", epilog=example("hai keygen release && hai compile model.onnx --sign release.key -o m.hai")
)
def keygen_command(
    stem: Annotated[
        Path, typer.Argument(metavar="NAME", help="Writes NAME.key (private, mode 0600) and NAME.pub.")
    ],
) -> None:
    """Make an Ed25519 key pair for signed artifacts: `hai compile --sign NAME.key`, then
    `hai run --trusted-key NAME.pub` (or runtime.load(..., trusted_keys=[...])) refuses anything else."""
    from runtime.signing import generate_key_files

    with reported_errors():
        private, public = generate_key_files(stem)
    typer.echo(f"{private}: private key, keep it secret (hai compile --sign {private})")
    typer.echo(f"{public}: public key, give it to whoever runs the artifacts (--trusted-key {public})")
