"""`hai doctor`: the hardware profile of this machine, as JSON or as a table.

The JSON follows docs/hardware_profile.schema.json. The profile joins what the
runtime probes (CPU identity, ISA features, topology, caches, memory, thermal
zones, cpufreq, OpenCL devices) with what only the compiler knows: the LLVM name
of the host CPU, asked from TVM when it imports. `recommended` is the compile
target for this machine; `hai compile --hardware-profile` reads it back with
`read_profile` and `profile_compile_target` (a `measured` section is checked for what the partition
reads: `check_measured`). `hai doctor --measure` adds that section: the devices' achieved speed,
from the microbenchmarks (hai_compiler/microbench.py `measure_profile`, run by runtime/microbench.py).
"""

from __future__ import annotations

import json
import platform
from pathlib import Path
from typing import IO, Any

from ir.errors import HaiError
from runtime.devices.cpu import CpuDriver
from runtime.hai import available_drivers, get_driver
from runtime.opencl_probe import opencl_inventory

SCHEMA_VERSION = 1


class HardwareProfileError(HaiError):
    """A hardware profile file that cannot be read or lacks what `hai compile` needs."""


def llvm_host_cpu() -> tuple[str | None, str]:
    """(LLVM cpu name of this host, where it came from); (None, reason) when TVM cannot say."""
    try:
        from tvm.target import codegen
    except ImportError as exc:
        return None, f"tvm is not installed ({exc})"
    name = str(codegen.llvm_get_system_cpu())
    if not name or name == "generic":
        return None, "LLVM does not know this CPU (it reports 'generic')"
    return name, "tvm.target.codegen.llvm_get_system_cpu"


def cpu_section(facts: dict[str, Any], this_host: bool = True) -> dict[str, Any]:
    """The profile's `cpu` object from the CPU driver's probe facts and LLVM's cpu name (asked only
    when the facts are this host's: a recorded /proc tree is another machine)."""
    if not this_host:
        llvm_cpu, source = None, "a recorded /proc, not this host"
    elif facts["arch"] != platform.machine():
        llvm_cpu, source = None, "not this host's arch"
    else:
        llvm_cpu, source = llvm_host_cpu()
    if llvm_cpu is None and facts.get("arm_cpu"):
        llvm_cpu, source = facts["arm_cpu"], "Arm part number in /proc/cpuinfo"
    keys = (
        "arch",
        "vendor",
        "model",
        "isa_level",
        "features",
        "physical_cores",
        "threads",
        "sockets",
        "caches",
    )
    return {**{k: facts[k] for k in keys}, "llvm_cpu": llvm_cpu, "llvm_cpu_source": source}


def recommended_target(cpu: dict[str, Any]) -> dict[str, Any]:
    """Target, `--cpu` and `--cpu-features` for this host: LLVM's cpu name, else the x86-64 level
    (portable), with the feature edits that make that name's table the host's features."""
    from targets.registry import target_of_arch

    target = target_of_arch(cpu["arch"])
    if target is None:
        return {"target": None, "cpu": None, "features": [], "cpu_features": [],
                "reason": f"no HAI target for {cpu['arch']}"}  # fmt: skip
    chosen = cpu["llvm_cpu"] or cpu["isa_level"] or "generic"
    why = "the host CPU as LLVM names it" if cpu["llvm_cpu"] else "the host's ISA level (LLVM cpu unknown)"
    edits, table_why = cpu_feature_edits(target, chosen, cpu["features"])
    return {"target": target, "cpu": chosen, "features": cpu["features"], "cpu_features": edits,
            "reason": f"{why}; {table_why}"}  # fmt: skip


def cpu_feature_edits(target: str, cpu: str, features: list[str]) -> tuple[list[str], str]:
    """(`--cpu-features` edits from `cpu`'s feature table to `features`, what they are for)."""
    from targets.feature_edits import edits_between
    from targets.target import TargetError, cpu_table_features

    try:
        table = cpu_table_features(target, cpu)
    except (TargetError, ImportError) as exc:  # no such target, an unknown name, or no TVM to ask
        return [], f"no feature table to compare with ({exc})"
    edits = edits_between(table, features)
    return edits, (
        f"--cpu-features adds what {cpu}'s table lacks and drops what this CPU lacks" if edits
        else f"{cpu}'s feature table is this CPU's"
    )  # fmt: skip


def recommended_flags(recommended: dict[str, Any]) -> str:
    """The `hai compile` flags that compile for the profiled machine, as doctor prints them."""
    flags = f"--target {recommended['target']} --cpu {recommended['cpu']}"
    edits = recommended.get("cpu_features") or []
    return f"{flags} --cpu-features {','.join(edits)}" if edits else flags


def other_devices() -> list[dict[str, Any]]:
    """Devices of every non-CPU driver under `hai.devices`; a failing probe is reported, not raised."""
    found: list[dict[str, Any]] = []
    for name in available_drivers():
        if name == CpuDriver.name:
            continue
        try:
            infos = get_driver(name).probe()
        except Exception as exc:  # a third-party driver must not break the scan
            found.append({"driver": name, "error": str(exc)})
            continue
        found += [{k: v for k, v in info.to_dict().items() if k != "properties"} for info in infos]
    return found


