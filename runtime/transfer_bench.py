"""Host<->device transfer time per inference with zero-copy on and off: what `hai bench --transfers` reports.

Rule: the artifact is loaded twice on its device, `zero_copy` on and off, both with profiling
(runtime/devices/opencl_transfers.py); the two run alternately (on, off, on, off, ...) on the same
inputs, so that a busy host slows both alike, after one warm-up run each whose outputs must be
equal. Per inference the device's `ProfilingCounters` give the transfers' device time (the OpenCL
events' END - START timestamps) and the host time spent in transfer calls. Each side reports its
medians; the reduction is 1 - on / off of the device medians, in %. It needs no compiler, so a
`hai pack` bundle runs it on the device: `python -m runtime.transfer_bench model.hai [--runs N]
[--json FILE]`. Imports numpy, the standard library and `runtime`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

import numpy as np

from runtime.artifact import TensorBinding, numpy_dtype
from runtime.bench_output import report
from runtime.errors import HaiRuntimeError, UnsupportedError
from runtime.hai import Device, ProfilingCounters
from runtime.model import Model, load
from runtime.plan_devices import HOST_DEVICE

SIDES = {"zero_copy": True, "copy": False}
"""Each side's name in the report and its `zero_copy` option."""


def random_inputs(bindings: tuple[TensorBinding, ...], seed: int = 0) -> dict[str, np.ndarray]:
    """Inputs of the bindings' shapes and dtypes: standard normal floats, small integers, random bools."""
    rng = np.random.default_rng(seed)
    feeds = {}
    for binding in bindings:
        dtype = numpy_dtype(binding.dtype)
        if dtype.kind == "f":
            value = rng.standard_normal(binding.shape).astype(dtype)
        elif dtype.kind == "b":
            value = rng.integers(0, 2, binding.shape).astype(dtype)
        else:
            value = rng.integers(0, 16, binding.shape).astype(dtype)
        feeds[binding.name] = value
    return feeds


def transfer_device(model: Model, where: Path) -> Device:
    """The device with memory of its own (and profiling counters) that `model` runs on."""
    for name, device in model.devices.items():
        if name != HOST_DEVICE and isinstance(device, ProfilingCounters):
            return device
    raise UnsupportedError(
        f"{where} runs on the host CPU only: host<->device transfers are measured for devices with memory "
        f"of their own (compile it with --target opencl)"
    )


def measure(
    artifact: str | Path,
    runs: int = 50,
    inputs: Mapping[str, np.ndarray] | None = None,
    device: str | None = None,
) -> dict[str, Any]:
    """Transfer time per inference with zero-copy on and off (module doc), as JSON-ready data."""
    artifact = Path(artifact)
    models = {
        side: load(artifact, device=device, device_options={"zero_copy": on, "profiling": True})
        for side, on in SIDES.items()
    }
    feeds = dict(inputs) if inputs is not None else random_inputs(models["copy"].inputs)
    first = {side: model.run(feeds) for side, model in models.items()}
    for name, value in first["copy"].items():
        if not np.array_equal(value, first["zero_copy"][name], equal_nan=True):
            raise HaiRuntimeError(f"{artifact}: output {name!r} differs with zero-copy on and off")
    devices = {side: transfer_device(model, artifact) for side, model in models.items()}
    counters = {side: cast(ProfilingCounters, device) for side, device in devices.items()}
    samples: dict[str, list[tuple[float, float, float]]] = {side: [] for side in SIDES}
    for _ in range(max(int(runs), 1)):
        for side, model in models.items():
            counters[side].reset_counters()
            model.run(feeds)
            got = counters[side].counters()
            samples[side].append(
                (got["transfer_device_seconds"], got["transfer_host_seconds"], got["transfers"])
            )
    result: dict[str, Any] = {
        "artifact": str(artifact),
        "device": devices["copy"].info.name,
        "runs": max(int(runs), 1),
    }
    for side, model in models.items():
        values = np.array(samples[side])
        result[side] = {
            "mode": mode_of(side, devices[side]),
            "device_us": float(np.median(values[:, 0]) * 1e6),
            "host_us": float(np.median(values[:, 1]) * 1e6),
            "transfers": float(np.median(values[:, 2])),
        }
        model.close()
    result["reduction_percent"] = reduction(result["zero_copy"]["device_us"], result["copy"]["device_us"])
    result["host_reduction_percent"] = reduction(result["zero_copy"]["host_us"], result["copy"]["host_us"])
    return result


def mode_of(side: str, device: Device) -> str:
    """`copy`, or zero-copy's `mapped` (host-visible memory) or `staged` (pinned staging buffers)."""
    if side == "copy":
        return "copy"
    return "mapped" if device.capabilities().host_visible else "staged"


def reduction(on: float, off: float) -> float:
    """How much less `on` is than `off`, in % (0 when `off` is 0)."""
    return 100.0 * (1.0 - on / off) if off > 0 else 0.0


def report_lines(result: Mapping[str, Any]) -> list[str]:
    """The figures as text: one line per side, then the reductions."""
    lines = [f"{result['artifact']} on {result['device']}: host<->device transfers per inference "
             f"(median of {result['runs']} runs each, alternating)"]  # fmt: skip
    for side, label in (("copy", "zero-copy off"), ("zero_copy", "zero-copy on ")):
        figures = result[side]
        lines.append(
            f"  {label} ({figures['mode']}): {figures['device_us']:9.2f} us device (event timestamps), "
            f"{figures['host_us']:9.2f} us in host calls, {figures['transfers']:.0f} transfers"
        )
    lines.append(
        f"  reduction: {result['reduction_percent']:.1f}% of the device transfer time, "
        f"{result['host_reduction_percent']:.1f}% of the host time"
    )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m runtime.transfer_bench", description=__doc__)
    parser.add_argument("artifact", type=Path)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--device", default=None, help="e.g. opencl:1 (default: the driver's device 0)")
    parser.add_argument("--json", dest="json_path", default=None, metavar="FILE", help="also write JSON")
    args = parser.parse_args(argv)
    return report(lambda: measure(args.artifact, args.runs, device=args.device), report_lines, args.json_path)


if __name__ == "__main__":
    sys.exit(main())
