"""The OCR pipeline example (examples/ocr): det -> crop -> cls -> rec over compiled HAI models reads
the same lines as over onnxruntime sessions, and its streamed form equals page-by-page reading.

The three PP-OCR models are compiled for the host (warm kernel cache: seconds); a page's boxes must
be equal and its texts equal (the models' outputs differ by float rounding only, far from any
decision threshold on these pages).
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hai_compiler import real_models
from hai_compiler.compiler.driver import compile_model
from hai_compiler.compiler.options import CompileOptions
from runtime import load

pytest.importorskip("onnxruntime")
pytest.importorskip("PIL")
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples" / "ocr"))
from ocr_pipeline import (  # noqa: E402
    OcrModels,
    OnnxRunner,
    line_outputs,
    read_page,
    read_pages,
    rec_alphabet,
)
from pages import page_of, random_lines  # noqa: E402
from text_detection import components  # noqa: E402


@pytest.fixture(scope="module")
def hai_models(tmp_path_factory: pytest.TempPathFactory) -> OcrModels:
    directory = tmp_path_factory.mktemp("ocr")
    runners = {}
    for role in ("det", "cls", "rec"):
        name = f"ppocr_{role}"
        options = CompileOptions(input_shapes=real_models.MODELS[name].input_shapes)
        runners[role] = load(compile_model(real_models.fetch(name), directory / f"{name}.hai", options).path)
    return OcrModels(**runners, alphabet=rec_alphabet(str(real_models.fetch("ppocr_rec"))))


@pytest.fixture(scope="module")
def reference_models() -> OcrModels:
    runners = {role: OnnxRunner(str(real_models.fetch(f"ppocr_{role}"))) for role in ("det", "cls", "rec")}
    return OcrModels(**runners, alphabet=rec_alphabet(str(real_models.fetch("ppocr_rec"))))


@pytest.mark.slow
def test_pipeline_over_hai_reads_what_onnxruntime_reads(
    hai_models: OcrModels, reference_models: OcrModels
) -> None:
    lines = random_lines(np.random.default_rng(1), 5)
    page = page_of(lines, flipped=(1,))
    got, expected = read_page(page, hai_models), read_page(page, reference_models)
    assert [line.box for line in got] == [line.box for line in expected]
    assert [(line.flipped, line.text) for line in got] == [(line.flipped, line.text) for line in expected]
    assert [line.flipped for line in got] == [k == 1 for k in range(len(lines))]


class StreamedOnly:
    """A HAI model whose `run` fails: the streamed pipeline must give it its inputs through `run_many`
    (whose kernels run on the runtime's device workers)."""

    def __init__(self, model: Any) -> None:  # a loaded HAI model
        self.model, self.inputs = model, model.inputs

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        raise AssertionError("read_pages ran a HAI model input by input, not through run_many")

    def run_many(self, feeds: Iterable[Mapping[str, np.ndarray]]) -> Iterator[dict[str, np.ndarray]]:
        return self.model.run_many(feeds)


@pytest.mark.slow
def test_lines_read_in_batches_read_as_one_at_a_time(hai_models: OcrModels, tmp_path: Path) -> None:
    batched = {}
    for role in ("cls", "rec"):  # 3 lines a run: a page of 5 lines is 2 runs, the last padded
        name = f"ppocr_{role}"
        (input_name, shape), *_ = real_models.MODELS[name].input_shapes.items()
        options = CompileOptions(input_shapes={input_name: (3, *shape[1:])})
        batched[role] = load(compile_model(real_models.fetch(name), tmp_path / f"{role}.hai", options).path)
    models = OcrModels(hai_models.det, batched["cls"], batched["rec"], hai_models.alphabet)
    page = page_of(random_lines(np.random.default_rng(3), 5), flipped=(2,))
    assert read_page(page, models) == read_page(page, hai_models)


@pytest.mark.slow
def test_streamed_pages_equal_page_by_page(hai_models: OcrModels) -> None:
    """Pages with one to four lines, and one without any: the streamed pipeline (each model through
    run_many) reads what page-by-page reading does."""
    rng = np.random.default_rng(2)
    pages = [page_of(random_lines(rng, int(rng.integers(1, 5)))) for _ in range(4)]
    pages.insert(2, page_of([]))
    det, cls, rec = (StreamedOnly(model) for model in (hai_models.det, hai_models.cls, hai_models.rec))
    streamed = replace(hai_models, det=det, cls=cls, rec=rec)
    assert list(read_pages(pages, streamed, depth=2)) == [read_page(page, hai_models) for page in pages]


@pytest.mark.slow
def test_a_failing_page_stops_the_stream_with_its_error(hai_models: OcrModels) -> None:
    pages = [page_of(["edge 1"]), np.zeros((10, 10), np.uint8)]  # the second is not RGB
    with pytest.raises((ValueError, IndexError)):
        list(read_pages(pages, hai_models))


def test_components_are_eight_connected() -> None:
    mask = np.zeros((6, 8), bool)
    mask[0, 0] = mask[1, 1] = mask[2, 2] = True  # one diagonal component
    mask[4:6, 5:8] = True
    found = sorted((int(r.min()), int(c.min()), len(r)) for r, c in components(mask))
    assert found == [(0, 0, 3), (4, 5, 6)]


class RowSums:
    """A model of fixed batch `batch` whose output row is the sum of its input line; counts its runs."""

    def __init__(self, batch: int | None) -> None:
        self.inputs = [type("Binding", (), {"name": "x", "shape": (batch if batch else "N", 3, 2, 2)})]
        self.batch, self.runs = batch, 0

    def run(self, feeds: dict) -> dict:
        (x,) = feeds.values()
        assert self.batch is None or len(x) == self.batch
        self.runs += 1
        return {"y": x.reshape(len(x), -1).sum(axis=1, keepdims=True)}


@pytest.mark.parametrize(("batch", "runs"), [(4, 2), (1, 6), (None, 1)])
def test_line_outputs_batch_and_pad(batch: int | None, runs: int) -> None:
    lines = [np.full((1, 3, 2, 2), k, np.float32) for k in range(1, 7)]
    model = RowSums(batch)  # None: any batch, read DYNAMIC_BATCH lines a run
    got = np.concatenate(list(line_outputs(model, "x", iter(lines), stream=False)))
    assert model.runs == runs
    np.testing.assert_array_equal(got[:, 0], [12.0 * k for k in range(1, 7)])
