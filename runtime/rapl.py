"""CPU package energy through RAPL, read from Linux's powercap files (`/sys/class/powercap/intel-rapl:N`).

Rule: each package zone (`intel-rapl:N`, named `package-N`; not a laptop's `psys` platform zone;
AMD's Zen exposes its RAPL under the same names) is an energy counter: `energy_uj` in microjoules,
wrapping to 0 after `max_energy_range_uj` (runtime/energy_sources.py `CounterSource` undoes the wrap). A zone
whose files cannot be read is unavailable with the reason: no powercap zones at all (no `intel_rapl`
driver, a CPU or a VM without RAPL), or permission (Linux 5.10 and later let only root read
`energy_uj`, CVE-2020-8694). Nothing is estimated. `root` is the file system's root (tests give a
fake tree). Imports the standard library only.
"""

from __future__ import annotations

import re
from pathlib import Path

from runtime.energy_sources import CounterSource, EnergySource, Unavailable, split_found

POWERCAP = "sys/class/powercap"
PACKAGE_ZONE = re.compile(r"intel-rapl:\d+")
CPU_SOURCE = "cpu package (RAPL)"


def read_microjoules(path: Path) -> int:
    return int(path.read_text(encoding="ascii").strip())


def unreadable(path: Path, exc: OSError | ValueError) -> str:
    """Why `path` cannot be read, and what to do."""
    if isinstance(exc, PermissionError):
        return (
            f"{path}: permission denied (Linux 5.10 and later let only root read RAPL energy, "
            f"CVE-2020-8694); run as root or grant read access to the energy_uj files"
        )
    if isinstance(exc, ValueError):
        return f"{path}: not a counter ({exc})"
    return f"{path}: {exc.strerror or exc}"


def zone_label(zone: Path) -> str:
    """The zone's `name` (`package-0`, or `psys` for a laptop's whole platform), else its folder's."""
    try:
        return (zone / "name").read_text(encoding="ascii").strip() or zone.name
    except OSError:
        return zone.name


def package_source(zone: Path) -> EnergySource | Unavailable:
    """The counter of one package zone, or why it cannot be read."""
    name = f"cpu {zone_label(zone)} (RAPL)"
    energy, limit = zone / "energy_uj", zone / "max_energy_range_uj"
    for path in (energy, limit):
        try:
            read_microjoules(path)
        except (OSError, ValueError) as exc:
            return Unavailable(name, unreadable(path, exc))
    wrap = read_microjoules(limit) + 1  # the counter's values are 0 .. max_energy_range_uj
    return CounterSource(name, "RAPL energy counter", lambda: read_microjoules(energy), 1e-6, wrap)


def cpu_sources(root: str | Path = "/") -> tuple[list[EnergySource], list[Unavailable]]:
    """A source per CPU package under `root`, and the packages (or the whole interface) unavailable."""
    powercap = Path(root) / POWERCAP
    zones = [p for p in sorted(powercap.glob("intel-rapl:*")) if PACKAGE_ZONE.fullmatch(p.name)]
    zones = [zone for zone in zones if not zone_label(zone).startswith("psys")]
    if not zones:
        reason = (
            f"no RAPL zones under /{POWERCAP} (the kernel's intel_rapl driver is not loaded, or this CPU "
            f"or virtual machine does not expose RAPL)"
        )
        return [], [Unavailable(CPU_SOURCE, reason)]
    return split_found([package_source(zone) for zone in zones])
