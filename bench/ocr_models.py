"""The PP-OCR models the OCR benchmarks compile (bench/ocr_pipeline.py here, bench/ocr_bundle.py for the
GPU machine): det reads one page a run, cls and rec `LINE_BATCH` lines (examples/ocr pads a page's
last batch)."""

from __future__ import annotations

from ocr_pipeline import DYNAMIC_BATCH  # examples/ocr, on the path of the scripts that import this

from hai_compiler import real_models

ROLES = ("det", "cls", "rec")
LINE_BATCH = DYNAMIC_BATCH
"""Lines cls and rec read a run: the example's for models that take any batch (onnxruntime's)."""


def input_shapes(role: str, line_batch: int = LINE_BATCH) -> dict[str, tuple[int, ...]]:
    """A PP-OCR model's input shapes: det takes one page a run, cls and rec `line_batch` lines."""
    shapes = real_models.MODELS[f"ppocr_{role}"].input_shapes
    if role == "det":
        return dict(shapes)
    return {name: (line_batch, *shape[1:]) for name, shape in shapes.items()}
