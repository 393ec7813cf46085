"""NVIDIA GPU energy through NVML (`nvidia-ml-py`, imported as `pynvml`; the optional `power` extra).

Rule: each GPU NVML lists is a source: its total energy counter
(`nvmlDeviceGetTotalEnergyConsumption`, millijoules since the driver loaded; Volta and later) where
the GPU has one, else its power (`nvmlDeviceGetPowerUsage`, milliwatts) sampled and integrated
(runtime/energy_sources.py `PowerSource`). Without the package, without NVIDIA's driver, or with no
GPU listed, NVML is unavailable with that reason (the last two: no GPU to measure, `exists` False); a
GPU that offers neither reading is unavailable with NVML's errors. Only readings: clocks and power
limits are never touched. Imports the standard library and, when installed, pynvml.
"""

from __future__ import annotations

from typing import Any

from runtime.energy_sources import CounterSource, EnergySource, PowerSource, Unavailable, split_found

GPU_SOURCE = "gpu (NVML)"


def nvml() -> Any:
    """The pynvml module, untyped."""
    import pynvml

    return pynvml


def gpu_sources() -> tuple[list[EnergySource], list[Unavailable]]:
    """A source per GPU NVML lists, and what is unavailable (NVML itself, or single GPUs) and why."""
    try:
        pynvml = nvml()
    except ImportError:
        reason = (
            "nvidia-ml-py is not installed (pip install 'hai-compiler[power]' on a machine with NVIDIA GPUs)"
        )
        return [], [Unavailable(GPU_SOURCE, reason)]
    try:
        pynvml.nvmlInit()
        count = int(pynvml.nvmlDeviceGetCount())
    except pynvml.NVMLError as exc:
        no_driver = isinstance(exc, (pynvml.NVMLError_LibraryNotFound, pynvml.NVMLError_DriverNotLoaded))
        reason = f"NVML did not start: {exc}" + (" (no NVIDIA driver here)" if no_driver else "")
        return [], [Unavailable(GPU_SOURCE, reason, exists=not no_driver)]
    if not count:
        return [], [Unavailable(GPU_SOURCE, "NVML lists no GPU", exists=False)]
    return split_found([gpu_source(pynvml, index) for index in range(count)])


def gpu_source(pynvml: Any, index: int) -> EnergySource | Unavailable:
    """GPU `index`'s energy counter, else its sampled power, else why neither can be read."""
    try:
        handle = pynvml.nvmlDeviceGetHandleByIndex(index)
        label = pynvml.nvmlDeviceGetName(handle)
    except pynvml.NVMLError as exc:
        return Unavailable(f"gpu {index} (NVML)", f"NVML cannot open GPU {index}: {exc}")
    name = f"gpu {index} {label.decode() if isinstance(label, bytes) else label} (NVML)"
    try:
        pynvml.nvmlDeviceGetTotalEnergyConsumption(handle)
        return CounterSource(
            name, "NVML energy counter", lambda: int(pynvml.nvmlDeviceGetTotalEnergyConsumption(handle)), 1e-3
        )
    except pynvml.NVMLError as exc:
        no_counter = str(exc)
    try:
        pynvml.nvmlDeviceGetPowerUsage(handle)
    except pynvml.NVMLError as exc:
        return Unavailable(
            name, f"NVML reads neither its energy counter ({no_counter}) nor its power ({exc})"
        )
    return PowerSource(name, "NVML power, sampled", lambda: pynvml.nvmlDeviceGetPowerUsage(handle) / 1e3)
