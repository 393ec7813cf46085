"""`runtime.load` + `Model.run` end to end on hand-built artifacts with real TVM kernels, against numpy:
results, one-call entry plans, refusals at load, wrong inputs, threads, and a process without the compiler."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest
from tiny_artifact import (
    ENTRY_BYTES,
    K,
    M,
    N,
    build_entry_kernels,
    build_kernels,
    numpy_reference,
    tiny_weights,
    write_entry_artifact,
    write_tiny_artifact,
)

import runtime
from runtime.artifact import FORMAT_VERSION, MANIFEST_FILE, WEIGHTS_FILE
from runtime.cpu_features import ARM_FEATURES, X86_FEATURES, host_cpu
from runtime.errors import (
    ArtifactError,
    ArtifactIntegrityError,
    ArtifactVersionError,
    InvalidArgumentError,
    ModelInputError,
    UnsupportedCpuError,
)

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def kernels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("tvm")
    return build_kernels(tmp_path_factory.mktemp("kernels") / "tiny.so")


@pytest.fixture
def artifact(tmp_path: Path, kernels: Path) -> Path:
    return write_tiny_artifact(tmp_path / "tiny.hai", kernels)


def random_x(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((M, K)).astype(np.float32)


def test_run_matches_numpy(artifact: Path) -> None:
    model = runtime.load(artifact, threads=2)
    for seed in range(3):
        x = random_x(seed)
        result = model.run({"x": x})
        assert list(result) == ["y"]
        assert result["y"].shape == (M, N) and result["y"].dtype == np.float32
        np.testing.assert_allclose(result["y"], numpy_reference(x, tiny_weights()), rtol=1e-5, atol=1e-6)


def test_outputs_are_fresh_arrays(artifact: Path) -> None:
    model = runtime.load(artifact)
    first = model.run({"x": random_x(0)})["y"]
    kept = first.copy()
    model.run({"x": random_x(1)})
    np.testing.assert_array_equal(first, kept)


def test_one_call_entry_plan(tmp_path: Path) -> None:
    pytest.importorskip("tvm")
    kernels = build_entry_kernels(tmp_path / "entry.so")
    offset = np.arange(200, 200 + ENTRY_BYTES, dtype=np.uint8)  # wraps past 255
    model = runtime.load(write_entry_artifact(tmp_path / "entry.hai", kernels, offset))
    a = np.arange(ENTRY_BYTES, dtype=np.uint8) * 7
    np.testing.assert_array_equal(model.run({"a": a})["sum"], a + offset)


# -- refusals at load ---------------------------------------------------------------------------------


def test_refuses_missing_isa_feature(tmp_path: Path, kernels: Path) -> None:
    have = host_cpu().features
    lacking = sorted({*X86_FEATURES, *ARM_FEATURES} - set(have))  # never empty: no CPU is x86 and Arm
    path = write_tiny_artifact(tmp_path / "lacking.hai", kernels, features=(*have, *lacking))
    named = re.escape(", ".join(lacking))
    with pytest.raises(UnsupportedCpuError, match=rf"needs CPU feature\(s\) {named} .*illegal instruction"):
        runtime.load(path)


def test_refuses_other_architecture(artifact: Path) -> None:
    data = json.loads((artifact / MANIFEST_FILE).read_text())
    data["target"]["arch"] = "riscv64"
    (artifact / MANIFEST_FILE).write_text(json.dumps(data))
    with pytest.raises(UnsupportedCpuError, match="compiled for riscv64"):
        runtime.load(artifact, verify=False)


def test_refuses_damaged_artifacts(artifact: Path) -> None:
    manifest = artifact / MANIFEST_FILE
    good = manifest.read_text()
    manifest.write_text(good[: len(good) // 2])
    with pytest.raises(ArtifactError, match="not valid JSON"):
        runtime.load(artifact)
    manifest.write_text(good.replace(f'"format_version": {FORMAT_VERSION}', '"format_version": 99'))
    with pytest.raises(ArtifactVersionError, match="format version 99"):
        runtime.load(artifact)
    manifest.write_text(good)
    library = artifact / "kernels.cpu.so"
    data = bytearray(library.read_bytes())
    data[-1] ^= 0xFF
    library.write_bytes(bytes(data))
    with pytest.raises(ArtifactIntegrityError, match="kernels.cpu.so does not match its checksum"):
        runtime.load(artifact)


def test_refuses_kernels_compiled_for_another_plan(tmp_path: Path) -> None:
    """A library whose `hai_plan_digest` is another plan's (here the entry model's), or that has none."""
    pytest.importorskip("tvm")
    other = write_tiny_artifact(tmp_path / "other.hai", build_entry_kernels(tmp_path / "entry.so"))
    with pytest.raises(ArtifactError, match=r"does not match the compiled kernels in .*kernels\.cpu\.so"):
        runtime.load(other)
    bare = write_tiny_artifact(tmp_path / "bare.hai", build_kernels(tmp_path / "bare.so", digest=False))
    no_digest = r"kernels\.cpu\.so has no kernel named 'hai_plan_digest'.*recompile"
    with pytest.raises(ArtifactError, match=no_digest):
        runtime.load(bare)


def test_refuses_truncated_weights(artifact: Path) -> None:
    weights = artifact / WEIGHTS_FILE
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(ArtifactIntegrityError, match="truncated"):
        runtime.load(artifact, verify=False)


# -- wrong inputs -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("feeds", "message"),
    [
        ({}, r"missing input\(s\) \['x'\]; it takes x \[4, 16\] float32"),
        ({"x": np.zeros((M, K), np.float32), "z": np.zeros(1)}, r"unexpected input\(s\) \['z'\]"),
        ({"x": np.zeros((K, M), np.float32)}, r"input 'x' must have shape \[4, 16\] .* got shape \[16, 4\]"),
        (
            {"x": np.zeros((M, K))},
            r"got shape \[4, 16\] dtype float64; convert it with .astype\(np.float32\)",
        ),
        ({"x": [[0.0] * K] * M}, "got a list, not a numpy array"),
    ],
)
def test_wrong_inputs(artifact: Path, feeds: dict, message: str) -> None:
    model = runtime.load(artifact, verify=False)
    with pytest.raises(ModelInputError, match=message):
        model.run(feeds)


@pytest.mark.parametrize(
    ("feeds", "message"), [([np.zeros((M, K), np.float32)], "got a list"), (None, "got a NoneType")]
)
def test_feeds_that_are_not_a_dict(artifact: Path, feeds: object, message: str) -> None:
    model = runtime.load(artifact, verify=False)
    with pytest.raises(ModelInputError, match=rf"run takes a dict \{{'x': array\}}, {message}"):
        model.run(feeds)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"threads": "2"}, "threads must be an int >= 1 or None, got '2'"),
        ({"threads": 0}, "threads must be an int >= 1"),
        ({"threads": True}, "threads must be an int >= 1"),
        ({"verify": "no"}, "verify must be True or False"),
    ],
)
def test_wrong_load_arguments(artifact: Path, arguments: dict, message: str) -> None:
    with pytest.raises(InvalidArgumentError, match=message):
        runtime.load(artifact, **arguments)


def test_non_contiguous_input_is_accepted(artifact: Path) -> None:
    model = runtime.load(artifact, verify=False)
    x = np.asfortranarray(random_x(5))
    np.testing.assert_allclose(model.run({"x": x})["y"], numpy_reference(x, tiny_weights()), rtol=1e-5)


# -- threads ------------------------------------------------------------------------------------------


def test_concurrent_runs_from_threads_are_correct(artifact: Path) -> None:
    """One Model shared by 6 threads; a tiny switch interval makes unserialised runs collide (checked:
    this fails with the lock removed)."""
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    model = runtime.load(artifact, threads=2)
    weights = tiny_weights()
    failures: list[str] = []

    def worker(seed: int) -> None:
        x = random_x(seed)
        expected = numpy_reference(x, weights)
        for _ in range(200):
            y = model.run({"x": x})["y"]
            if not np.allclose(y, expected, rtol=1e-5, atol=1e-6):
                failures.append(f"thread {seed} got a wrong result")
                return

    try:
        threads = [threading.Thread(target=worker, args=(seed,)) for seed in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(interval)
    assert failures == []


# -- deployment without the compiler ------------------------------------------------------------------

BLOCKED = [
    "tvm",
    "tvm_ffi",  # the Python package: the runtime reaches libtvm_ffi.so through ctypes
    "ml_dtypes",
    "onnx",
    "onnxruntime",
    "lark",
    "torch",
    "networkx",
    "ir",
    "passes",
    "targets",
    "hai_compiler",
]
NO_COMPILER_SCRIPT = textwrap.dedent(
    """
    import importlib.abc, importlib.machinery, sys
    BLOCKED = set(sys.argv[4].split(","))

    class Refuse(importlib.abc.Loader):
        def create_module(self, spec):
            raise ImportError(f"{spec.name} is blocked in this process")
        def exec_module(self, module):
            pass

    class BlockCompiler(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:  # found (its files stay locatable), but never imported
                spec = importlib.machinery.PathFinder.find_spec(name, path)
                spec = spec or importlib.machinery.ModuleSpec(name, None)
                spec.loader = Refuse()
                return spec
            return None

    sys.meta_path.insert(0, BlockCompiler())
    for name in BLOCKED:
        try:
            __import__(name)
        except ImportError:
            pass
        else:
            raise SystemExit(f"{name} was importable")

    import numpy as np
    import runtime
    model = runtime.load(sys.argv[1], threads=2)
    np.save(sys.argv[3], model.run({"x": np.load(sys.argv[2])})["y"])
    print("loaded:", sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED))
    """
)


def test_copied_artifact_runs_where_the_compiler_cannot_be_imported(
    tmp_path: Path, artifact: Path, kernels: Path
) -> None:
    elsewhere = tmp_path / "deploy" / "copy.hai"
    shutil.copytree(artifact, elsewhere)
    shutil.rmtree(artifact)
    x = random_x(9)
    np.save(tmp_path / "x.npy", x)
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-c", NO_COMPILER_SCRIPT, "copy.hai", str(tmp_path / "x.npy"),
         str(tmp_path / "y.npy"), ",".join(BLOCKED)],
        cwd=elsewhere.parent, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "loaded: []" in done.stdout
    y = np.load(tmp_path / "y.npy")
    np.testing.assert_allclose(y, numpy_reference(x, tiny_weights()), rtol=1e-5, atol=1e-6)


def test_recompiled_artifact_is_byte_identical(tmp_path: Path, artifact: Path) -> None:
    """Kernels compiled again from the same TE, written again: every file has the same bytes."""
    again = write_tiny_artifact(tmp_path / "again.hai", build_kernels(tmp_path / "again.so"))
    assert sorted(p.name for p in again.iterdir()) == sorted(p.name for p in artifact.iterdir())
    for path in artifact.iterdir():
        assert (again / path.name).read_bytes() == path.read_bytes(), path.name
