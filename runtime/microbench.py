"""Measure each device with the prebuilt microbenchmark artifacts: what `hai doctor --measure` stores in
the hardware profile's `measured` section, and what a `hai pack` bundle measures without the compiler.

Rule: the folder's `microbench.json` (hai_compiler/microbench.py) lists per target its cases. The
host target's run on the CPU, OpenCL's on every OpenCL device found. Each case's steps are timed alone
(runtime/step_timing.py, the fastest of `runs`: what the device achieves, steady on a shared host);
the case's time is their sum. From them:
- `flops[dtype]`: the GEMM's FLOPs / its time (`gemm_n`: its n); "unsupported" where the case did
  not compile or the device cannot load or run it (`unsupported[dtype]` says why);
- `bandwidth`: per streaming Add, its bytes and bytes / time beyond a launch (at least a tenth of
  the time; the working set decides which cache level serves it, so the cost model interpolates by
  size and adds the launch once);
- `launch_seconds`: the one-element Add's time;
- `transfer` (a device with memory of its own, not the host CPU): `copy_in`, `copy_out` (copies
  through the driver) and `zero_copy` (map + unmap of a buffer, all a zero-copy transfer costs),
  each with its `latency_seconds` (a 64-byte transfer) and `bytes_per_second` (the largest stream
  size, less that latency; null where the size makes no measurable difference: shared memory).
Imports numpy, the standard library and `runtime`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from runtime.errors import HaiRuntimeError
from runtime.hai import Device, get_driver
from runtime.model import load
from runtime.plan_devices import HOST_DEVICE
from runtime.step_timing import time_steps
from runtime.transfer_bench import random_inputs

VERSION = 1
"""The `measured` section's version (docs/hardware_profile.schema.json)."""
LATENCY_BYTES = 64
SIZE_INDEPENDENT = 0.05
"""A transfer of the largest size at most this fraction slower than a 64-byte one costs nothing per
byte (shared memory): its `bytes_per_second` is null."""
HOST_TARGETS = ("x86", "arm64")


