"""The `opencl` HAI driver on this machine's OpenCL device (PoCL in CI): the program-binary cache and
its hash check, build logs, device selection, alignment of views, a profile from `hai doctor`."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

import runtime
from hai_compiler import doctor
from hai_compiler.compiler import CompileOptions, compile_model
from hai_compiler.demo import EMBEDDED_MODEL, load_heldout_digits
from runtime.devices import opencl_programs
from runtime.devices.opencl import OpenCLDriver
from runtime.errors import DeviceNotFoundError, InvalidArgumentError, KernelError, UnsupportedError

pytest.importorskip("pyopencl")

SOURCE = "__kernel void twice(__global float* restrict x) { x[get_global_id(0)] *= 2.0f; }\n"


@pytest.fixture
def device(opencl_device: dict):  # noqa: ANN201
    with OpenCLDriver().open(0) as opened:
        yield opened


def test_program_binaries_are_cached_and_hash_checked(device, monkeypatch, tmp_path: Path) -> None:  # noqa: ANN001
    monkeypatch.setenv("HAI_CACHE_DIR", str(tmp_path))
    source = SOURCE.replace("2.0f", "3.0f")  # a source no other test builds
    _, cached = opencl_programs.build_program(device.context, device.cl_device, source, "test")
    assert not cached
    assert opencl_programs.build_program(device.context, device.cl_device, source, "test")[1]
    (binary,) = (tmp_path / "opencl").glob("*.bin")
    data = binary.read_bytes()
    binary.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))  # tampered: its sha256 no longer matches
    program, cached = opencl_programs.build_program(device.context, device.cl_device, source, "test")
    assert not cached
    buffer = device.allocate(16)
    device.copy_in(buffer, np.arange(4, dtype=np.float32))
    program.twice(device.queue, (4,), None, buffer.handle)
    assert device.copy_out(buffer, 0, (4,), "float32").tolist() == [0.0, 3.0, 6.0, 9.0]


def test_a_program_that_fails_to_build_carries_the_log(device) -> None:  # noqa: ANN001
    with pytest.raises(KernelError, match=r"(?s)failed to build on .*expected parameter declarator"):
        opencl_programs.build_program(device.context, device.cl_device, "__kernel void broken( {", "lib.json")


def test_a_build_error_leads_with_the_failing_lines_of_the_log() -> None:
    """NVIDIA's log (as the H100 gave it) starts with a warning per kernel; the error line comes first."""
    log = (
        "clBuildProgram failed: BUILD_PROGRAM_FAILURE\n\nBuild on <device>:\n\n"
        + "(): Warning: Function hai_k is a kernel, so overriding noinline attribute.\n" * 40
        + "ptxas error   : Entry function 'hai_k' uses too much shared data (0x1fb404 bytes, 0x38c00 max)\n"
    )
    assert opencl_programs.build_errors(log) == (
        "ptxas error   : Entry function 'hai_k' uses too much shared data (0x1fb404 bytes, 0x38c00 max)"
    )
    assert opencl_programs.build_errors("no such line\nsecond") == "no such line"


def test_views_are_their_buffer_and_an_element_offset(device, tmp_path: Path) -> None:  # noqa: ANN001
    """Two views of one buffer, neither at the base-address alignment, one kernel reading the first
    and writing the second: passed as the buffer and each view's element offset (no sub-buffers)."""
    from runtime.hai import BufferView
    from targets.opencl.build import LIBRARY_FORMAT, with_offsets

    source = with_offsets(
        "__kernel void hai_k_kernel(__global float* restrict a_ptr, __global float* restrict b_ptr) {\n"
        "  b_ptr[get_global_id(0)] = a_ptr[get_global_id(0)] * 2.0f;\n}\n"
    )
    launch = {"kernel": "hai_k_kernel", "global": [4, 1, 1], "local": [1, 1, 1],
              "args": [["param", 0, 4], ["param", 1, 4]]}  # fmt: skip
    kernel = {"launches": [launch], "scratch": [], "params": 2, "schedule": "Flat"}
    library = {"format": LIBRARY_FORMAT, "profile": {}, "source": source, "kernels": {"hai_k": kernel}}
    (tmp_path / "lib.json").write_text(json.dumps(library))
    executable = device.load_executable(tmp_path / "lib.json")
    buffer = device.allocate(64)
    device.copy_in(buffer, np.arange(16, dtype=np.float32))
    f32 = np.dtype("float32")
    views = [BufferView(buffer, 4, (4,), f32), BufferView(buffer, 36, (4,), f32)]
    device.record(executable, "hai_k", views).run()
    device.synchronize()
    expected = np.arange(16, dtype=np.float32)
    expected[9:13] = 2 * expected[1:5]
    np.testing.assert_array_equal(device.copy_out(buffer, 0, (16,), f32), expected)
    with pytest.raises(UnsupportedError, match="starts at byte 2, not a whole 4-byte element"):
        device.record(executable, "hai_k", [BufferView(buffer, 2, (4,), f32), views[1]])


