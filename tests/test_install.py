"""A real install: pyproject.toml declares ranges and constraints.txt pins a version inside each; the
sdist and the wheel (built from that sdist) hold HAI's packages with their data files and nothing
else; installed without extras into a fresh venv (slow tier), `hai` runs from it, finds its grammars
and embedded model, compiles, packs with the runtime extra's ranges, and no test or bench package
came along."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import tomllib
import venv
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PACKAGES = [glob.rstrip("*") for glob in PROJECT["tool"]["setuptools"]["packages"]["find"]["include"]]
DEV_EXTRAS = ("test", "bench")


def requirements(extra: str | None) -> list[Requirement]:
    """The base requirements (`None`) or an extra's, as pyproject.toml writes them."""
    texts = (
        PROJECT["project"]["dependencies"]
        if extra is None
        else PROJECT["project"]["optional-dependencies"][extra]
    )
    return [Requirement(text) for text in texts]


def constraints() -> dict[str, str]:
    lines = (ROOT / "constraints.txt").read_text().splitlines()
    pins = [line.split("==") for line in lines if line and not line.startswith("#")]
    return {canonicalize_name(name): version for name, version in pins}


def test_constraints_pin_every_requirement_inside_its_range() -> None:
    pinned = constraints()
    for extra in (None, *PROJECT["project"]["optional-dependencies"]):
        for requirement in requirements(extra):
            name = canonicalize_name(requirement.name)
            assert "==" not in str(requirement.specifier), f"{requirement}: a range, not a pin"
            assert name in pinned, f"constraints.txt has no version of {requirement.name}"
            assert requirement.specifier.contains(pinned[name]), f"{requirement.name}=={pinned[name]}"
    assert pinned["apache-tvm-ffi"] == "0.1.14.post1"
    tvm_ffi = next(r for r in requirements(None) if r.name == "apache-tvm-ffi")
    assert not tvm_ffi.specifier.contains("0.1.15.post2")  # segfaults when TVM serialises IR


def test_version_option_prints_the_projects_version() -> None:
    from typer.testing import CliRunner

    from hai_compiler.cli import app

    done = CliRunner().invoke(app, ["--version"])
    assert done.exit_code == 0 and done.output == f"hai {PROJECT['project']['version']}\n", done.output


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(source copy, dist folder): `python -m build` over a copy of the tracked and new files
    (a build in the tree itself would write into it and could pick up a stale build/)."""
    source = tmp_path_factory.mktemp("source")
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, capture_output=True, check=True,
    ).stdout  # fmt: skip
    for name in filter(None, listed.decode().split("\0")):
        if (ROOT / name).is_file():  # a file deleted in the work tree is still listed
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    out = tmp_path_factory.mktemp("dist")
    done = subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(out), str(source)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return source, out


def wheel_of(dist: tuple[Path, Path]) -> Path:
    (wheel,) = dist[1].glob("*.whl")
    return wheel


def test_wheel_holds_our_packages_and_their_data_files_only(dist: tuple[Path, Path]) -> None:
    source, _ = dist
    names = set(zipfile.ZipFile(wheel_of(dist)).namelist())
    info = f"hai_compiler-{PROJECT['project']['version']}.dist-info"
    assert {name.split("/")[0] for name in names} == {*PACKAGES, info}  # no tests/, bench/, scripts/
    wanted = [path for package in PACKAGES for path in (source / package).rglob("*.py")]
    wanted += [*(source / "ir").glob("*.lark"), *(source / "passes").glob("*.lark")]
    wanted += [*(source / "hai_compiler" / "models").iterdir()]
    missing = {path.relative_to(source).as_posix() for path in wanted} - names
    assert not missing, missing
    assert f"{info}/licenses/LICENSE" in names
    (sdist,) = dist[1].glob("*.tar.gz")
    members = {
        Path(name).relative_to(Path(name).parts[0]).as_posix() for name in tarfile.open(sdist).getnames()
    }
    assert {"LICENSE", "pyproject.toml", "README.md", "ir/hir.lark", "passes/pipeline.lark"} <= members


def run(*command: str | Path, cwd: Path) -> str:
    """Run a command of the fresh venv outside the source tree (no PYTHONPATH): its stdout."""
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["HAI_CACHE_DIR"] = str(cwd / "cache")  # compile for real, not from the suite's kernel cache
    done = subprocess.run(
        [str(c) for c in command], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, f"{command}: {done.stdout[-2000:]}{done.stderr[-3000:]}"
    return done.stdout


@pytest.mark.slow
def test_wheel_installs_without_the_extras_and_works(dist: tuple[Path, Path], tmp_path: Path) -> None:
    env = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env)
    python, hai = env / "bin" / "python", env / "bin" / "hai"
    run(python, "-m", "pip", "install", "-q", "-c", ROOT / "constraints.txt", wheel_of(dist), cwd=tmp_path)

    assert run(hai, "--version", cwd=tmp_path) == f"hai {PROJECT['project']['version']}\n"
    where = "from hai_compiler.demo import EMBEDDED_MODEL as m; print(m)"
    model = Path(run(python, "-c", where, cwd=tmp_path).strip())
    assert model.is_file() and model.is_relative_to(env.resolve()), (
        model
    )  # the installed copy, not the tree's
    shape = ["--input-shape", "image=1,1,8,8"]
    run(hai, "ir", model, *shape, "--passes", "default", "-o", "m.hir", "--save-weights", cwd=tmp_path)
    assert "Conv" in run(hai, "ir", "m.hir", "--summary", cwd=tmp_path)  # hir.lark parsed it back
    run(hai, "compile", model, *shape, "-o", "m.hai", cwd=tmp_path)
    run(hai, "pack", "m.hai", "-o", "bundle", cwd=tmp_path)
    bundle_requirements = (tmp_path / "bundle" / "requirements.txt").read_text().splitlines()
    assert [Requirement(line) for line in bundle_requirements] == requirements("runtime")

    dev = {canonicalize_name(r.name) for extra in DEV_EXTRAS for r in requirements(extra)}
    dev -= {canonicalize_name(r.name) for r in requirements(None)}
    probe = "import importlib.metadata as m; print('\\n'.join(d.metadata['Name'] for d in m.distributions()))"
    installed = {canonicalize_name(name) for name in run(python, "-c", probe, cwd=tmp_path).split()}
    assert not dev & installed, dev & installed
    assert {canonicalize_name(r.name) for r in requirements(None)} <= installed
