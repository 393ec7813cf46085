"""`hai pack`: the bundle runs in a fresh virtual environment holding only numpy and apache-tvm-ffi."""

from __future__ import annotations

import json
import platform
import subprocess
import sys
import tomllib
import venv
from pathlib import Path

import numpy as np
import onnx
import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "runtime"))
from tiny_artifact import K, M, build_kernels, numpy_reference, tiny_weights, write_tiny_artifact  # noqa: E402

import hai_compiler  # noqa: E402
from hai_compiler import microbench  # noqa: E402
from hai_compiler.pack import PackError, pack  # noqa: E402


@pytest.fixture(scope="module")
def runtime_only_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv with nothing but the bundle's requirements (pip reaches PyPI or its cache)."""
    env = tmp_path_factory.mktemp("venv")
    venv.EnvBuilder(with_pip=True).create(env)
    return env / "bin" / "python"


def install_requirements(python: Path, bundle: Path) -> None:
    """The bundle's requirements into `python`'s venv, at the versions CI tests (constraints.txt)."""
    constraints = str(ROOT / "constraints.txt")
    install = [
        str(python),
        "-m",
        "pip",
        "install",
        "-q",
        "-r",
        str(bundle / "requirements.txt"),
        "-c",
        constraints,
    ]
    subprocess.run(install, check=True, capture_output=True, timeout=600)


def test_bundle_measures_the_device_without_the_compiler(tmp_path: Path, runtime_only_python: Path) -> None:
    onnx.save(microbench.gemm_case("f32", 16).model, tmp_path / "mm.onnx")
    artifact = hai_compiler.compile(tmp_path / "mm.onnx", output=tmp_path / "mm.hai")
    bundle = pack(artifact, tmp_path / "bundle", microbench=microbench.Sizes.quick())
    install_requirements(runtime_only_python, bundle)
    measured = tmp_path / "measured.json"
    command = [str(runtime_only_python), "measure_device.py", "--runs", "2", "--json", str(measured)]
    done = subprocess.run(command, capture_output=True, text=True, cwd=bundle, timeout=300)
    assert done.returncode == 0, done.stderr
    (cpu,) = json.loads(measured.read_text())["devices"]
    assert (cpu["device"], cpu["target"]) == ("cpu", "x86" if platform.machine() == "x86_64" else "arm64")
    assert cpu["flops"]["f32"] > 0 and cpu["launch_seconds"] > 0 and cpu["transfer"] is None


def test_bundle_runs_without_the_compiler(tmp_path: Path, runtime_only_python: Path) -> None:
    artifact = write_tiny_artifact(tmp_path / "tiny.hai", build_kernels(tmp_path / "k.so"))
    bundle = pack(artifact, tmp_path / "bundle")
    requirements = bundle / "requirements.txt"
    runtime_extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"][
        "runtime"
    ]
    assert [Requirement(line) for line in requirements.read_text().splitlines()] == [
        Requirement(text) for text in runtime_extra
    ]  # ranges, so a device keeps the numpy it has when it fits
    install_requirements(runtime_only_python, bundle)
    probe = (
        "import importlib.util as u; "
        "print([m for m in ('tvm', 'onnx', 'lark', 'torch', 'ir') if u.find_spec(m)])"
    )
    probe_command = [str(runtime_only_python), "-c", probe]
    found = subprocess.run(probe_command, capture_output=True, text=True, cwd=bundle)
    assert found.stdout.strip() == "[]", found.stdout + found.stderr

    x = np.random.default_rng(0).standard_normal((M, K)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    command = [str(runtime_only_python), "run_model.py", "--input", f"x={tmp_path / 'x.npy'}",
               "--output-dir", str(tmp_path / "out")]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, cwd=bundle, timeout=120)
    assert done.returncode == 0, done.stderr
    expected = numpy_reference(x, tiny_weights())
    np.testing.assert_allclose(np.load(tmp_path / "out" / "y.npy"), expected, rtol=1e-5)


def test_pack_refuses_what_is_not_an_artifact(tmp_path: Path) -> None:
    with pytest.raises(PackError, match="not a HAI artifact"):
        pack(tmp_path, tmp_path / "bundle")


def test_pack_command(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from hai_compiler.cli import app

    artifact = write_tiny_artifact(tmp_path / "tiny.hai", build_kernels(tmp_path / "k.so"))
    done = CliRunner().invoke(app, ["pack", str(artifact), "-o", str(tmp_path / "bundle")])
    assert done.exit_code == 0, done.output
    assert (tmp_path / "bundle" / "run_model.py").is_file()
    refused = CliRunner().invoke(app, ["pack", str(tmp_path), "-o", str(tmp_path / "b2")])
    assert refused.exit_code == 1 and "not a HAI artifact" in refused.output


def test_pack_refuses_a_bundle_inside_the_artifact(tmp_path: Path) -> None:
    artifact = write_tiny_artifact(tmp_path / "tiny.hai", build_kernels(tmp_path / "k.so"))
    before = sorted(p.name for p in artifact.iterdir())
    with pytest.raises(PackError, match="lies inside the artifact"):
        pack(artifact, artifact / "bundle")
    with pytest.raises(PackError, match="lies inside the artifact"):
        pack(artifact, artifact)
    assert sorted(p.name for p in artifact.iterdir()) == before


def test_pack_copies_only_what_the_manifest_lists_and_the_signature(tmp_path: Path) -> None:
    pytest.importorskip("cryptography")
    from runtime.artifact import SIGNATURE_FILE
    from runtime.artifact_files import read_manifest
    from runtime.signing import generate_key_files
    from targets.artifact import sign_artifact

    artifact = write_tiny_artifact(tmp_path / "tiny.hai", build_kernels(tmp_path / "k.so"))
    private, public = generate_key_files(tmp_path / "key")
    sign_artifact(artifact, private)
    (artifact / "notes.txt").write_text("not part of the artifact")
    bundle = pack(artifact, tmp_path / "bundle")
    copied = sorted(p.name for p in (bundle / "model.hai").iterdir())
    assert copied == sorted([*read_manifest(artifact).files, "manifest.json", SIGNATURE_FILE])
    read_manifest(bundle / "model.hai", trusted_keys=[public])  # the copy verifies with the signer's key
    needs = {Requirement(line).name for line in (bundle / "requirements.txt").read_text().splitlines()}
    assert needs == {"numpy", "apache-tvm-ffi", "cryptography"}  # a signed bundle can check its signature


def test_pack_refuses_a_damaged_artifact(tmp_path: Path) -> None:
    artifact = write_tiny_artifact(tmp_path / "tiny.hai", build_kernels(tmp_path / "k.so"))
    weights = artifact / "weights.bin"
    weights.write_bytes(weights.read_bytes()[:-4])
    with pytest.raises(PackError, match="cannot pack a damaged artifact: .*weights.bin .* truncated"):
        pack(artifact, tmp_path / "bundle")
    assert not (tmp_path / "bundle").exists()
