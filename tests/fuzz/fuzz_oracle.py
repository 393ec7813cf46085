"""The fuzz oracle: every case ends in one `error:` line, or (where onnxruntime accepts the input too)
in onnxruntime's result within DESIGN.md's tolerance. Never a traceback, a crash, or a wrong result
with exit code 0. Also the small models the fuzzers mutate, and running `hai` in-process or as a
process."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from hypothesis import HealthCheck, settings
from onnx import TensorProto, helper, numpy_helper
from typer.testing import CliRunner, Result

from hai_compiler.cli import app

ROOT = Path(__file__).resolve().parents[2]
RTOL = 1e-4  # DESIGN.md: fp32 relative error to onnxruntime
F32 = TensorProto.FLOAT


EXPLORE = os.environ.get("HAI_FUZZ_EXPLORE") == "1"
"""`HAI_FUZZ_EXPLORE=1 pytest -m slow tests/fuzz` draws new cases on every run, to hunt for new bugs."""


def fuzz_settings(examples: int) -> settings:
    """Hypothesis settings of a fuzzer: the cases are the same on every run (derandomized, so CI is
    reproducible: the slow tier draws its own, larger set) unless HAI_FUZZ_EXPLORE=1."""
    return settings(
        max_examples=examples, derandomize=not EXPLORE, deadline=None, database=None,
        suppress_health_check=list(HealthCheck),
    )  # fmt: skip


def invoke(*args: str | os.PathLike[str]) -> Result:
    """`hai ARGS` in-process; stdout and stderr apart."""
    return CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=True)


def run_process(args: Sequence[str | os.PathLike[str]]) -> subprocess.CompletedProcess[str]:
    """`python -m hai_compiler ARGS` as its own process: a crash shows as a signal exit code."""
    return subprocess.run(
        [sys.executable, "-m", "hai_compiler", *map(str, args)],
        capture_output=True, text=True, cwd=ROOT, timeout=300,
    )  # fmt: skip


PROGRESS_LINE = re.compile(r"^(\[ *\d+\.\d s\] .*|warning: .*)?\n", re.MULTILINE)
"""A stage's progress line (hai_compiler/progress.py: a stage that ran 1 s, as on a loaded machine), a
warning, or an empty line: what may stand before a command's one `error:` line."""


def without_progress(stderr: str) -> str:
    return PROGRESS_LINE.sub("", stderr)


def assert_clean(code: int, stdout: str, stderr: str, context: object = "") -> bool:
    """Exit 0, or exit 1/2 with one `error:` line (exit 2: click's usage error); never a traceback.
    Returns whether the command succeeded."""
    assert "Traceback" not in stdout + stderr, (context, stderr[-3000:])
    if code == 0:
        return True
    assert code in (1, 2), (context, code, stderr[-3000:])
    if code == 1:
        lines = [line for line in stderr.splitlines() if line.startswith("error: ")]
        assert len(lines) == 1 and without_progress(stderr).startswith("error: "), (context, stderr[-3000:])
        assert len(lines[0]) > len("error: ") + 10, (context, stderr)  # it names the problem
    else:
        assert "Error" in stderr or "error" in stderr, (context, stderr[-3000:])
    return False


def assert_clean_result(result: Result, context: object = "") -> bool:
    """`assert_clean` for an in-process run: an exception other than the CLI's exit is a bug."""
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        import traceback

        trace = "".join(traceback.format_exception(*result.exc_info))  # type: ignore[misc]
        raise AssertionError(f"{context}: uncaught {type(result.exception).__name__}\n{trace[-3000:]}")
    return assert_clean(result.exit_code, result.stdout, result.stderr, context)


# -- the models the fuzzers start from ------------------------------------------------------------


