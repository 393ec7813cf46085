"""Facts about the host read from /proc and /sys: topology, caches, memory, thermal zones, cpufreq.

Every reader takes `root` (default `/`) so tests point it at a fake tree, and
answers "unknown" (None, 0 or an empty list) for a file the kernel does not
provide — containers and VMs often hide thermal zones and cpufreq. Imports only
the standard library.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

CPU_DIR = "sys/devices/system/cpu"
THERMAL_DIR = "sys/class/thermal"
CACHE_TYPES = {"Data": "d", "Instruction": "i", "Unified": ""}


def read_text(path: Path) -> str | None:
    """The stripped content of a small sysfs/procfs file, or None when it is absent or unreadable."""
    try:
        return path.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return None


def read_int(path: Path) -> int | None:
    text = read_text(path)
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def parse_cpu_list(text: str) -> list[int]:
    """Kernel cpu-list syntax (`0-3,8,10-11`) as a sorted list of cpu numbers."""
    cpus: set[int] = set()
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        low, _, high = part.partition("-")
        cpus.update(range(int(low), int(high or low) + 1))
    return sorted(cpus)


def parse_size(text: str) -> int:
    """A sysfs cache size (`32K`, `1024K`, `32M`) in bytes."""
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    text = text.strip()
    if text and text[-1].upper() in units:
        return int(text[:-1]) * units[text[-1].upper()]
    return int(text)


def online_cpus(root: Path) -> list[int]:
    """The online cpu numbers; falls back to the cpuN directories, then to `os.cpu_count()`."""
    text = read_text(root / CPU_DIR / "online")
    if text:
        return parse_cpu_list(text)
    found = sorted(int(p.name[3:]) for p in (root / CPU_DIR).glob("cpu[0-9]*") if p.name[3:].isdigit())
    return found or list(range(os.cpu_count() or 1))


def topology(root: Path) -> dict[str, int]:
    """`threads` (online logical cpus), `physical_cores` and `sockets` from sysfs topology."""
    cpus = online_cpus(root)
    cores: set[tuple[int | None, int | None]] = set()
    packages: set[int | None] = set()
    for cpu in cpus:
        topo = root / CPU_DIR / f"cpu{cpu}" / "topology"
        package = read_int(topo / "physical_package_id")
        core = read_int(topo / "core_id")
        packages.add(package)
        cores.add((package, core if core is not None else cpu))
    return {"threads": len(cpus), "physical_cores": len(cores), "sockets": len(packages)}


def caches(root: Path) -> list[dict[str, Any]]:
    """One entry per cache kind (L1d, L1i, L2, L3): size of one instance, instances, threads sharing one."""
    found: dict[str, dict[str, Any]] = {}
    sharing_sets: dict[str, set[str]] = {}
    for cpu in online_cpus(root):
        for index in sorted((root / CPU_DIR / f"cpu{cpu}" / "cache").glob("index[0-9]*")):
            level, kind = read_int(index / "level"), read_text(index / "type")
            size, shared = read_text(index / "size"), read_text(index / "shared_cpu_list")
            if level is None or kind not in CACHE_TYPES or not size:
                continue
            name = f"L{level}{CACHE_TYPES[kind]}"
            shared_cpus = parse_cpu_list(shared) if shared else [cpu]
            found.setdefault(
                name,
                {
                    "name": name,
                    "level": level,
                    "type": kind.lower(),
                    "size_bytes": parse_size(size),
                    "shared_by_threads": len(shared_cpus),
                },
            )
            sharing_sets.setdefault(name, set()).add(shared or str(cpu))
    for name, entry in found.items():
        entry["instances"] = len(sharing_sets[name])
    return sorted(found.values(), key=lambda e: (e["level"], e["name"]))


def memory(root: Path) -> dict[str, int | None]:
    """`total_bytes` and `available_bytes` from /proc/meminfo, and the cgroup v2 limit when one is set."""
    values: dict[str, int] = {}
    for line in (read_text(root / "proc/meminfo") or "").splitlines():
        key, _, rest = line.partition(":")
        fields = rest.split()
        if fields and fields[0].isdigit():
            values[key] = int(fields[0]) * (1024 if fields[1:] == ["kB"] else 1)
    limit = read_text(root / "sys/fs/cgroup/memory.max")
    return {
        "total_bytes": values.get("MemTotal", 0),
        "available_bytes": values.get("MemAvailable", values.get("MemFree", 0)),
        "cgroup_limit_bytes": int(limit) if limit and limit.isdigit() else None,
    }


def thermal_zones(root: Path) -> list[dict[str, Any]]:
    """Every /sys/class/thermal zone: its name, type, temperature and critical trip point in Celsius."""
    zones = []
    for zone in sorted((root / THERMAL_DIR).glob("thermal_zone[0-9]*"), key=lambda p: int(p.name[12:])):
        millis = read_int(zone / "temp")
        zones.append(
            {
                "zone": zone.name,
                "type": read_text(zone / "type") or "unknown",
                "celsius": millis / 1000 if millis is not None else None,
                "critical_celsius": critical_trip(zone),
            }
        )
    return zones


def critical_trip(zone: Path) -> float | None:
    """The zone's `critical` trip point in Celsius, if it declares one."""
    for trip_type in sorted(zone.glob("trip_point_*_type")):
        if read_text(trip_type) == "critical":
            millis = read_int(trip_type.with_name(trip_type.name.replace("_type", "_temp")))
            return millis / 1000 if millis is not None else None
    return None


def cpufreq_policies(root: Path) -> list[Path]:
    """The cpufreq policy directories (one per group of cpus that share a clock)."""
    return sorted((root / CPU_DIR / "cpufreq").glob("policy[0-9]*"), key=lambda p: int(p.name[6:]))


def cpufreq(root: Path) -> dict[str, Any]:
    """Governor (of the first policy), the governors on offer, and the frequency range in MHz."""
    policies = cpufreq_policies(root)
    if not policies:
        return {"governor": None, "available_governors": [], "min_mhz": None, "max_mhz": None}
    first = policies[0]
    low, high = read_int(first / "cpuinfo_min_freq"), read_int(first / "cpuinfo_max_freq")
    return {
        "governor": read_text(first / "scaling_governor"),
        "available_governors": (read_text(first / "scaling_available_governors") or "").split(),
        "min_mhz": low / 1000 if low is not None else None,
        "max_mhz": high / 1000 if high is not None else None,
    }


def set_governor(root: Path, governor: str) -> None:
    """Write `governor` to every policy's scaling_governor (needs root on a real machine)."""
    for policy in cpufreq_policies(root):
        (policy / "scaling_governor").write_text(governor + "\n", encoding="utf-8")