def scan(root: str = "/") -> dict[str, Any]:
    """The hardware profile of this machine (`root` points the /proc and /sys readers elsewhere in tests)."""
    (cpu_info,) = CpuDriver(root).probe()
    facts = dict(cpu_info.properties)
    cpu = cpu_section(facts, this_host=Path(root).resolve() == Path("/"))
    return {
        "schema_version": SCHEMA_VERSION,
        "host": {
            "os": platform.system().lower(),
            "machine": platform.machine(),
            "kernel": platform.release(),
            "python": platform.python_version(),
        },
        "cpu": cpu,
        "memory": facts["memory"],
        "opencl": opencl_inventory(),
        "thermal": {"zones": facts["thermal_zones"]},
        "cpufreq": facts["cpufreq"],
        "devices": [
            {"driver": "cpu", "index": 0, "name": cpu_info.name, "kind": "cpu", "vendor": cpu_info.vendor},
            *other_devices(),
        ],
        "recommended": recommended_target(cpu),
    }


def write_json(profile: dict[str, Any], stream: IO[str]) -> None:
    """The profile as indented JSON, one trailing newline (what `hai doctor > file` writes)."""
    json.dump(profile, stream, indent=2)
    stream.write("\n")


def read_profile(path: str | Path) -> dict[str, Any]:
    """A hardware profile written by `hai doctor`, checked for what compiling needs."""
    try:
        profile = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise HardwareProfileError(f"hardware profile {path}: cannot read it as JSON ({exc})") from exc
    if not isinstance(profile, dict) or profile.get("schema_version") != SCHEMA_VERSION:
        raise HardwareProfileError(
            f"hardware profile {path}: expected schema_version {SCHEMA_VERSION}; regenerate it with "
            f"`hai doctor > {Path(path).name}` on the target machine"
        )
    recommended = profile.get("recommended")
    if not isinstance(recommended, dict) or not recommended.get("target"):
        raise HardwareProfileError(
            f"hardware profile {path}: no recommended target (key 'recommended.target')"
        )
    check_measured(profile.get("measured"), path)
    return profile


MEASURED_KEYS = ("device", "kind", "flops", "bandwidth", "launch_seconds")
"""What the partition's device costs read of each measured device (targets/device_models.py)."""


def check_measured(measured: Any, path: str | Path) -> None:
    """A profile's `measured` section (absent: nothing to check) has a device list whose entries hold
    `MEASURED_KEYS`; else a HardwareProfileError naming the file, the device and the key."""
    if measured is None:
        return
    devices = measured.get("devices") if isinstance(measured, dict) else None
    if not isinstance(devices, list):
        raise HardwareProfileError(f"hardware profile {path}: 'measured' has no 'devices' list")
    for index, entry in enumerate(devices):
        missing = [k for k in MEASURED_KEYS if not isinstance(entry, dict) or k not in entry]
        if missing:
            name = entry.get("device", f"#{index}") if isinstance(entry, dict) else f"#{index}"
            raise HardwareProfileError(
                f"hardware profile {path}: measured device {name} lacks {', '.join(missing)}; "
                "measure again with `hai doctor --measure`"
            )


OPENCL_PREFERENCE = ("GPU", "ACCELERATOR", "CPU", "CUSTOM")
"""Which OpenCL device of a profile `--target opencl` compiles for: a GPU first, then an NPU."""


def opencl_compile_target(profile: dict[str, Any]) -> dict[str, Any]:
    """`{"target": "opencl", "cpu", "features", "device"}` for the profile's first OpenCL GPU (else
    accelerator, else CPU device): `device` holds the facts `runtime/opencl_probe.py` recorded."""
    devices = [d for p in profile.get("opencl", {}).get("platforms", []) for d in p.get("devices", [])]
    if not devices:
        reason = profile.get("opencl", {}).get("reason", "no OpenCL device was found")
        raise HardwareProfileError(
            f"hardware profile lists no OpenCL device ({reason}); --target opencl needs a profile taken "
            f"where one is installed, or --cpu with a preset"
        )
    ranks = {kind: rank for rank, kind in enumerate(OPENCL_PREFERENCE)}
    device = min(devices, key=lambda d: ranks.get(d.get("type", ""), len(ranks)))
    features = [f for f, key in (("fp16", "fp16"), ("int8_dot", "int8_dot_product"),
                                 ("host_unified", "host_unified_memory")) if device.get(key)]  # fmt: skip
    return {"target": "opencl", "cpu": device["name"], "features": features, "device": device}


def profile_compile_target(profile: dict[str, Any], target: str | None = None) -> dict[str, Any]:
    """`{"target", "cpu", "features"}` to compile for the profiled machine; for `target` "opencl" its
    OpenCL device (`opencl_compile_target`)."""
    if target == "opencl":
        return opencl_compile_target(profile)
    recommended = profile["recommended"]
    return {
        "target": recommended["target"],
        "cpu": recommended["cpu"],
        "features": list(recommended["features"]),
    }


