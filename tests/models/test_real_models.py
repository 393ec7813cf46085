"""Real models end to end through the front half: ONNX import, the reference
interpreter against onnxruntime, and `.hir` round-trips before and after the
`default` pipeline.

The embedded digits model and one real model run by default; all five real
models of shared/MODELS.md are the `slow` tier (`pytest -m slow`).
"""

from __future__ import annotations

import pytest

from hai_compiler import real_models
from hai_compiler.accuracy import relative_error
from hai_compiler.demo import EMBEDDED_MODEL, load_heldout_digits
from hai_compiler.onnx_import import import_onnx
from ir import Interpreter, verify
from ir.parser import parse_hir
from ir.printer import print_graph
from passes.manager import Instrument, PassContext, PassManager
from passes.pipeline import parse_pipeline

ort = pytest.importorskip("onnxruntime")

FAST_REAL_MODEL = "ppocr_cls"


def onnxruntime_outputs(path, inputs):  # type: ignore[no-untyped-def]
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, inputs)))


def assert_round_trips(graph) -> None:  # type: ignore[no-untyped-def]
    text = print_graph(graph)
    assert print_graph(parse_hir(text, filename=graph.name)) == text


class RoundTripEachStage(Instrument):
    """Checks `print(parse(print(g))) == print(g)` after every pass of the pipeline."""

    def after_pass(self, index, pass_, graph) -> None:  # type: ignore[no-untyped-def]
        assert_round_trips(graph)


def check_model(path, input_shapes, inputs, input_values=None) -> None:  # type: ignore[no-untyped-def]
    reference = onnxruntime_outputs(path, {**inputs, **(input_values or {})})
    graph = import_onnx(path, input_shapes=input_shapes, bind_inputs=input_values)
    verify(graph)
    assert_round_trips(graph)
    for stage, g in (("imported", graph), ("default pipeline", None)):
        if g is None:
            manager = PassManager(parse_pipeline("default"), [RoundTripEachStage()], verify_each=True)
            g = manager.run(graph, PassContext())
        outputs = Interpreter(g).run(inputs)
        assert list(outputs) == list(reference), stage
        for name, ref in reference.items():
            error = relative_error(outputs[name], ref)
            assert error <= 1e-4, f"{stage}: output {name} relative error {error:.2e}"


def test_embedded_digits_model_matches_onnxruntime() -> None:
    x, _ = load_heldout_digits()
    check_model(EMBEDDED_MODEL, {"image": x.shape}, {"image": x})


def test_embedded_digits_model_accuracy() -> None:
    x, y = load_heldout_digits()
    graph = import_onnx(EMBEDDED_MODEL, input_shapes={"image": x.shape})
    graph = PassManager(parse_pipeline("default")).run(graph, PassContext())
    (logits,) = Interpreter(graph).run({"image": x}).values()
    assert (logits.argmax(axis=1) == y).mean() >= 0.97


def _check_real(name: str) -> None:
    model = real_models.MODELS[name]
    path = real_models.fetch(name)
    check_model(path, model.input_shapes, model.sample_inputs(), model.input_values)


def test_fast_real_model() -> None:
    _check_real(FAST_REAL_MODEL)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(set(real_models.MODELS) - {FAST_REAL_MODEL}))
def test_real_model(name: str) -> None:
    _check_real(name)
