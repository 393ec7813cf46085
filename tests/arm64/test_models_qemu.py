"""Models compiled with `--target arm64 --cpu cortex-a72` here (LLVM cross, linked by aarch64 gcc) and run
by HAI's runtime under `qemu-aarch64 -cpu cortex-a72`, against onnxruntime on the host (fp32 ≤ 1e-4
relative error): the digits CNN, PP-OCR cls, a bidirectional LSTM and a GRU (hidden sizes leaving a
partly padded NEON tile) in the fast tier (one qemu process), PP-OCR rec, magika and orientation in the
slow tier; the artifact's files are aarch64 (its kernels, the pinned libtvm_runtime.so) and its hot fp32
kernels use NEON vector FMAs (`fmla v*.4s`), the recurrent ones too."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import numpy as np
import pytest

from hai_compiler import real_models
from hai_compiler.accuracy import relative_error
from hai_compiler.arm64_env import Arm64Env
from hai_compiler.demo import EMBEDDED_MODEL, load_heldout_digits
from runtime.artifact import MANIFEST_FILE, TVM_RUNTIME_FILE, kernel_library_file
from runtime.manifest_checks import parse_manifest
from targets.arm64.tvm_runtime import SHA256

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "compile"))
from compile_helpers import recurrent_model  # noqa: E402
from qemu_models import compile_arm64, instruction_counts, run_under_qemu  # noqa: E402

ort = pytest.importorskip("onnxruntime")

CPU = "cortex-a72"
FAST_REAL = ("ppocr_cls",)
SLOW_REAL = ("ppocr_rec", "magika", "orientation")
EM_AARCH64 = 183


def onnxruntime_outputs(path: Path, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, inputs), strict=True))


def digits_case() -> tuple[Path, dict[str, tuple[int, ...]], dict[str, np.ndarray]]:
    x, _ = load_heldout_digits()
    return Path(EMBEDDED_MODEL), {"image": (1, 1, 8, 8)}, {"image": np.ascontiguousarray(x[:1])}


RECURRENT = {
    "lstm": dict(op="LSTM", direction="bidirectional", seq=24, batch=1, inputs=64, hidden=50),
    "gru": dict(op="GRU", direction="forward", seq=16, batch=2, inputs=32, hidden=40, lens=[16, 9]),
}


def recurrent_case(name: str, folder: Path) -> tuple[Path, dict[str, tuple[int, ...]], dict[str, np.ndarray]]:
    model, feeds = recurrent_model(folder / f"{name}.onnx", **RECURRENT[name])  # type: ignore[arg-type]
    return model, {}, feeds


def real_case(name: str) -> tuple[Path, dict[str, tuple[int, ...]], dict[str, np.ndarray]]:
    model = real_models.MODELS[name]
    return real_models.fetch(name), dict(model.input_shapes), model.sample_inputs()


def compile_and_run(
    cases: dict[str, tuple[Path, dict, dict]], env: Arm64Env, folder: Path
) -> dict[str, tuple[Path, dict[str, np.ndarray], dict[str, np.ndarray]]]:
    """name -> (artifact, outputs under qemu, onnxruntime's outputs), all run by one qemu process."""
    artifacts = {name: compile_arm64(model, folder / f"{name}.hai", CPU, shapes)
                 for name, (model, shapes, _) in cases.items()}  # fmt: skip
    jobs = [(artifacts[name], inputs) for name, (_, _, inputs) in cases.items()]
    outputs = run_under_qemu(env, CPU, jobs, folder)
    return {
        name: (artifacts[name], got, onnxruntime_outputs(model, inputs))
        for (name, (model, _, inputs)), got in zip(cases.items(), outputs, strict=True)
    }


def assert_matches(name: str, got: dict[str, np.ndarray], reference: dict[str, np.ndarray]) -> None:
    assert list(got) == list(reference), name
    for output, ref in reference.items():
        assert got[output].shape == ref.shape, f"{name}: {output}"
        error = relative_error(got[output], ref)
        assert error <= 1e-4, f"{name}: output {output} relative error {error:.2e} under qemu {CPU}"


@pytest.fixture(scope="module")
def fast_runs(arm64_env: Arm64Env, cross_gcc: str, tmp_path_factory: pytest.TempPathFactory) -> dict:
    folder = tmp_path_factory.mktemp("arm64_models")
    cases = {
        "digits": digits_case(),
        **{name: real_case(name) for name in FAST_REAL},
        **{name: recurrent_case(name, folder) for name in RECURRENT},
    }
    return compile_and_run(cases, arm64_env, folder)


@pytest.mark.parametrize("name", ["digits", *FAST_REAL, *RECURRENT])
def test_fp32_matches_onnxruntime_under_qemu(fast_runs: dict, name: str) -> None:
    _, got, reference = fast_runs[name]
    assert_matches(name, got, reference)


@pytest.mark.slow
def test_real_models_match_onnxruntime_under_qemu(
    arm64_env: Arm64Env, cross_gcc: str, tmp_path: Path
) -> None:
    runs = compile_and_run({name: real_case(name) for name in SLOW_REAL}, arm64_env, tmp_path)
    for name, (_, got, reference) in runs.items():
        assert_matches(name, got, reference)


def test_packed_bundle_runs_under_qemu(fast_runs: dict, arm64_env: Arm64Env, tmp_path: Path) -> None:
    """`hai pack` of an arm64 artifact: the bundle's own runtime (pure Python) and run_model.py run in the
    arm64 Python with only its numpy and tvm-ffi, as on a board after `pip install -r requirements.txt`."""
    from hai_compiler.pack import pack

    artifact, got, _ = fast_runs["digits"]
    bundle = pack(artifact, tmp_path / "bundle")
    assert not [p for p in (bundle / "runtime").rglob("*") if p.suffix in {".so", ".pyd", ".c"}]
    (x,) = digits_case()[2].values()
    np.save(tmp_path / "x.npy", x)
    script = (
        "import runpy, sys, runtime; print(runtime.__file__); sys.argv = sys.argv[1:]; "
        "runpy.run_path(sys.argv[0], run_name='__main__')"
    )
    out = tmp_path / "out"
    args = (bundle / "run_model.py", "--input", f"image={tmp_path / 'x.npy'}", "--output-dir", out)
    done = arm64_env.run(script, *args, cpu=CPU, pythonpath=[bundle])
    assert done.returncode == 0, done.stdout + done.stderr[-4000:]
    assert Path(done.stdout.splitlines()[0]).is_relative_to(bundle), done.stdout
    ((name, expected),) = got.items()
    np.testing.assert_array_equal(np.load(out / f"{name}.npy"), expected)


def elf_machine(path: Path) -> int:
    return int.from_bytes(path.read_bytes()[18:20], "little")


def test_artifact_is_aarch64(fast_runs: dict) -> None:
    artifact = fast_runs["digits"][0]
    manifest = parse_manifest((artifact / MANIFEST_FILE).read_text())
    assert (manifest.target.name, manifest.target.arch, manifest.target.cpu) == ("arm64", "aarch64", CPU)
    assert elf_machine(artifact / kernel_library_file("cpu")) == EM_AARCH64
    runtime_library = (artifact / TVM_RUNTIME_FILE).read_bytes()
    assert hashlib.sha256(runtime_library).hexdigest() == SHA256


@pytest.mark.parametrize(
    ("name", "family"),
    [("digits", "conv"), ("digits", "gemm"), ("ppocr_cls", "conv"), ("lstm", "lstm"), ("gru", "gru")],
)
def test_fp32_kernels_use_neon_vector_fma(fast_runs: dict, name: str, family: str) -> None:
    counts = instruction_counts(fast_runs[name][0] / kernel_library_file("cpu"), r"\bfmla\s+v\d+\.4s")
    kernels = {s for s in counts if s.startswith(f"hai_{family}_")}
    assert kernels, f"no {family} kernel of {name} has an fmla v*.4s: {counts}"
