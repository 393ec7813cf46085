"""An arm64 Python that runs HAI's runtime under qemu-user on an x86 host, built once into the cache.

Rule: the host's Python and packages are never touched. Debian's arm64 `python3.11` and the
libraries it and the TVM runtime need (`DEB_PACKAGES`) are fetched with `apt-get download` and
unpacked with `dpkg-deb -x` into `root/`, never installed (`python3:arm64` through multiarch
would replace the host's interpreter); numpy and apache-tvm-ffi come from their cp311 aarch64
wheels at constraints.txt's versions, unzipped into `site/`; the aarch64 `libtvm_runtime.so` is
the pinned one of targets/arm64/tvm_runtime.py. Everything lives under
`$HAI_CACHE_DIR/arm64-python/`. `ensure_env()` builds under a file lock (parallel test workers
wait for one build) and writes `stamp.json` last, naming what the build came from; while the
stamp matches, a call only checks the runtime library's sha256. The one host change is dpkg's
list of foreign architectures: `arm64` is added (as root) when missing, then `apt-get update`
fetches package lists, nothing else. Run it as `bash scripts/arm64_env.sh [--cpu CPU] [ARGS]`.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from hai_compiler.real_models import cache_dir
from ir import HaiError
from targets.arm64.tvm_runtime import SHA256, TVM_REQUIREMENT, aarch64_tvm_runtime
from targets.wheels import AARCH64_CP311, WheelDownloadError, cached_wheel

DEB_PACKAGES = (
    "python3.11-minimal", "libpython3.11-minimal", "libpython3.11-stdlib", "libc6", "libexpat1",
    "zlib1g", "libffi8", "libssl3", "libstdc++6", "libgcc-s1",
)  # fmt: skip
"""arm64 packages unpacked into `root/`: the interpreter and its stdlib (ctypes: libffi, hashlib:
libssl), and the C++ runtime libtvm_runtime.so and libtvm_ffi.so link against."""
WHEEL_PROJECTS = ("numpy", "apache-tvm-ffi")
REPOSITORY = Path(__file__).resolve().parents[1]
CONSTRAINTS = REPOSITORY / "constraints.txt"
STAMP_FORMAT = 1
QEMU = "qemu-aarch64"
TOOLS = {QEMU: "qemu-user", "dpkg-deb": "dpkg", "apt-get": "apt"}
"""Host commands the build runs, and the Debian package of each."""


class Arm64EnvError(HaiError):
    """A step of building the arm64 environment failed; the message says which and what to do."""


class RegistryUnreachable(Arm64EnvError):
    """apt or pip could not download a package (no registry reachable from here)."""


class HostNotReady(Arm64EnvError):
    """The host lacks a tool, or dpkg the arm64 architecture, and this process cannot add it."""


@dataclass(frozen=True)
class Arm64Env:
    """A built environment: the unpacked arm64 system, the wheels' site dir, the aarch64 TVM runtime."""

    root: Path
    site: Path
    tvm_runtime: Path

    def python(
        self, cpu: str = "max", pythonpath: Sequence[str | os.PathLike[str]] = (REPOSITORY,)
    ) -> list[str]:
        """The command prefix running this arm64 Python as `qemu-aarch64 -cpu CPU`, with `pythonpath`
        (by default this repository's root), then the wheels, as its PYTHONPATH (and neither the
        user site nor the working folder: `-s -P`); append `-c CODE` or a script and its arguments."""
        path = os.pathsep.join(str(p) for p in [*pythonpath, self.site])
        return [QEMU, "-L", str(self.root), "-cpu", cpu, "-E", f"PYTHONPATH={path}",
                str(self.root / "usr/bin/python3.11"), "-s", "-P"]  # fmt: skip

    def run(
        self,
        code: str,
        *args: str | os.PathLike[str],
        cpu: str = "max",
        pythonpath: Sequence[str | os.PathLike[str]] = (REPOSITORY,),
    ) -> subprocess.CompletedProcess:
        """Run Python `code` (`sys.argv[1:]` = `args`) as `python(cpu, pythonpath)` does and return the
        finished process, its output as text. The host's HAI_TVM_RUNTIME (an x86 library) is not passed on."""
        env = {name: value for name, value in os.environ.items() if name != "HAI_TVM_RUNTIME"}
        cmd = [*self.python(cpu, pythonpath), "-c", code, *map(str, args)]
        return subprocess.run(cmd, capture_output=True, text=True, env=env)


def env_dir() -> Path:
    return cache_dir() / "arm64-python"


def pinned_wheels() -> list[str]:
    """`name==version` of `WHEEL_PROJECTS` as constraints.txt pins them."""
    pins = {}
    for line in CONSTRAINTS.read_text().splitlines():
        name, sep, version = line.partition("==")
        if sep and not line.startswith("#"):
            pins[name.strip().lower()] = version.strip()
    missing = [name for name in WHEEL_PROJECTS if name not in pins]
    if missing:
        raise Arm64EnvError(f"{CONSTRAINTS} pins no version of {', '.join(missing)}")
    return [f"{name}=={pins[name]}" for name in WHEEL_PROJECTS]


