"""The one-call entry function: compiled models run as one `hai_entry(arena, weights)` call.

Checked against onnxruntime (relative error ≤ 1e-4) and against the same model
compiled step by step (`entry="off"`); kernels with scratch buffers of 1 KB and
more run inside the entry; a kernel the entry refuses, or an entry that fails
to compile, leaves the step-by-step plan (`auto`) or an error (`on`); two
compiles from empty kernel caches give the same bytes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from compile_helpers import artifact_files, assert_matches_onnxruntime
from onnx import TensorProto, helper, numpy_helper

import runtime
from hai_compiler import real_models
from hai_compiler.accuracy import relative_error
from hai_compiler.compiler import CompileOptionError, CompileOptions, compile_model
from hai_compiler.compiler.bench import sample_inputs
from hai_compiler.demo import EMBEDDED_MODEL
from targets import entry as target_entry
from targets.entry import ENTRY_SYMBOL
from targets.plan.entry_plan import EntryFallbackWarning, EntryFunctionError

DIGITS_SHAPES = {"image": (1, 1, 8, 8)}
PAD_BYTES = 4 * 18 * 18 * 4  # the padded input the conv template allocates as scratch


def workspace_model(path: Path) -> Path:
    """Conv 4->8 over 16x16 with padding 1 (a 5 KB scratch buffer for the padded input), Relu, GAP."""
    rng = np.random.default_rng(1)
    weight = numpy_helper.from_array((rng.standard_normal((8, 4, 3, 3)) * 0.3).astype(np.float32), "W")
    nodes = [
        helper.make_node("Conv", ["x", "W"], ["c"], pads=[1, 1, 1, 1], name="conv"),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("GlobalAveragePool", ["r"], ["y"], name="gap"),
    ]
    graph = helper.make_graph(
        nodes, "workspace", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 16, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [weight],
    )  # fmt: skip
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def compile_both(model: Path, shapes, tmp_path: Path):  # type: ignore[no-untyped-def]
    """(entry artifact's CompileResult, step-by-step artifact's CompileResult) of one model."""
    entry = compile_model(model, tmp_path / "entry.hai", CompileOptions(input_shapes=shapes))
    steps = compile_model(model, tmp_path / "steps.hai", CompileOptions(input_shapes=shapes, entry="off"))
    return entry, steps


def assert_entry_matches(model: Path, shapes, feeds, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    entry, steps = compile_both(model, shapes, tmp_path)
    assert runtime.load(entry.path).manifest.plan.entry == ENTRY_SYMBOL
    assert runtime.load(steps.path).manifest.plan.entry is None
    assert_matches_onnxruntime(entry.path, model, feeds)
    got = runtime.load(entry.path, threads=2).run(dict(feeds))
    want = runtime.load(steps.path, threads=2).run(dict(feeds))
    for name, reference in want.items():
        assert relative_error(got[name], reference) <= 1e-6, name


def test_digits_runs_as_one_entry_call(tmp_path: Path) -> None:
    feeds = sample_inputs(runtime.load(compile_model(
        EMBEDDED_MODEL, tmp_path / "probe.hai", CompileOptions(input_shapes=DIGITS_SHAPES, entry="off")
    ).path).inputs)  # fmt: skip
    assert_entry_matches(EMBEDDED_MODEL, DIGITS_SHAPES, feeds, tmp_path)


def test_ppocr_direction_classifier_runs_as_one_entry_call(tmp_path: Path) -> None:
    model = real_models.MODELS["ppocr_cls"]
    assert_entry_matches(real_models.fetch("ppocr_cls"), model.input_shapes, model.sample_inputs(), tmp_path)


def test_kernel_with_a_scratch_buffer_runs_inside_the_entry(tmp_path: Path) -> None:
    model = workspace_model(tmp_path / "ws.onnx")
    feeds = {"x": np.random.default_rng(2).standard_normal((1, 4, 16, 16)).astype(np.float32)}
    entry, _ = compile_both(model, None, tmp_path)
    (conv,) = [k for k in entry.plan.kernels if "conv" in k.name]
    assert "alloc_buffer((1, 4, 18, 18)" in conv.func.script()  # PAD_BYTES of scratch, above 1 KB
    assert PAD_BYTES > 1024
    assert_entry_matches(model, None, feeds, tmp_path)


def test_refused_kernel_keeps_step_by_step_calls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = workspace_model(tmp_path / "ws.onnx")
    feeds = {"x": np.random.default_rng(3).standard_normal((1, 4, 16, 16)).astype(np.float32)}

    def refuse_conv(kernel):  # type: ignore[no-untyped-def]
        return "refused for the test" if "conv" in kernel.name else None

    monkeypatch.setattr(target_entry, "subroutine_refusal", refuse_conv)
    result = compile_model(model, tmp_path / "auto.hai", CompileOptions())
    assert runtime.load(result.path).manifest.plan.entry is None
    assert_matches_onnxruntime(result.path, model, feeds)
    with pytest.raises(EntryFunctionError, match=r"hai_conv_\w+ \(conv.*refused for the test"):
        compile_model(model, tmp_path / "on.hai", CompileOptions(entry="on"))


def test_entry_that_fails_to_compile_warns_and_keeps_steps(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = workspace_model(tmp_path / "ws.onnx")

    def broken(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise RuntimeError("LLVM said no")

    monkeypatch.setattr(target_entry, "entry_objects", broken)
    with pytest.warns(EntryFallbackWarning, match="LLVM said no"):
        result = compile_model(model, tmp_path / "auto.hai", CompileOptions())
    assert runtime.load(result.path).manifest.plan.entry is None
    with pytest.raises(EntryFunctionError, match="LLVM said no"):
        compile_model(model, tmp_path / "on.hai", CompileOptions(entry="on"))


def test_entry_artifacts_are_byte_identical_across_compiles(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    compiled = []
    for run in ("a", "b"):
        monkeypatch.setenv("HAI_CACHE_DIR", str(tmp_path / f"cache-{run}"))  # nothing shared between the two
        result = compile_model(
            EMBEDDED_MODEL, tmp_path / f"{run}.hai", CompileOptions(input_shapes=DIGITS_SHAPES)
        )
        compiled.append(artifact_files(result.path))
    assert b'"entry": "hai_entry"' in compiled[0]["manifest.json"]
    assert compiled[0] == compiled[1]


def test_unknown_entry_mode_is_refused() -> None:
    with pytest.raises(CompileOptionError, match="entry='maybe'"):
        CompileOptions(entry="maybe")