def model_proto(
    nodes: list, inputs: list, outputs: list, initializers: Sequence = (), opset: int = 17
) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "fuzz", inputs, outputs, list(initializers))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def seed_models() -> dict[str, onnx.ModelProto]:
    """Small models of the op families the real models use: elementwise, conv/pool/gemm, shape ops."""
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "w")
    b = numpy_helper.from_array(rng.standard_normal(4).astype(np.float32), "b")
    fc = numpy_helper.from_array(rng.standard_normal((3, 16)).astype(np.float32), "fc")
    shape = numpy_helper.from_array(np.array([1, -1], np.int64), "shape")
    cnn = model_proto(
        [
            helper.make_node("Conv", ["x", "w", "b"], ["c"], name="conv", pads=[1, 1, 1, 1], strides=[1, 1]),
            helper.make_node("Relu", ["c"], ["r"], name="relu"),
            helper.make_node("MaxPool", ["r"], ["p"], name="pool", kernel_shape=[2, 2], strides=[2, 2]),
            helper.make_node("Reshape", ["p", "shape"], ["f"], name="flatten"),
            helper.make_node("Gemm", ["f", "fc"], ["y"], name="gemm", transB=1),
        ],
        [helper.make_tensor_value_info("x", F32, [1, 3, 4, 4])],
        [helper.make_tensor_value_info("y", F32, [1, 3])],
        [w, b, fc, shape],
    )
    elementwise = model_proto(
        [
            helper.make_node("Add", ["x", "y"], ["s"], name="add"),
            helper.make_node("Mul", ["s", "x"], ["m"], name="mul"),
            helper.make_node("Sigmoid", ["m"], ["g"], name="sigmoid"),
            helper.make_node("Softmax", ["g"], ["z"], name="softmax", axis=-1),
        ],
        [helper.make_tensor_value_info("x", F32, [2, 3]), helper.make_tensor_value_info("y", F32, [1, 3])],
        [helper.make_tensor_value_info("z", F32, [2, 3])],
    )
    perm = numpy_helper.from_array(np.array([0, 2], np.int64), "axes")
    shapes = model_proto(
        [
            helper.make_node("Transpose", ["x"], ["t"], name="transpose", perm=[1, 0, 2]),
            helper.make_node("ReduceMean", ["t"], ["m"], name="mean", axes=[2], keepdims=1),
            helper.make_node("Unsqueeze", ["m", "axes"], ["u"], name="unsqueeze"),
            helper.make_node("Concat", ["u", "u"], ["y"], name="concat", axis=1),
        ],
        [helper.make_tensor_value_info("x", F32, [2, 3, 4])],
        [helper.make_tensor_value_info("y", F32, None)],
        [perm],
    )
    return {"cnn": cnn, "elementwise": elementwise, "shapes": shapes}


# -- the reference ---------------------------------------------------------------------------------


def onnxruntime_outputs(path: Path, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray] | None:
    """onnxruntime's outputs by name, or None when it refuses the model or the inputs."""
    try:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        names = [o.name for o in session.get_outputs()]
        return dict(zip(names, session.run(None, dict(feeds)), strict=True))
    except Exception:  # noqa: BLE001  any refusal of the reference is "not accepted"
        return None


def random_feeds(model: onnx.ModelProto, seed: int = 0) -> dict[str, np.ndarray] | None:
    """Seeded float inputs for every graph input with a static float32 shape (None when one has not)."""
    rng = np.random.default_rng(seed)
    initializers = {t.name for t in model.graph.initializer}
    feeds = {}
    for vi in model.graph.input:
        if vi.name in initializers:
            continue
        tensor = vi.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else -1 for d in tensor.shape.dim]
        if tensor.elem_type != F32 or not tensor.HasField("shape") or any(d <= 0 or d > 64 for d in dims):
            return None
        feeds[vi.name] = rng.standard_normal(dims).astype(np.float32)
    return feeds


def assert_matches(actual: np.ndarray, expected: np.ndarray, context: object) -> None:
    """Same shape, NaN/inf where the reference has them, the rest within RTOL of the largest value."""
    assert actual.shape == expected.shape, (context, actual.shape, expected.shape)
    finite = np.isfinite(expected)
    assert np.array_equal(np.isnan(actual), np.isnan(expected)), (context, actual, expected)
    assert np.array_equal(actual[~finite & ~np.isnan(expected)], expected[~finite & ~np.isnan(expected)]), (
        context
    )
    if finite.any():
        scale = max(float(np.max(np.abs(expected[finite]))), 1e-6)
        error = float(np.max(np.abs(actual[finite].astype(np.float64) - expected[finite]))) / scale
        assert error <= RTOL, (context, error)


def check_model_file(path: Path, work: Path, context: object, compiled: bool = False) -> None:
    """`hai interp` on the model (with `compiled`, also `hai compile` and `hai run`): one error line,
    or onnxruntime's outputs within RTOL."""
    model = onnx.load(str(path), load_external_data=False) if _parses(path) else None
    feeds = random_feeds(model) if model is not None else None
    given: list[str | os.PathLike[str]] = []
    for name, array in (feeds or {}).items():
        np.save(work / f"{name}.npy", array)
        given += ["--input", f"{name}={work / f'{name}.npy'}"]
    runs: list[tuple[str, list[str | os.PathLike[str]], Path | None]] = [
        ("interp", [path, *given, "--output-dir", work / "interp"], work / "interp")
    ]
    if compiled:
        runs.append(("compile", [path, "-o", work / "m.hai"], None))
        runs.append(("run", [work / "m.hai", *given, "--output-dir", work / "run"], work / "run"))
    expected = onnxruntime_outputs(path, feeds) if feeds is not None else None
    for command, args, out in runs:
        if not assert_clean_result(invoke(command, *args), (command, context)):
            return
        if expected is not None and out is not None:
            for name, want in expected.items():
                assert_matches(np.load(out / f"{name}.npy"), want, (command, context, name))


def _parses(path: Path) -> bool:
    try:
        onnx.load(str(path), load_external_data=False)
        return True
    except Exception:  # noqa: BLE001  a file the mutation left unparsable
        return False
