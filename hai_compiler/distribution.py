"""HAI as an installed distribution: its version and what its extras require.

Rule: pyproject.toml is the one place versions and requirements are written; code
reads them back from the installed distribution's metadata (`importlib.metadata`),
never from a copy. `hai --version`, the artifact's compiler record and a `hai pack`
bundle's requirements.txt all come from here.
"""

from __future__ import annotations

import importlib.metadata

from packaging.requirements import Requirement

from ir import HaiError

DISTRIBUTION = "hai-compiler"


class DistributionError(HaiError):
    """HAI runs from a source tree that was never installed, so it has no metadata."""


def version() -> str:
    """The installed HAI version; `0+unknown` when running from a source tree without metadata."""
    try:
        return importlib.metadata.version(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        return "0+unknown"


def extra_requirements(extra: str) -> list[str]:
    """The requirements the extra `extra` adds to the base install, as `NAME<SPEC>` lines (no markers)."""
    try:
        declared = importlib.metadata.requires(DISTRIBUTION) or []
    except importlib.metadata.PackageNotFoundError:
        raise DistributionError(
            f"{DISTRIBUTION} is not installed, so the requirements of its {extra!r} extra are unknown; "
            "install it (`pip install -e .` in the source tree, or `bash scripts/setup.sh`)"
        ) from None
    found = []
    for text in declared:
        requirement = Requirement(text)
        marker = requirement.marker
        if marker is not None and marker.evaluate({"extra": extra}) and not marker.evaluate({"extra": ""}):
            found.append(f"{requirement.name}{requirement.specifier}")
    if not found:
        raise DistributionError(f"{DISTRIBUTION} has no extra named {extra!r}")
    return found