def human_bytes(n: int | None) -> str:
    """`1.5 GiB` style sizes for the table; `-` for unknown."""
    if n is None:
        return "-"
    size, unit = float(n), "B"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            break
        size /= 1024
    return f"{n} B" if unit == "B" else f"{size:.1f} {unit}"


def render_table(profile: dict[str, Any], console: Any) -> None:
    """Print the profile as rich tables: machine, caches, OpenCL devices, thermal zones."""
    from rich.table import Table

    cpu, memory, rec = profile["cpu"], profile["memory"], profile["recommended"]
    machine = Table(title="Machine", show_header=False)
    machine.add_column()
    machine.add_column(overflow="fold")  # the recommended flags must stay whole to be copied
    rows = [
        ("CPU", f"{cpu['model']} ({cpu['vendor']}, {cpu['arch']})"),
        ("LLVM cpu", cpu["llvm_cpu"] or f"unknown: {cpu['llvm_cpu_source']}"),
        ("ISA level", cpu["isa_level"] or "-"),
        ("ISA features", " ".join(cpu["features"]) or "-"),
        ("Cores / threads", f"{cpu['physical_cores']} / {cpu['threads']} ({cpu['sockets']} socket(s))"),
        (
            "Memory",
            f"{human_bytes(memory['total_bytes'])} total, {human_bytes(memory['available_bytes'])} available",
        ),
        ("cgroup limit", human_bytes(memory["cgroup_limit_bytes"])),
        ("cpufreq governor", profile["cpufreq"]["governor"] or "-"),
        ("Recommended", recommended_flags(rec) if rec["target"] else rec["reason"]),
    ]
    for key, value in rows:
        machine.add_row(key, value)
    console.print(machine)
    caches = Table("cache", "size", "instances", "shared by threads", title="Caches")
    for c in cpu["caches"]:
        caches.add_row(
            c["name"], human_bytes(c["size_bytes"]), str(c["instances"]), str(c["shared_by_threads"])
        )
    console.print(caches)
    render_opencl(profile["opencl"], console)
    if "measured" in profile:
        render_measured(profile["measured"], console)
    zones = profile["thermal"]["zones"]
    if zones:
        thermal = Table("zone", "type", "°C", "critical °C", title="Thermal zones")
        for z in zones:
            thermal.add_row(z["zone"], z["type"], str(z["celsius"]), str(z["critical_celsius"] or "-"))
        console.print(thermal)
    else:
        console.print("Thermal zones: none exposed")


def render_opencl(opencl: dict[str, Any], console: Any) -> None:
    from rich.table import Table

    if not opencl["available"]:
        console.print(f"OpenCL: not available ({opencl['reason']})")
        return
    table = Table("platform", "device", "type", "CUs", "memory", "fp16", "fp64", title="OpenCL devices")
    for platform_entry in opencl["platforms"]:
        for d in platform_entry["devices"]:
            table.add_row(
                platform_entry["name"],
                d["name"],
                d["type"],
                str(d["compute_units"]),
                human_bytes(d["global_memory_bytes"]),
                "yes" if d["fp16"] else "no",
                "yes" if d["fp64"] else "no",
            )
    console.print(table)


def gb_per_second(rate: float | None) -> str:
    """GB/s with one decimal; "size-independent" for a transfer whose size made no difference."""
    return "size-independent" if rate is None else f"{rate / 1e9:.1f}"


def render_measured(measured: dict[str, Any], console: Any) -> None:
    """The `measured` section: GFLOP/s per precision, the largest stream's GB/s, launch and transfers."""
    from rich.table import Table

    dtypes = ("f32", "f16", "bf16", "int8")
    table = Table("device", *(f"{d} GFLOP/s" for d in dtypes), "GB/s", "launch µs", "copy in µs / GB/s",
                  "zero-copy µs", title="Measured (microbenchmarks, fastest runs)")  # fmt: skip
    for d in measured["devices"]:
        speeds = [f"{d['flops'][k] / 1e9:.1f}" if isinstance(d["flops"].get(k), float) else "unsupported"
                  for k in dtypes]  # fmt: skip
        stream = max(d["bandwidth"], key=lambda b: b["bytes"], default=None)
        copy, zero = (d["transfer"] or {}).get("copy_in"), (d["transfer"] or {}).get("zero_copy")
        table.add_row(
            f"{d['device']} ({d['name']})",
            *speeds,
            f"{stream['bytes_per_second'] / 1e9:.1f}" if stream else "-",
            f"{d['launch_seconds'] * 1e6:.1f}",
            f"{copy['latency_seconds'] * 1e6:.1f} / {gb_per_second(copy['bytes_per_second'])}"
            if copy
            else "-",
            f"{zero['latency_seconds'] * 1e6:.1f}" if zero else "-",
        )
    console.print(table)
