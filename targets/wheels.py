"""Pinned wheels from the package index, downloaded once into a cache folder with pip.

`cached_wheel("name==version", folder)` runs `pip download --no-deps --only-binary=:all:` the
first time and returns the wheel file afterwards. `platform` asks for another machine's wheels
(`AARCH64_CP311`); keep each platform's wheels in their own folder, since a wheel is found again
by its project and version only.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from ir import HaiError

AARCH64_CP311 = (
    "--platform", "manylinux_2_28_aarch64", "--platform", "manylinux_2_17_aarch64",
    "--platform", "manylinux2014_aarch64", "--python-version", "3.11", "--implementation", "cp",
)  # fmt: skip
"""pip's options selecting the wheels of CPython 3.11 on aarch64 Linux (glibc 2.28 or older)."""


class WheelDownloadError(HaiError):
    """pip could not download a wheel (no index reachable, or no such version for the platform)."""


def cached_wheel(requirement: str, folder: Path, platform: tuple[str, ...] = ()) -> Path:
    """The wheel of `requirement` ("name==version") in `folder`, downloaded first if it is not there."""
    folder.mkdir(parents=True, exist_ok=True)
    wheel = find_wheel(folder, requirement)
    if wheel is not None:
        return wheel
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
               *platform, requirement, "-d", tmp]  # fmt: skip
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            raise WheelDownloadError(f"cannot download {requirement}: {done.stderr.strip()[-500:]}")
        for path in Path(tmp).glob("*.whl"):
            path.replace(folder / path.name)  # atomic: parallel processes may download at once
    wheel = find_wheel(folder, requirement)
    if wheel is None:
        raise WheelDownloadError(f"pip downloaded no wheel for {requirement}")
    return wheel


def find_wheel(folder: Path, requirement: str) -> Path | None:
    project, version = requirement.split("==")
    stem = project.replace("-", "_").lower()
    for path in sorted(folder.glob("*.whl")):
        if path.name.lower().startswith(f"{stem}-{version}-"):
            return path
    return None