def test_no_matching_device_is_named(opencl_device: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HAI_OPENCL_DEVICE", "no such device")
    assert OpenCLDriver().probe() == []
    with pytest.raises(DeviceNotFoundError, match="HAI_OPENCL_DEVICE='no such device'"):
        OpenCLDriver().open(0)


def test_no_platform_is_a_clear_error(opencl_device: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    """Where the ICD loader finds no platform, the error says so and how to get one (never a traceback)."""
    import pyopencl as cl

    def no_platform() -> list:
        raise cl.LogicError("clGetPlatformIDs failed: PLATFORM_NOT_FOUND_KHR")

    monkeypatch.setattr(cl, "get_platforms", no_platform)
    assert OpenCLDriver().probe() == []
    with pytest.raises(
        DeviceNotFoundError, match=r"no OpenCL platform: .*PLATFORM_NOT_FOUND_KHR.*pocl-opencl-icd"
    ):
        OpenCLDriver().open(0)


def test_a_filter_matching_no_device_names_the_devices(
    opencl_device: dict, tmp_path: Path, monkeypatch
) -> None:  # noqa: ANN001
    options = CompileOptions(target="opencl", cpu="pocl-cpu", input_shapes={"image": (1, 1, 8, 8)})
    artifact = compile_model(Path(EMBEDDED_MODEL), tmp_path / "d.hai", options).path
    monkeypatch.setenv("HAI_OPENCL_DEVICE", "no such device")
    with pytest.raises(
        DeviceNotFoundError, match=rf"'no such device' among .*{re.escape(opencl_device['name'])}"
    ):
        runtime.load(artifact)


@pytest.mark.parametrize("extension", ["cl_khr_fp16", "cl_hai_never_offered"])
def test_a_program_needing_a_missing_extension_is_refused(device, extension: str, tmp_path: Path) -> None:  # noqa: ANN001
    """An fp16 program on a device without cl_khr_fp16 (any extension its source enables) is refused
    before the build, naming the extension and the device."""
    if extension in device.cl_device.extensions.split():
        pytest.skip(f"{device.info.name} offers {extension}")
    library = tmp_path / "kernels.opencl.so"
    source = f"#pragma OPENCL EXTENSION {extension} : enable\n" + SOURCE
    library.write_text(
        json.dumps({"format": opencl_programs.LIBRARY_FORMAT, "source": source, "kernels": {}})
    )
    with pytest.raises(
        UnsupportedError,
        match=rf"needs the OpenCL extension\(s\) {extension}, which device '{re.escape(device.info.name)}",
    ):
        device.load_executable(library)


def test_an_extension_chain_needs_one_of_its_names() -> None:
    """TVM's fp16 prologue enables cl_khr_fp16, else cl_amd_fp16: a device with either one passes; a
    pragma outside a chain is needed itself."""
    chain = (
        "#ifdef cl_khr_fp16\n#pragma OPENCL EXTENSION cl_khr_fp16 : enable\n"
        "#elif defined(cl_amd_fp16)\n#pragma OPENCL EXTENSION cl_amd_fp16 : enable\n"
        '#else\n#error "Half precision floating point not supported"\n#endif\n'
    )
    alone = "#pragma OPENCL EXTENSION cl_khr_int64_base_atomics : enable\n"
    assert opencl_programs.required_extensions(chain * 2 + alone) == [
        ("cl_khr_fp16", "cl_amd_fp16"),
        ("cl_khr_int64_base_atomics",),
    ]


def test_compiled_for_the_doctor_profile(opencl_device: dict, tmp_path: Path) -> None:
    """`hai doctor` on this machine, then `--target opencl --hardware-profile`: the device's own facts
    (its base-address alignment) plan the artifact, which runs on it."""
    profile = tmp_path / "profile.json"
    profile.write_text(json.dumps(doctor.scan()))
    options = CompileOptions(target="opencl", hardware_profile=profile, input_shapes={"image": (1, 1, 8, 8)})
    result = compile_model(Path(EMBEDDED_MODEL), tmp_path / "d.hai", options)
    assert result.target.cpu == opencl_device["name"]
    assert result.target.buffer_alignment == max(64, opencl_device["base_align_bits"] // 8)
    assert all(b.offset % result.target.buffer_alignment == 0 for b in result.plan.outputs if b.offset)
    x, _ = load_heldout_digits()
    import onnxruntime as ort

    inputs = {"image": np.ascontiguousarray(x[:1])}
    want = ort.InferenceSession(str(EMBEDDED_MODEL), providers=["CPUExecutionProvider"]).run(None, inputs)[0]
    np.testing.assert_allclose(runtime.load(result.path).run(inputs)["logits"], want, rtol=1e-4, atol=1e-5)


def test_load_picks_the_device_by_index(opencl_device: dict, tmp_path: Path) -> None:
    options = CompileOptions(target="opencl", cpu="pocl-cpu", input_shapes={"image": (1, 1, 8, 8)})
    artifact = compile_model(Path(EMBEDDED_MODEL), tmp_path / "d.hai", options).path
    found = len(OpenCLDriver().probe())
    assert runtime.load(artifact, device="opencl:0").devices["opencl"].info.index == 0
    with pytest.raises(DeviceNotFoundError, match=f"no OpenCL device {found}: {found} found"):
        runtime.load(artifact, device=f"opencl:{found}")
    with pytest.raises(InvalidArgumentError, match=r"device 'cuda:0' is not NAME\[:INDEX\].*\(opencl\)"):
        runtime.load(artifact, device="cuda:0")