def read_index(folder: Path) -> dict[str, Any]:
    try:
        index = json.loads((folder / "microbench.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise HaiRuntimeError(f"{folder}: no readable microbench.json ({exc}); build it with "
                              f"`hai doctor --measure` or `hai pack --microbench`") from None  # fmt: skip
    if index.get("version") != 1:
        raise HaiRuntimeError(f"{folder}/microbench.json: version {index.get('version')}, expected 1")
    return index


def case_seconds(artifact: Path, device: str | None, threads: int | None, runs: int) -> float:
    """The sum of the artifact's steps' fastest times on `device`."""
    model = load(artifact, threads=threads, device=device)
    try:
        steps = time_steps(model, random_inputs(model.inputs), runs, best=True)
        return sum(s.median_us for s in steps) * 1e-6
    finally:
        model.close()


def measure_cases(folder: Path, entry: dict[str, Any], device: str | None, threads: int | None,
                  runs: int) -> dict[str, Any]:  # fmt: skip
    """The figures of one device from one target's cases (the module rule)."""
    flops: dict[str, Any] = {}
    unsupported: dict[str, str] = {}
    streams: list[tuple[int, float]] = []
    launch, gemm_n = 0.0, None
    for case in entry["cases"]:
        reason = case.get("unsupported")
        seconds = None
        if reason is None:
            try:
                seconds = case_seconds(folder / case["artifact"], device, threads, runs)
            except HaiRuntimeError as exc:
                reason = f"{type(exc).__name__}: {exc}"
        if case["kind"] == "gemm":
            flops[case["dtype"]] = case["flops"] / seconds if seconds else "unsupported"
            gemm_n = case["n"]
            if reason is not None:
                unsupported[case["dtype"]] = reason
            continue
        if seconds is None:
            raise HaiRuntimeError(f"microbenchmark {case['name']} failed on {device or 'cpu'}: {reason}")
        if case["kind"] == "stream":
            streams.append((case["bytes"], seconds))
        else:
            launch = seconds
    bandwidth = [{"bytes": nbytes, "bytes_per_second": nbytes / max(seconds - launch, seconds / 10)}
                 for nbytes, seconds in streams]  # fmt: skip
    return {"flops": flops, "gemm_n": gemm_n, "unsupported": unsupported, "bandwidth": bandwidth,
            "launch_seconds": launch}  # fmt: skip


def best_seconds(action: Callable[[], object], device: Device, runs: int) -> float:
    """The fastest time of `action` until `device` has finished, after one warm-up."""
    samples = []
    for _ in range(max(runs, 1) + 1):
        start = time.perf_counter()
        action()
        device.synchronize()
        samples.append(time.perf_counter() - start)
    return min(samples[1:])


def transfer_seconds(device: Device, mode: str, size: int, runs: int) -> float:
    """Median seconds of one `mode` transfer of `size` bytes (module rule)."""
    buffer = device.allocate(size, label=f"microbench {mode}")
    host = np.ones(size, np.uint8)
    try:
        if mode == "copy_in":
            return best_seconds(lambda: device.copy_in(buffer, host), device, runs)
        if mode == "copy_out":
            return best_seconds(lambda: device.copy_out(buffer, 0, (size,), "u1"), device, runs)
        return best_seconds(lambda: device.unmap(device.map(buffer)), device, runs)
    finally:
        device.free(buffer)


def transfer_figures(device: Device, nbytes: int, runs: int) -> dict[str, dict[str, float | None]]:
    """Latency and bandwidth of copies in, copies out and zero-copy map + unmap on `device`."""
    figures = {}
    for mode in ("copy_in", "copy_out", "zero_copy"):
        latency = transfer_seconds(device, mode, LATENCY_BYTES, runs)
        spread = transfer_seconds(device, mode, nbytes, runs) - latency
        per_byte = (nbytes - LATENCY_BYTES) / spread if spread > SIZE_INDEPENDENT * latency else None
        figures[mode] = {"latency_seconds": latency, "bytes_per_second": per_byte}
    return figures


def measure(folder: str | Path, runs: int = 20, threads: int | None = None) -> dict[str, Any]:
    """The `measured` section for every device the folder's targets run on (the module rule)."""
    folder = Path(folder)
    index = read_index(folder)
    devices = []
    for entry in index["targets"]:
        found: list[tuple[str, str | None, dict[str, str]]]
        if entry["target"] in HOST_TARGETS:
            found = [(HOST_DEVICE, None, {"name": get_driver(HOST_DEVICE).probe()[0].name, "kind": "cpu"})]
        else:
            infos = get_driver(entry["target"]).probe()
            found = [(f"{entry['target']}:{i.index}", f"{entry['target']}:{i.index}",
                      {"name": i.name, "kind": i.kind}) for i in infos]  # fmt: skip
        for name, device, info in found:
            figures = measure_cases(folder, entry, device, threads, runs)
            transfer = None
            if device is not None:
                driver, _, number = device.partition(":")
                with get_driver(driver).open(int(number)) as opened:
                    largest = max((b["bytes"] for b in figures["bandwidth"]), default=1 << 20)
                    transfer = transfer_figures(opened, largest, runs)
            devices.append({"device": name, **info, "target": entry["target"], "cpu": entry.get("cpu"),
                            "threads": threads, "runs": runs, **figures, "transfer": transfer})  # fmt: skip
    return {"version": VERSION, "devices": devices}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m runtime.microbench", description=__doc__)
    parser.add_argument("folder", type=Path, help="the microbenchmark folder (microbench.json)")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--json", dest="json_path", default="-", metavar="FILE", help="- : stdout")
    args = parser.parse_args(argv)
    try:
        result = measure(args.folder, args.runs, args.threads)
    except HaiRuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    text = json.dumps(result, indent=2) + "\n"
    if args.json_path == "-":
        sys.stdout.write(text)
    else:
        Path(args.json_path).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
