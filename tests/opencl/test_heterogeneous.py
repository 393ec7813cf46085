"""Compiles over the host CPU and an OpenCL device (`--target x86+opencl:cpu`, PoCL's CPU device in CI)
run end to end against onnxruntime: forced placements both ways, automatic placement (the target's
own estimates, and a device set whose split uses both devices), transfers counted as the plan's
Transfer nodes in every transfer mode, the partition valid, and the bad inputs refused by name."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, cast

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import runtime
import runtime.devices.opencl as opencl_driver
from hai_compiler import real_models
from hai_compiler.accuracy import relative_error
from hai_compiler.compiler import CompileOptions, compile_model
from hai_compiler.compiler.driver import CompileResult
from hai_compiler.compiler.options import CompileOptionError
from hai_compiler.demo import EMBEDDED_MODEL, load_heldout_digits
from ir import HaiError, verify
from ir.placement import node_device
from runtime.artifact import MANIFEST_FILE
from runtime.errors import ArtifactError, DeviceNotFoundError
from targets.description import TargetError
from targets.lowering.dispatch import supported_ops

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("pyopencl")

TOLERANCE = 1e-4
TARGET = "x86+opencl:cpu"  # PoCL's device is of kind cpu
OPENCL = "opencl:cpu"
DIGITS = {"image": (1, 1, 8, 8)}


def compile_split(model: Path, out: Path, shapes: dict, **options: Any) -> CompileResult:
    given = CompileOptions(target=TARGET, opencl_profile="pocl-cpu", input_shapes=shapes, **options)
    return compile_model(model, out, given)


def digits_inputs(i: int = 0) -> dict[str, np.ndarray]:
    x, _ = load_heldout_digits()
    return {"image": np.ascontiguousarray(x[i : i + 1])}


def onnxruntime_outputs(path: Path, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, inputs), strict=True))


def check_run(result: CompileResult, model: Path, inputs: dict, **load: Any) -> runtime.Model:
    loaded = runtime.load(result.path, **load)
    check_outputs(loaded, model, inputs)
    return loaded


def check_outputs(loaded: runtime.Model, model: Path, inputs: dict) -> None:
    got = loaded.run(inputs)
    for name, want in onnxruntime_outputs(model, inputs).items():
        assert relative_error(got[name], want) <= TOLERANCE, name


def check_partition(result: CompileResult) -> None:
    """The final graph is validly placed, every kernel step runs on its anchor's device's driver, and
    every Transfer node is one transfer step between the two devices it joins."""
    graph, plan = result.graph, result.plan.plan
    verify(graph)
    transfers = [n for n in graph.nodes if n.op == "Transfer"]
    steps = [s for s in plan.steps if s.transfer_from]
    assert len(steps) == len(transfers)
    for step, node in zip(steps, transfers, strict=True):
        assert step.device == node.attrs["to"].split(":")[0]
        (operand,) = node.operands
        assert operand is not None and operand.type.device is not None
        assert step.transfer_from == operand.type.device.split(":")[0]
    kernel_steps = [s for s in plan.steps if not s.transfer_from]
    for step, group in zip(kernel_steps, result.groups, strict=False):
        assert step.device == (node_device(group.anchor) or "cpu").split(":")[0]


@pytest.mark.parametrize(
    ("placement", "on_opencl"),
    [
        ("Conv=opencl:cpu", {"Conv", "Relu"}),
        ("ReduceMean=opencl:cpu;Gemm=opencl:cpu", {"ReduceMean", "Gemm"}),
    ],
    ids=["convs-on-opencl", "rest-on-opencl"],
)
def test_forced_placement_matches_onnxruntime(
    opencl_device: dict, tmp_path: Path, placement: str, on_opencl: set, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = Path(EMBEDDED_MODEL)
    result = compile_split(model, tmp_path / "d.hai", DIGITS, placement=placement)
    placed = {n.op for n in result.graph.nodes if node_device(n) == OPENCL and n.op != "Transfer"}
    assert placed == on_opencl
    check_partition(result)
    manifest = result.plan.plan
    assert {s.device for s in manifest.steps if not s.transfer_from} == {"cpu", "opencl"}
    modes = []
    for mode in ("zero-copy", "copy", "staged"):  # mapped on PoCL (host-unified), copies, a discrete GPU's
        if mode == "staged":
            monkeypatch.setattr(opencl_driver, "transfer_mode", lambda zero_copy, host_unified: "staged")
        loaded = check_run(result, model, digits_inputs(), device_options={"zero_copy": mode != "copy"})
        modes.append(cast(opencl_driver.OpenCLDevice, loaded.devices["opencl"]).transfers.mode)
        check_outputs(loaded, model, digits_inputs(1))
        transfers = [s for s in manifest.steps if s.transfer_from]
        want = {
            "transfers": 2 * len(transfers),
            "transfer_bytes": 2 * sum(s.args[0].nbytes for s in transfers),
        }
        assert loaded.transfer_counters() == want
        check_pipelined(loaded)
    assert modes[1:] == ["copy", "staged"]


def check_pipelined(loaded: runtime.Model) -> None:
    """run_many over the plan's stages (runs of steps on one device, transfers included) returns what
    serial runs return, in order, with several inputs in flight."""
    from runtime.pipeline import stages_of

    assert len({stage.device for stage in stages_of(loaded)}) == 2
    feeds = [digits_inputs(i) for i in range(6)]
    streamed = list(loaded.run_many(feeds, in_flight=3))
    for got, feed in zip(streamed, feeds, strict=True):
        for name, want in loaded.run(feed).items():
            np.testing.assert_array_equal(got[name], want)


def test_throughput_objective(opencl_device: dict, tmp_path: Path) -> None:
    model = Path(EMBEDDED_MODEL)
    result = compile_split(
        model, tmp_path / "d.hai", DIGITS, placement=f"Conv={OPENCL}", objective="throughput"
    )
    assert result.partition is not None and result.partition.objective == "throughput"
    check_run(result, model, digits_inputs())
    with pytest.raises(CompileOptionError, match="--partition-objective fastest: expected one of latency"):
        CompileOptions(target=TARGET, objective="fastest")


def test_one_artifact_two_libraries_one_digest(opencl_device: dict, tmp_path: Path) -> None:
    """Both kernel libraries are checked against the one manifest; a transfer step edited is refused."""
    result = compile_split(Path(EMBEDDED_MODEL), tmp_path / "d.hai", DIGITS, placement="Conv=opencl:cpu")
    manifest_path = result.path / MANIFEST_FILE
    data = json.loads(manifest_path.read_text())
    assert set(data["kernel_libraries"]) == {"cpu", "opencl"}
    assert data["target"]["name"] == TARGET
    step = next(s for s in data["plan"]["steps"] if s["transfer_from"])
    step["transfer_from"] = "npu"
    manifest_path.write_text(json.dumps(data))
    with pytest.raises(ArtifactError, match="transfer step .* from 'npu'"):
        runtime.load(result.path, verify=False)


def split_devices(folder: Path, opencl_ops: list[str] | None) -> str:
    """The `passes` of a compile whose partition weighs a device set where the OpenCL device computes
    100x faster over shared memory, with only `opencl_ops` (None: all)."""
    devices = {
        "devices": [
            {"name": "cpu", "flops": 1e9, "bandwidth": 1e10},
            {"name": OPENCL, "flops": 1e11, "bandwidth": 1e12, "ops": opencl_ops},
        ],
        "links": [{"a": "cpu", "b": OPENCL, "bandwidth": 1e10, "shared_memory": True}],
    }
    (folder / "devices.json").write_text(json.dumps(devices))
    return f'default,partition{{devices="{folder / "devices.json"}"}}'


def test_automatic_placement_uses_both_devices(opencl_device: dict, tmp_path: Path) -> None:
    """Where the OpenCL device is faster but has no Gemm, the convs go there and the Gemm stays on the
    host; the artifact matches onnxruntime."""
    model = Path(EMBEDDED_MODEL)
    passes = split_devices(tmp_path, ["Conv", "Relu", "ReduceMean"])
    result = compile_split(model, tmp_path / "d.hai", DIGITS, passes=passes)
    device_of = {n.op: node_device(n) for n in result.graph.nodes if n.op != "Transfer"}
    assert device_of["Conv"] == OPENCL and device_of["Gemm"] == "cpu"
    check_partition(result)
    check_run(result, model, digits_inputs())


@pytest.mark.slow
@pytest.mark.parametrize("split", ["estimated", "opencl-without-softmax"])
def test_automatic_placement_of_a_dev_model(opencl_device: dict, split: str, tmp_path: Path) -> None:
    """PP-OCR cls placed by the target's own estimates (targets/device_models.py), and over a faster
    OpenCL device lacking Softmax (both devices then run kernels): it matches onnxruntime."""
    spec = real_models.MODELS["ppocr_cls"]
    path = real_models.fetch("ppocr_cls")
    options = {}
    if split != "estimated":
        ops = sorted(set(supported_ops()) - {"Softmax"})
        options["passes"] = split_devices(tmp_path, ops)
    result = compile_split(path, tmp_path / "m.hai", dict(spec.input_shapes), **options)
    assert result.partition is not None
    if split != "estimated":
        assert {s.device for s in result.plan.plan.steps if not s.transfer_from} == {"cpu", "opencl"}
    check_partition(result)
    loaded = check_run(result, path, spec.sample_inputs())
    transfers = sum(1 for s in result.plan.plan.steps if s.transfer_from)
    assert loaded.transfer_counters()["transfers"] == transfers


def scatter_model(path: Path) -> Path:
    """x + 1 with one row replaced by ScatterND (a CPU loop nest, which OpenCL has no kernel for)."""
    nodes = [
        helper.make_node("Add", ["x", "one"], ["y"], name="add"),
        helper.make_node("ScatterND", ["y", "indices", "updates"], ["z"], name="scatter"),
    ]
    graph = helper.make_graph(
        nodes,
        "scatter",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 3])],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, [4, 3])],
        [
            helper.make_tensor("one", TensorProto.FLOAT, [], [1.0]),
            helper.make_tensor("indices", TensorProto.INT64, [1, 1], [2]),
            helper.make_tensor("updates", TensorProto.FLOAT, [1, 3], [7.0, 8.0, 9.0]),
        ],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


def test_op_without_opencl_kernel_stays_on_the_host(opencl_device: dict, tmp_path: Path) -> None:
    model = scatter_model(tmp_path / "s.onnx")
    result = compile_split(model, tmp_path / "s.hai", {}, placement="add=opencl:cpu")
    assert {n.name: node_device(n) for n in result.graph.nodes if n.name} == {"add": OPENCL, "scatter": "cpu"}
    x = np.arange(12, dtype=np.float32).reshape(4, 3)
    check_run(result, model, {"x": x})


@pytest.mark.parametrize(
    ("placement", "message"),
    [
        (
            "scatter=opencl:cpu",
            "scatter.* cannot run on opencl:cpu: opencl:cpu has no kernel for op ScatterND",
        ),
        ("add=opencl:gpu", "add=opencl:gpu: no device opencl:gpu"),
        ("nothing*=opencl:cpu", "matches no node"),
    ],
)
def test_impossible_forced_placement_is_refused(
    opencl_device: dict, tmp_path: Path, placement: str, message: str
) -> None:
    model = scatter_model(tmp_path / "s.onnx")
    with pytest.raises(HaiError, match=message):
        compile_split(model, tmp_path / "s.hai", {}, placement=placement)


def test_device_missing_at_run_time_names_node_and_device(opencl_device: dict, tmp_path: Path) -> None:
    """Compiled for an OpenCL GPU (the H100 preset): a machine without one refuses to load it."""
    options = CompileOptions(target="x86+opencl:gpu", opencl_profile="nvidia-h100", input_shapes=DIGITS,
                             placement="Conv=opencl:gpu")  # fmt: skip
    artifact = compile_model(Path(EMBEDDED_MODEL), tmp_path / "g.hai", options).path
    if any(d.kind == "gpu" for d in runtime.get_driver("opencl").probe()):
        pytest.skip("this machine has an OpenCL GPU")
    with pytest.raises(
        DeviceNotFoundError, match="node_conv2d.* on device opencl:gpu.* no opencl device of kind gpu"
    ):
        runtime.load(artifact)
    with pytest.raises(DeviceNotFoundError, match="OpenCL device 7.*node_conv2d"):
        runtime.load(artifact, device="opencl:7")


def test_bad_device_options_are_refused() -> None:
    with pytest.raises(CompileOptionError, match="--placement .* --target x86 has one"):
        CompileOptions(target="x86", placement="Conv=opencl")
    with pytest.raises(TargetError, match="OpenCL profile 'pocl-cpu' is a CPU device"):
        compile_model(Path(EMBEDDED_MODEL), "unused.hai", CompileOptions(
            target="x86+opencl:gpu", opencl_profile="pocl-cpu", input_shapes=DIGITS))  # fmt: skip


def hai(*args: object):  # type: ignore[no-untyped-def]
    from typer.testing import CliRunner

    from hai_compiler.cli import app

    return CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)


def test_cli_placement_report_and_printed_placements(opencl_device: dict, tmp_path: Path) -> None:
    """`hai compile --target x86+opencl:cpu --placement ... --report --print-ir-after partition`, then
    `hai bench` reports the transfers; a target naming an unknown device is refused by typer."""
    artifact = tmp_path / "d.hai"
    compiled = hai("compile", EMBEDDED_MODEL, "--input-shape", "image=1,1,8,8", "--target", TARGET,
                   "--opencl-profile", "pocl-cpu", "--placement", f"Conv={OPENCL}", "--report",
                   "--print-ir-after", "partition", "-o", artifact)  # fmt: skip
    assert compiled.exit_code == 0, compiled.output
    assert f'{{device = "{OPENCL}"}}' in compiled.output  # the placements, printed after the pass
    assert "partition (latency)" in compiled.output and f"{OPENCL}: 6 nodes" in compiled.output
    assert "2 transfers per inference" in compiled.output
    assert f"for {TARGET} (" in compiled.output
    benched = hai("bench", artifact, "--runs", "3")
    assert benched.exit_code == 0, benched.output
    assert "transfers between devices per inference: 2, 4352 bytes" in benched.output
    refused = hai("compile", EMBEDDED_MODEL, "--target", "x86+cuda", "-o", tmp_path / "x.hai")
    assert refused.exit_code == 2 and "'cuda' is not a device target" in refused.output


@pytest.mark.parametrize("source", ["hardware-profile", "this-machine"])
def test_the_opencl_part_from_a_profile_or_this_machine(
    opencl_device: dict, source: str, tmp_path: Path
) -> None:
    """Without --opencl-profile, the OpenCL part is the `hai doctor` profile's device of the named kind,
    else this machine's; the host part is the profile's CPU. It runs here."""
    from hai_compiler import doctor

    options: dict = {"target": "x86+opencl", "input_shapes": DIGITS, "placement": "Conv=opencl"}
    if source == "hardware-profile":
        (tmp_path / "profile.json").write_text(json.dumps(doctor.scan()))
        options["hardware_profile"] = tmp_path / "profile.json"
    result = compile_model(Path(EMBEDDED_MODEL), tmp_path / "d.hai", CompileOptions(**options))
    assert result.devices.of("opencl").cpu == opencl_device["name"]  # type: ignore[union-attr]
    check_run(result, Path(EMBEDDED_MODEL), digits_inputs())
    present = {d.kind for d in runtime.get_driver("opencl").probe()}
    wrong = next(k for k in ("accelerator", "gpu", "cpu") if k not in present)  # a kind this machine lacks
    with pytest.raises(HaiError, match=f"opencl:{wrong}"):
        compile_model(
            Path(EMBEDDED_MODEL),
            tmp_path / "w.hai",
            CompileOptions(**{**options, "target": f"x86+opencl:{wrong}", "placement": ""}),
        )


def test_an_arm64_host_beside_opencl(opencl_device: dict, tmp_path: Path) -> None:
    """`arm64+opencl:cpu` cross-compiles: the manifest's target is the spelling with the arm64 host's
    arch, cpu and features, and it holds an aarch64 library and an OpenCL one."""
    if shutil.which("aarch64-linux-gnu-gcc") is None:
        pytest.skip("no aarch64-linux-gnu-gcc (Debian's gcc-aarch64-linux-gnu) to link arm64 kernels")
    options = CompileOptions(target="arm64+opencl:cpu", opencl_profile="pocl-cpu", input_shapes=DIGITS,
                             placement=f"Conv={OPENCL}")  # fmt: skip
    result = compile_model(Path(EMBEDDED_MODEL), tmp_path / "a.hai", options)
    manifest = json.loads((result.path / MANIFEST_FILE).read_text())
    assert manifest["target"]["name"] == "arm64+opencl:cpu" and manifest["target"]["arch"] == "aarch64"
    assert set(manifest["kernel_libraries"]) == {"cpu", "opencl"}
    check_partition(result)


def test_placement_beside_a_partition_of_ones_own_is_refused(tmp_path: Path) -> None:
    options = CompileOptions(target=TARGET, passes=split_devices(tmp_path, None), placement="Conv=cpu")
    with pytest.raises(CompileOptionError, match="give partition.placement=.* there instead"):
        options.pipeline(True)


def test_a_placement_on_a_device_the_target_lacks_is_refused(tmp_path: Path) -> None:
    """A partition over a device set of its own, compiled for the CPU alone, names the node and device."""
    options = CompileOptions(target="x86", input_shapes=DIGITS, passes=split_devices(tmp_path, None))
    with pytest.raises(
        HaiError, match="node .* is placed on device opencl:cpu, which --target x86 does not name"
    ):
        compile_model(Path(EMBEDDED_MODEL), tmp_path / "d.hai", options)
