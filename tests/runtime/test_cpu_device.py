"""The CPU driver does what HAI promises: aligned buffers, exact copies, zero-copy maps, real kernel
launches through tvm_ffi (kernels built here with TVM; skipped without it), and the three extensions
on a fake /sys tree. References are numpy and the operating system, never our own output."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from runtime.devices.cpu import CpuDevice, CpuDriver
from runtime.errors import DeviceBufferError, KernelError, UnsupportedError
from runtime.fd_library import OpenFile
from runtime.hai import BufferView, Device, Unbound, open_device
from runtime.kernel_library import aligned_empty

N = 4096
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def cpu() -> CpuDevice:
    device = open_device("cpu")
    assert isinstance(device, CpuDevice)
    return device


@pytest.fixture(scope="module")
def kernels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A library with `add(A, B, C)` (serial) and `scale(A, D)` = 2A (parallel, vectorised), built by TVM."""
    tvm = pytest.importorskip("tvm")
    from tvm import te

    a = te.placeholder((N,), "float32", name="A")
    b = te.placeholder((N,), "float32", name="B")
    c = te.compute((N,), lambda i: a[i] + b[i], name="C")
    d = te.compute((N,), lambda i: a[i] * 2.0, name="D")
    mod = tvm.IRModule(
        {
            "add": te.create_prim_func([a, b, c]).with_attr("global_symbol", "add"),
            "scale": te.create_prim_func([a, d]).with_attr("global_symbol", "scale"),
        }
    )
    sch = tvm.s_tir.Schedule(mod)
    sch.work_on("scale")
    (loop,) = sch.get_loops(sch.get_sblock("D"))
    outer, inner = sch.split(loop, [None, 16])
    sch.parallel(outer)
    sch.vectorize(inner)
    target = tvm.target.Target({"kind": "llvm", "mcpu": tvm.target.codegen.llvm_get_system_cpu()})
    path = tmp_path_factory.mktemp("kernels") / "kernels.so"
    tvm.compile(sch.mod, target=target).export_library(str(path))
    return path


def test_probe_finds_this_host() -> None:
    (info,) = CpuDriver().probe()
    assert info.kind == "cpu" and info.driver == "cpu"
    assert info.properties["threads"] == os.cpu_count()
    assert 1 <= info.properties["physical_cores"] <= info.properties["threads"]


def test_open_rejects_unknown_index_and_option() -> None:
    with pytest.raises(Exception, match="no device 1"):
        CpuDriver().open(1)
    with pytest.raises(UnsupportedError, match="'bogus'"):
        CpuDriver().open(0, bogus=3)


def test_capabilities_and_memory(cpu: CpuDevice) -> None:
    caps = cpu.capabilities()
    assert caps.alignment == 64 and caps.host_visible and caps.kind == "cpu"
    assert caps.extensions == ("power", "thermal", "profiling")
    page_bytes = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    assert caps.memory_bytes == page_bytes
    before = cpu.query_memory()
    buf = cpu.allocate(1 << 20)
    during = cpu.query_memory()
    assert during.allocated_bytes - before.allocated_bytes == 1 << 20 and during.live_buffers == 1
    cpu.free(buf)
    after = cpu.query_memory()
    assert after.allocated_bytes == 0 and after.peak_allocated_bytes == 1 << 20
    assert 0 < after.available_bytes <= after.total_bytes == page_bytes


@pytest.mark.parametrize("nbytes", [0, 1, 63, 64, 1000, 1 << 16])
def test_allocation_is_64_byte_aligned(cpu: CpuDevice, nbytes: int) -> None:
    buffers = [cpu.allocate(nbytes) for _ in range(8)]
    for buf in buffers:
        assert buf.handle.ctypes.data % 64 == 0 and buf.handle.nbytes == nbytes
    page = cpu.allocate(nbytes, alignment=4096)
    assert page.handle.ctypes.data % 4096 == 0