def expected_stamp() -> dict:
    """What a build is made from; a stamp with other contents means the environment is rebuilt."""
    return {"format": STAMP_FORMAT, "debs": list(DEB_PACKAGES), "wheels": pinned_wheels(),
            "tvm_runtime": [TVM_REQUIREMENT, SHA256]}  # fmt: skip


def ensure_env() -> Arm64Env:
    """The cached environment, built first if missing or made from other inputs (module doc)."""
    for tool, package in TOOLS.items():
        if shutil.which(tool) is None:
            raise HostNotReady(
                f"{tool} is not installed; the arm64 environment needs a Debian host with {package} "
                f"(scripts/setup.sh installs it)"
            )
    home = env_dir()
    home.mkdir(parents=True, exist_ok=True)
    root, site = home / "root", home / "site"
    with open(home / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        stamp = home / "stamp.json"
        expected = expected_stamp()
        if not (stamp.is_file() and json.loads(stamp.read_text()).get("inputs") == expected):
            stamp.unlink(missing_ok=True)
            build(root, site, home / "build")
            stamp.write_text(json.dumps({"inputs": expected}, indent=2) + "\n")
    return Arm64Env(root, site, aarch64_tvm_runtime())


def build(root: Path, site: Path, scratch: Path) -> None:
    """Unpack the arm64 packages into `root` and the wheels into `site` (both replaced)."""
    for path in (root, site, scratch):
        shutil.rmtree(path, ignore_errors=True)
    scratch.mkdir()
    ensure_arm64_architecture()
    for deb in download_debs(scratch):
        run(["dpkg-deb", "-x", str(deb), str(root)], f"unpacking {deb.name}")
    python = root / "usr/bin/python3.11"
    if not python.is_file():
        raise Arm64EnvError(f"the unpacked packages hold no {python}")
    for requirement in pinned_wheels():
        try:
            wheel = cached_wheel(requirement, env_dir() / "wheels", AARCH64_CP311)
        except WheelDownloadError as exc:
            raise RegistryUnreachable(str(exc)) from exc
        with zipfile.ZipFile(wheel) as archive:
            archive.extractall(site)
    try:
        aarch64_tvm_runtime()
    except WheelDownloadError as exc:
        raise RegistryUnreachable(str(exc)) from exc
    shutil.rmtree(scratch)


def ensure_arm64_architecture() -> None:
    """dpkg knows arm64 as a foreign architecture (added, and package lists fetched, when it does not)."""
    foreign = run(["dpkg", "--print-foreign-architectures"], "asking dpkg for its architectures")
    if "arm64" in foreign.split():
        return
    if os.geteuid() != 0:
        raise HostNotReady(
            "dpkg does not know the arm64 architecture; run `sudo dpkg --add-architecture arm64 && "
            "sudo apt-get update` once (package lists only: nothing arm64 gets installed)"
        )
    run(["dpkg", "--add-architecture", "arm64"], "adding the arm64 architecture to dpkg")
    apt_update()


def download_debs(folder: Path) -> list[Path]:
    """`DEB_PACKAGES` for arm64 as .deb files in `folder` (package lists refreshed once if stale)."""
    cmd = ["apt-get", "download", "-q", *(f"{name}:arm64" for name in DEB_PACKAGES)]
    done = subprocess.run(cmd, cwd=folder, capture_output=True, text=True)
    if done.returncode != 0 and os.geteuid() == 0:
        apt_update()  # a security update replaced a version the old lists name
        done = subprocess.run(cmd, cwd=folder, capture_output=True, text=True)
    if done.returncode != 0:
        raise RegistryUnreachable(
            f"`{' '.join(cmd)}` failed: {done.stderr.strip()[-500:]} (run `apt-get update` as root if "
            f"the package lists are stale)"
        )
    return sorted(folder.glob("*.deb"))


def apt_update() -> None:
    done = subprocess.run(["apt-get", "update", "-q"], capture_output=True, text=True)
    if done.returncode != 0:
        raise RegistryUnreachable(f"`apt-get update` failed: {done.stderr.strip()[-500:]}")


def run(cmd: list[str], what: str) -> str:
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise Arm64EnvError(f"{what} failed (`{' '.join(cmd)}`): {done.stderr.strip()[-500:]}")
    return done.stdout


def arm64_python(cpu: str = "max", pythonpath: Sequence[str | os.PathLike[str]] = (REPOSITORY,)) -> list[str]:
    """`ensure_env().python(cpu, pythonpath)`: the command prefix of the arm64 Python under qemu."""
    return ensure_env().python(cpu, pythonpath)


def main(argv: Sequence[str] | None = None) -> int:
    """Build the environment; with ARGS, run the arm64 Python on them (the repository on its path)."""
    parser = argparse.ArgumentParser(prog="scripts/arm64_env.sh", description=__doc__.split("\n")[0])
    parser.add_argument("--cpu", default="max", help="qemu CPU model, e.g. cortex-a53 (default: max)")
    parser.epilog = "Any other arguments go to the arm64 python3.11, e.g. -c 'import numpy'."
    options, args = parser.parse_known_args(argv)
    try:
        prefix = arm64_python(options.cpu)
    except HaiError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if not args:
        print(" ".join(prefix))
        return 0
    return subprocess.run([*prefix, *args]).returncode


if __name__ == "__main__":
    sys.exit(main())
