"""Device names, the same at compile time and at run time.

Rule: a device is named `DRIVER[:QUALIFIER]`; the driver is the HAI driver that runs it (`cpu`,
`opencl`: runtime/hai.py) and the qualifier narrows which of that driver's devices:
- a *kind* (`gpu`, `accelerator`, `cpu`: `DeviceInfo.kind`) is what the compiler knows: the IR's
  placements (`{device = "opencl:gpu"}`), `--target x86+opencl:gpu` and the `--placement` option
  say it. The plan's steps and `manifest.kernel_libraries` name the driver alone (`opencl`): an
  artifact holds one kernel library per driver.
- an *index* (`opencl:1`, the driver's `probe()` order) is what only the machine running the model
  knows: `runtime.load(..., device="opencl:1")` takes it, or a kind (`device="opencl:gpu"`: that
  driver's first device of that kind).
A multi-device target is spelled `HOST+DEVICE[+DEVICE...]` (`x86+opencl`, `arm64+opencl:accelerator`):
the manifest's `target.name` keeps that spelling, so `load` opens, by default, the first device of
the kind the kernels were compiled for (no kind: device 0), and refuses a machine without one rather
than running them elsewhere. Imports nothing of ours.
"""

from __future__ import annotations

HOST_DEVICE = "cpu"
"""The host CPU's driver: always opened; the arena and the weights are its memory."""
KINDS = ("gpu", "accelerator", "cpu")
"""The device kinds a qualifier may name (`runtime.hai.DeviceKind`)."""


def split_target(spelling: str) -> tuple[str, tuple[str, ...]]:
    """`x86+opencl:gpu` as ("x86", ("opencl:gpu",)); a single target has no devices besides its host."""
    host, *devices = spelling.split("+")
    return host, tuple(devices)


def driver_of(device: str) -> str:
    """`opencl:gpu` -> `opencl`."""
    return device.partition(":")[0]


def qualifier_of(device: str) -> str:
    """`opencl:gpu` -> `gpu`, `opencl:1` -> `1`, `opencl` -> ``."""
    return device.partition(":")[2]


def compiled_kinds(target_name: str) -> dict[str, str]:
    """The device kind each driver's kernels were compiled for, by driver, from a manifest's target
    name (`x86+opencl:gpu` -> {"opencl": "gpu"}; drivers named without a kind are absent)."""
    _, devices = split_target(target_name)
    return {driver_of(d): qualifier_of(d) for d in devices if qualifier_of(d) in KINDS}