def test_bad_allocations(cpu: CpuDevice) -> None:
    with pytest.raises(DeviceBufferError):
        cpu.allocate(-1)
    with pytest.raises(DeviceBufferError):
        cpu.allocate(16, alignment=96)


def test_copy_round_trip(cpu: CpuDevice) -> None:
    rng = np.random.default_rng(0)
    floats = rng.standard_normal((7, 5)).astype(np.float32)
    ints = rng.integers(-128, 127, size=33, dtype=np.int8)
    buf = cpu.allocate(4096)
    cpu.copy_in(buf, floats, offset=128)
    cpu.copy_in(buf, ints, offset=1024)
    np.testing.assert_array_equal(cpu.copy_out(buf, 128, (7, 5), np.float32), floats)
    np.testing.assert_array_equal(cpu.copy_out(buf, 1024, (33,), "i1"), ints)
    transposed = floats.T  # not contiguous: copied in C order
    cpu.copy_in(buf, transposed, offset=0)
    np.testing.assert_array_equal(cpu.copy_out(buf, 0, (5, 7), "f4"), transposed)
    assert cpu.copy_out(buf, 0, (5, 7), "f4").ctypes.data % 64 == 0


def test_map_is_zero_copy(cpu: CpuDevice) -> None:
    buf = cpu.allocate(256)
    view = cpu.map(buf, 64, (4, 4), np.float32)
    assert np.shares_memory(view, buf.handle) and view.ctypes.data % 64 == 0
    view[:] = np.arange(16, dtype=np.float32).reshape(4, 4)
    cpu.unmap(view)
    np.testing.assert_array_equal(cpu.copy_out(buf, 64, (16,), "f4"), np.arange(16, dtype=np.float32))
    assert cpu.map(buf).shape == (256,)


def test_buffer_misuse_is_reported(cpu: CpuDevice) -> None:
    buf = cpu.allocate(64, label="arena")
    with pytest.raises(DeviceBufferError, match="does not fit in buffer 'arena'"):
        cpu.copy_in(buf, np.zeros(17, np.float32))
    with pytest.raises(DeviceBufferError, match="does not fit"):
        cpu.map(buf, 32, (16,), np.float32)
    other = open_device("cpu")
    with pytest.raises(DeviceBufferError, match="does not belong"):
        other.free(buf)
    cpu.free(buf)
    with pytest.raises(DeviceBufferError, match="already freed"):
        cpu.free(buf)
    with pytest.raises(DeviceBufferError, match="already freed"):
        cpu.copy_out(buf, 0, (1,), "f4")


def test_close_frees_everything() -> None:
    with open_device("cpu") as device:
        assert isinstance(device, Device)
        bufs = [device.allocate(100) for _ in range(3)]
    assert all(b.freed for b in bufs) and device.query_memory().live_buffers == 0


def test_launch_serial_kernel_on_device_buffers(cpu: CpuDevice, kernels: Path) -> None:
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal(N).astype(np.float32), rng.standard_normal(N).astype(np.float32)
    arena = cpu.allocate(3 * N * 4)
    cpu.copy_in(arena, a, 0)
    cpu.copy_in(arena, b, N * 4)
    exe = cpu.load_executable(str(kernels))
    f32 = np.dtype(np.float32)
    views = [BufferView(arena, i * N * 4, (N,), f32) for i in range(3)]
    cpu.set_profiling(True)
    cpu.launch(exe, "add", views)
    cpu.synchronize()
    np.testing.assert_array_equal(cpu.copy_out(arena, 2 * N * 4, (N,), f32), a + b)
    counters = cpu.counters()
    assert counters["launches"] == 1 and counters["launch_seconds"] > 0
    assert counters["bytes_copied_in"] == 2 * N * 4 and counters["bytes_copied_out"] == N * 4


