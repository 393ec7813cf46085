"""`hai compile --report`'s per-layer precision and where it came from: the float model's own layers,
layers HAI's quantize pass made INT8, and layers an imported quantized model brought (QLinearConv)."""

from __future__ import annotations

import sys
from pathlib import Path

import onnx
from typer.testing import CliRunner

from hai_compiler.cli import app
from hai_compiler.compiler import CompileOptions, compile_model
from hai_compiler.compiler.layer_precision import LayerPrecision, layer_precisions, summary
from hai_compiler.demo import EMBEDDED_MODEL, load_heldout_digits
from hai_compiler.quantize.calibrate import calibrate, prepare_graph
from ir.quantization import record_range
from passes.manager import PassContext
from passes.quantize import Quantize

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "onnx_import"))
from test_quantized_onnx import qlinear_conv_model  # noqa: E402

SHAPES = {"image": (1, 1, 8, 8)}


def rows_of(model: object, tmp_path: Path) -> list:  # type: ignore[type-arg]
    result = compile_model(model, tmp_path / "m.hai", CompileOptions(input_shapes=SHAPES))
    return layer_precisions(result.groups, result.plan.kernels)


def test_float_digits_layers_run_at_the_models_precision(tmp_path: Path) -> None:
    rows = rows_of(EMBEDDED_MODEL, tmp_path)
    ops = [n.op_type for n in onnx.load(EMBEDDED_MODEL).graph.node if n.op_type in ("Conv", "Gemm", "MatMul")]
    assert [row.op for row in rows] == ops
    assert {(row.precision, row.source) for row in rows} == {("fp32", "model")}
    assert summary(rows) == f"{len(ops)} layers: {len(ops)} fp32 model"


def test_hai_quantized_layers_say_hai(tmp_path: Path) -> None:
    digits = load_heldout_digits()[0]
    graph = prepare_graph(EMBEDDED_MODEL, SHAPES)
    stats = calibrate(graph, [{"image": digits[i : i + 1]} for i in range(8)], "minmax", progress=False)
    for name, (lo, hi) in stats.ranges.items():
        record_range(graph.metadata, name, lo, hi)
    Quantize(precision="int4").run(graph, PassContext())  # INT4 weight-only; the RGB-less first conv: INT8
    rows = rows_of(graph, tmp_path)
    assert rows and all(row.source == "hai" for row in rows)
    assert {row.precision for row in rows} <= {"int4 weight-only", "int8 (u8 x i8)"}
    assert "int4 weight-only" in {row.precision for row in rows}


def test_imported_qlinear_conv_says_imported_in_the_cli_report(tmp_path: Path) -> None:
    model, _ = qlinear_conv_model(bias=True)
    path = tmp_path / "qconv.onnx"
    onnx.save(model, path)
    done = CliRunner().invoke(app, ["compile", str(path), "-o", str(tmp_path / "q.hai"), "--report"])
    assert done.exit_code == 0, done.output
    assert "layers: precision and where it came from" in done.output
    assert "1 layers: 1 int8 (u8 x i8) imported" in done.output


def test_summary_counts_by_precision_and_source() -> None:
    rows = [LayerPrecision("k", "n", "Conv", "int8 (u8 x i8)", "imported")] * 2
    rows.append(LayerPrecision("k", "n", "Gemm", "fp32", "model"))
    assert summary(rows) == "3 layers: 1 fp32 model, 2 int8 (u8 x i8) imported"
    assert summary([]) == "no layers"
