"""Measure each device with the prebuilt microbenchmark artifacts: what `hai doctor --measure` stores in
the hardware profile's `measured` section, and what a `hai pack` bundle measures without the compiler.

Rule: the folder's `microbench.json` (hai_compiler/microbench.py) lists per target its cases. The
host target's run on the CPU, OpenCL's on every OpenCL device found. Each case's steps are timed alone
(runtime/step_timing.py, the fastest of `runs`: what the device achieves, steady on a shared host;
wall time, or with `cpu_time` the process's CPU time); the case's time is the sum of the steps made
from its kernel node, not the relayouts a layout pass put around it. From them:
- `flops[dtype]`: the GEMM's FLOPs / its time (`gemm_n`: its n); "unsupported" where the case did
  not compile or the device cannot load or run it (`unsupported[dtype]` says why);
- `dense_conv`: the pointwise conv's n and FLOP/s (null where it did not run);
- `bandwidth`: per streaming Add, its bytes and bytes / time beyond a launch (at least half the
  time, so that a noisy launch cannot inflate it). The working set decides which cache level
  serves it, so the cost model interpolates by size and adds the launch once;
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
Clock = Callable[[], float]
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


def made_from(nodes: tuple[str, ...], kernel: str) -> bool:
    """Whether a step comes from the case's `kernel` node (or the nodes an import split it into:
    `kernel/...`)."""
    return any(n == kernel or n.startswith(f"{kernel}/") for n in nodes)


def case_seconds(case: dict[str, Any], folder: Path, device: str | None, threads: int | None, runs: int,
                 clock: Clock) -> float:  # fmt: skip
    """The sum of the fastest times of the case's kernel steps on `device` (not the relayouts around)."""
    model = load(folder / case["artifact"], threads=threads, device=device)
    try:
        steps = time_steps(model, random_inputs(model.inputs), runs, best=True, clock=clock)
        return sum(s.median_us for s in steps if made_from(s.nodes, case["kernel"])) * 1e-6
    finally:
        model.close()


def time_case(case: dict[str, Any], folder: Path, device: str | None, threads: int | None, runs: int,
              clock: Clock) -> tuple[float | None, str | None]:  # fmt: skip
    """(seconds, None), or (None, why) where the case did not compile or run on `device`."""
    if "unsupported" in case:
        return None, case["unsupported"]
    try:
        return case_seconds(case, folder, device, threads, runs, clock), None
    except HaiRuntimeError as exc:
        return None, f"{type(exc).__name__}: {exc}"


def measure_cases(folder: Path, entry: dict[str, Any], device: str | None, threads: int | None,
                  runs: int, clock: Clock) -> dict[str, Any]:  # fmt: skip
    """The figures of one device from one target's cases (the module rule)."""
    timed = [(case, *time_case(case, folder, device, threads, runs, clock)) for case in entry["cases"]]
    for case, seconds, reason in timed:
        if seconds is None and case["kind"] in ("stream", "empty"):
            raise HaiRuntimeError(f"microbenchmark {case['name']} failed on {device or 'cpu'}: {reason}")
    launch = next(seconds for case, seconds, _ in timed if case["kind"] == "empty" and seconds is not None)
    figures: dict[str, Any] = {"flops": {}, "gemm_n": None, "unsupported": {}, "bandwidth": [],
                               "launch_seconds": launch, "dense_conv": None}  # fmt: skip
    for case, seconds, reason in timed:
        kind = case["kind"]
        if kind == "gemm":
            figures["flops"][case["dtype"]] = case["flops"] / seconds if seconds else "unsupported"
            figures["gemm_n"] = case["n"]
            if reason is not None:
                figures["unsupported"][case["dtype"]] = reason
        elif seconds is None or kind == "empty":
            continue
        elif kind == "stream":  # bytes / the time beyond a launch
            rate = case["bytes"] / max(seconds - launch, seconds / 2)
            figures["bandwidth"].append({"bytes": case["bytes"], "bytes_per_second": rate})
        elif kind == "conv":
            figures["dense_conv"] = {"n": case["n"], "flops_per_second": case["flops"] / seconds}
    return figures


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


def measure(
    folder: str | Path, runs: int = 20, threads: int | None = None, cpu_time: bool = False
) -> dict[str, Any]:
    """The `measured` section for every device the folder's targets run on (the module rule); with
    `cpu_time` the kernels are timed by the process's CPU time (runtime/step_timing.py)."""
    clock = time.process_time if cpu_time else time.perf_counter
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
            figures = measure_cases(folder, entry, device, threads, runs, clock)
            transfer = None
            if device is not None:
                driver, _, number = device.partition(":")
                with get_driver(driver).open(int(number)) as opened:
                    largest = max((b["bytes"] for b in figures["bandwidth"]), default=1 << 20)
                    transfer = transfer_figures(opened, largest, runs)
            devices.append({"device": name, **info, "target": entry["target"], "cpu": entry.get("cpu"),
                            "threads": threads, "runs": runs, "clock": "cpu" if cpu_time else "wall",
                            **figures, "transfer": transfer})  # fmt: skip
    return {"version": VERSION, "devices": devices}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m runtime.microbench", description=__doc__)
    parser.add_argument("folder", type=Path, help="the microbenchmark folder (microbench.json)")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--cpu-time", action="store_true", help="time kernels by process CPU time")
    parser.add_argument("--json", dest="json_path", default="-", metavar="FILE", help="- : stdout")
    args = parser.parse_args(argv)
    try:
        result = measure(args.folder, args.runs, args.threads, args.cpu_time)
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