def test_launch_parallel_kernel_on_aligned_arrays(cpu: CpuDevice, kernels: Path) -> None:
    exe = cpu.load_executable(str(kernels))
    a = aligned_empty((N,), np.float32)
    a[:] = np.linspace(-3, 3, N, dtype=np.float32)
    d = aligned_empty((N,), np.float32)
    for _ in range(3):
        cpu.launch(exe, "scale", [a, d])
    np.testing.assert_array_equal(d, a * 2)


def test_launch_refuses_what_would_crash(cpu: CpuDevice, kernels: Path) -> None:
    exe = cpu.load_executable(str(kernels))
    raw = aligned_empty((N + 1,), np.float32)
    good, misaligned = aligned_empty((N,), np.float32), raw[1:]
    with pytest.raises(KernelError, match="not 64-byte aligned"):
        cpu.launch(exe, "scale", [misaligned, good])
    readonly = aligned_empty((N,), np.float32)
    readonly.flags.writeable = False
    with pytest.raises(KernelError, match="read-only"):
        cpu.launch(exe, "scale", [readonly, good])
    with pytest.raises(KernelError, match="no kernel named 'nope'"):
        cpu.launch(exe, "nope", [good, good])
    with pytest.raises(KernelError, match=r"kernel 'scale' failed: .*shape"):
        cpu.launch(exe, "scale", [aligned_empty((N // 2,), np.float32), good])
    with pytest.raises(KernelError, match="does not exist"):
        cpu.load_executable(str(kernels.with_name("missing.so")))


def test_recorded_launch_runs_again_on_rebound_inputs(cpu: CpuDevice, kernels: Path) -> None:
    """`record` converts the arguments once; each `run` launches again, an `Unbound` argument bound to
    the array given before it (`bind`), as a model binds its inputs."""
    exe = cpu.load_executable(str(kernels))
    f32 = np.dtype(np.float32)
    b, c = aligned_empty((N,), f32), aligned_empty((N,), f32)
    b[:] = np.arange(N, dtype=np.float32)
    launch = cpu.record(exe, "add", [Unbound((N,), f32), b, c])
    for seed in range(3):
        a = aligned_empty((N,), f32)
        a[:] = np.random.default_rng(seed).standard_normal(N)
        launch.bind(0, a)
        launch.run()
        np.testing.assert_array_equal(c, a + b)
    with pytest.raises(KernelError, match="launch takes arrays; record it"):
        cpu.launch(exe, "add", [Unbound((N,), f32), b, c])


def test_executable_loads_through_its_verified_descriptor(
    cpu: CpuDevice, kernels: Path, tmp_path: Path
) -> None:
    """Given an `OpenFile`, the driver loads the file open on the descriptor: the path may name another
    file by then (here: none at all) without changing what is loaded."""
    copy = tmp_path / "verified.so"
    copy.write_bytes(kernels.read_bytes())
    fd = os.open(copy, os.O_RDONLY)
    try:
        copy.unlink()
        exe = cpu.load_executable(OpenFile(copy, fd))
    finally:
        os.close(fd)
    a, d = aligned_empty((N,), np.float32), aligned_empty((N,), np.float32)
    a[:] = 0.25
    cpu.launch(exe, "scale", [a, d])
    np.testing.assert_array_equal(d, a * 2)


def test_runtime_runs_kernels_without_the_compiler(kernels: Path) -> None:
    """In a fresh process: load and launch through the runtime alone; `tvm` must never be imported."""
    script = textwrap.dedent(
        f"""
        import sys
        import numpy as np
        from runtime.hai import open_device
        from runtime.kernel_library import aligned_empty
        dev = open_device("cpu", threads=2)
        exe = dev.load_executable({str(kernels)!r})
        a = aligned_empty(({N},), np.float32); a[:] = 1.5
        d = aligned_empty(({N},), np.float32)
        dev.launch(exe, "scale", [a, d])
        assert (d == 3.0).all()
        heavy = sorted(m for m in sys.modules if m.split(".")[0] in {{"tvm", "onnx", "torch", "lark", "ir"}})
        print("heavy:", heavy)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "heavy: []" in done.stdout


# -- extensions on a fake /sys tree -----------------------------------------------------------------


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n")


@pytest.fixture
def fake_root(tmp_path: Path) -> Path:
    """Four logical cpus on two hyper-threaded cores, one thermal zone, one cpufreq policy."""
    write(
        tmp_path / "proc/cpuinfo",
        "\n".join(f"processor\t: {n}\nflags\t: fpu sse sse2 avx2\n" for n in range(4)),
    )
    write(tmp_path / "proc/meminfo", "MemTotal:  8000 kB\nMemFree:  1000 kB\nMemAvailable:  6000 kB")
    cpu_dir = tmp_path / "sys/devices/system/cpu"
    write(cpu_dir / "online", "0-3")
    for n in range(4):
        write(cpu_dir / f"cpu{n}/topology/core_id", str(n // 2))
        write(cpu_dir / f"cpu{n}/topology/physical_package_id", "0")
        for index, (level, kind, size, shared) in enumerate(
            [
                (1, "Data", "48K", f"{n}"),
                (2, "Unified", "2048K", f"{n - n % 2}-{n - n % 2 + 1}"),
                (3, "Unified", "30M", "0-3"),
            ]
        ):
            cache = cpu_dir / f"cpu{n}/cache/index{index}"
            for name, value in [
                ("level", level),
                ("type", kind),
                ("size", size),
                ("shared_cpu_list", shared),
            ]:
                write(cache / name, str(value))
    zone = tmp_path / "sys/class/thermal/thermal_zone0"
    for name, value in [
        ("type", "x86_pkg_temp"),
        ("temp", "47500"),
        ("trip_point_0_type", "passive"),
        ("trip_point_0_temp", "90000"),
        ("trip_point_1_type", "critical"),
        ("trip_point_1_temp", "105000"),
    ]:
        write(zone / name, value)
    policy = cpu_dir / "cpufreq/policy0"
    for name, value in [
        ("scaling_governor", "powersave"),
        ("cpuinfo_min_freq", "800000"),
        ("cpuinfo_max_freq", "3500000"),
        ("scaling_available_governors", "performance powersave"),
    ]:
        write(policy / name, value)
    return tmp_path


def test_fake_host_topology_and_caches(fake_root: Path) -> None:
    device = CpuDriver(fake_root).open()
    facts = device.info.properties
    assert (facts["threads"], facts["physical_cores"], facts["sockets"]) == (4, 2, 1)
    caches = {c["name"]: (c["size_bytes"], c["instances"], c["shared_by_threads"]) for c in facts["caches"]}
    assert caches == {"L1d": (48 << 10, 4, 1), "L2": (2 << 20, 2, 2), "L3": (30 << 20, 1, 4)}
    assert device.capabilities().cache_bytes == {"L1d": 48 << 10, "L2": 2 << 20, "L3": 30 << 20}
    memory = device.query_memory()
    assert (memory.total_bytes, memory.available_bytes) == (8000 * 1024, 6000 * 1024)


def test_thermal_extension(fake_root: Path) -> None:
    (reading,) = CpuDriver(fake_root).open().thermal_readings()
    assert (reading.sensor, reading.kind, reading.celsius, reading.critical_celsius) == (
        "thermal_zone0",
        "x86_pkg_temp",
        47.5,
        105.0,
    )


def test_power_extension(fake_root: Path) -> None:
    device = CpuDriver(fake_root).open()
    assert device.power_policies() == ("performance", "powersave")
    assert device.power_policy() == "powersave"
    device.set_power_policy("performance")
    assert device.power_policy() == "performance"
    with pytest.raises(UnsupportedError, match="'ondemand' is not offered"):
        device.set_power_policy("ondemand")
