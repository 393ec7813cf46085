"""`hai quantize` on the embedded digits CNN: writes a .hir + weights that the interpreter runs, prints the
per-layer table, the size before/after and closeness to fp32 on the calibration samples its budget holds on
(recomputed here with onnxruntime) and on evaluation data; degenerate data warns; bad options and
non-finite data are one clear error line."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import onnxruntime
import pytest
from cli_helpers import assert_user_error, invoke

from hai_compiler.demo import EMBEDDED_MODEL, load_heldout_digits
from ir import run_graph
from ir.parser import read_hir


def digits_files(tmp_path: Path) -> tuple[Path, Path, Path]:
    x, y = load_heldout_digits()
    np.savez(tmp_path / "cal.npz", image=x[:64])
    np.savez(tmp_path / "eval.npz", image=x[64:128])
    np.save(tmp_path / "labels.npy", y[64:128])
    return tmp_path / "cal.npz", tmp_path / "eval.npz", tmp_path / "labels.npy"


def test_quantize_writes_a_runnable_hir_and_reports(tmp_path: Path) -> None:
    cal, evaluation, labels = digits_files(tmp_path)
    out = tmp_path / "q.hir"
    result = invoke(
        "quantize", EMBEDDED_MODEL, "--input-shape", "image=1,1,8,8", "--calibration-data", cal,
        "--min-sqnr", "30", "--eval-data", evaluation, "--labels", labels, "-o", out,
        "--save-stats", tmp_path / "stats.npz",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "per-layer precision" in result.output and "node_conv2d_1" in result.output
    assert "smaller than fp32" in result.output and "accuracy" in result.output
    graph = read_hir(out)
    x = load_heldout_digits()[0][200:201]
    assert run_graph(graph, {"image": x})["logits"].shape == (1, 10)
    again = invoke(
        "quantize", EMBEDDED_MODEL, "--input-shape", "image=1,1,8,8", "--precision", "int8",
        "--stats", tmp_path / "stats.npz", "-o", tmp_path / "q8.hir",
    )  # fmt: skip
    assert again.exit_code == 0, again.output


def test_quantize_bad_options_are_one_error_line(tmp_path: Path) -> None:
    cal, _, _ = digits_files(tmp_path)
    base = ["quantize", EMBEDDED_MODEL, "--input-shape", "image=1,1,8,8", "-o", tmp_path / "q.hir"]
    assert_user_error(invoke(*base, "--precision", "int3"), "'int3' is not one of", "'mixed'", code=2)
    assert_user_error(invoke(*base, "--precision", "int8"), "give calibration data")
    assert_user_error(
        invoke(*base, "--calibration-data", cal, "--layer-precision", "conv1"), "write NAME=PRECISION"
    )
    assert_user_error(
        invoke(*base, "--calibration-data", cal, "--min-sqnr", "300"),
        "--min-sqnr 300 dB is unreachable",
        "most precise choice gives",
    )
    np.savez(tmp_path / "wrong.npz", pixels=np.zeros((4, 1, 8, 8), np.float32))
    assert_user_error(invoke(*base, "--calibration-data", tmp_path / "wrong.npz"), "image")


def reported(output: str, data: str) -> tuple[int, float]:
    """(samples, SQNR dB) of the report's line on `data` (calibration / evaluation samples)."""
    found = re.search(rf"against fp32 on (\d+) {data} samples: SQNR ([\d.]+) dB", " ".join(output.split()))
    assert found is not None, output
    return int(found[1]), float(found[2])


def independent_sqnr(hir: Path, images: np.ndarray) -> float:
    """SQNR (dB) of the quantized .hir (interpreted) against onnxruntime's fp32 digits CNN on `images`."""
    session = onnxruntime.InferenceSession(str(EMBEDDED_MODEL), providers=["CPUExecutionProvider"])
    graph = read_hir(hir)
    reference = np.concatenate([session.run(None, {"image": x[None]})[0] for x in images]).astype(np.float64)
    quantized = np.concatenate([run_graph(graph, {"image": x[None]})["logits"] for x in images])
    return float(10 * np.log10((reference**2).sum() / ((reference - quantized) ** 2).sum()))


@pytest.mark.parametrize("floor", [35.0, 40.0])
def test_min_sqnr_holds_on_the_calibration_samples_the_report_names(floor: float, tmp_path: Path) -> None:
    cal, evaluation, _ = digits_files(tmp_path)
    out = tmp_path / "q.hir"
    result = invoke(
        "quantize", EMBEDDED_MODEL, "--input-shape", "image=1,1,8,8", "--calibration-data", cal,
        "--min-sqnr", str(floor), "--eval-data", evaluation, "-o", out,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    samples, sqnr = reported(result.stdout, "calibration")
    assert samples == 64 and f"--min-sqnr {floor:g} dB holds" in " ".join(result.stdout.split())
    measured = independent_sqnr(out, np.load(cal)["image"])
    assert measured >= floor and sqnr == pytest.approx(measured, abs=0.01)
    evaluated = reported(result.stdout, "evaluation")
    assert evaluated[0] == 64 and evaluated[1] == pytest.approx(
        independent_sqnr(out, np.load(evaluation)["image"]), abs=0.01
    )
    assert (evaluated[1] < floor) == ("warning:" in result.stderr), result.stderr


def test_degenerate_calibration_data_warns_and_bad_values_are_one_error_line(tmp_path: Path) -> None:
    _, evaluation, _ = digits_files(tmp_path)
    base: list[str | Path] = [
        "quantize",
        EMBEDDED_MODEL,
        "--input-shape",
        "image=1,1,8,8",
        "-o",
        tmp_path / "q.hir",
    ]
    np.savez(tmp_path / "zeros.npz", image=np.zeros((16, 1, 8, 8), np.float32))
    result = invoke(*base, "--calibration-data", tmp_path / "zeros.npz", "--eval-data", evaluation)
    assert result.exit_code == 0, result.output
    assert "warning: input 'image' is 0 everywhere in all 16 calibration samples" in result.stderr
    # the default budget holds on the all-zero samples only: said, with both figures
    assert "warning: --min-sqnr 30 dB holds on the 16 calibration samples" in result.stderr
    assert (
        f"not on the 64 evaluation samples (SQNR {reported(result.stdout, 'evaluation')[1]:.2f}"
        in " ".join(result.stderr.split())
    )
    images = np.load(evaluation)["image"]
    images[3, 0, 2, 5] = np.nan
    np.savez(tmp_path / "nan.npz", image=images)
    assert_user_error(
        invoke(*base, "--precision", "int8", "--calibration-data", tmp_path / "nan.npz"),
        "calibration data", "nan.npz sample 3: input 'image' holds nan at index [0, 0, 2, 5]",
    )  # fmt: skip
    assert_user_error(
        invoke(*base, "--precision", "fp16", "--eval-data", tmp_path / "nan.npz"),
        "evaluation data", "nan.npz sample 3: input 'image' holds nan",
    )  # fmt: skip


def table_rows(output: str) -> dict[str, list[str]]:
    """The per-layer table's rows by layer name: [op, precision, sensitivity, bytes, fp32 bytes]."""
    rows = {}
    for line in output.splitlines():
        cells = [c.strip() for c in line.strip("│ ").split("│")]
        if len(cells) == 6 and cells[0].startswith("node_"):
            rows[cells[0]] = cells[1:]
    return rows


@pytest.mark.parametrize("precision", ["int8", "fp16"])
def test_uniform_precision_table_shows_op_and_bytes(tmp_path: Path, precision: str) -> None:
    """`hai compile --precision int8|fp16`: every layer's op and bytes (stored and fp32) are shown, counted
    here from the ONNX model's own weights; only the sensitivity (not measured) is empty."""
    import onnx

    cal, _, _ = digits_files(tmp_path)
    result = invoke(
        "compile", EMBEDDED_MODEL, "--input-shape", "image=1,1,8,8", "--precision", precision,
        "--calibration-data", cal, "-o", tmp_path / "q.hai",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    model = onnx.load(str(EMBEDDED_MODEL))
    sizes = {i.name: int(np.prod(i.dims)) for i in model.graph.initializer}
    layers = {
        n.name: (n.op_type, sizes[n.input[1]]) for n in model.graph.node if n.op_type in ("Conv", "Gemm")
    }
    itemsize = {"int8": 1, "fp16": 2}[precision]
    expected = {name: [op, precision, "", f"{count * itemsize:,}", f"{count * 4:,}"]
                for name, (op, count) in layers.items()}  # fmt: skip
    assert table_rows(result.stdout) == expected, result.stdout


def test_compile_dumps_the_quantize_pass_it_compiles(tmp_path: Path) -> None:
    cal, _, _ = digits_files(tmp_path)
    dump = tmp_path / "dump"
    result = invoke(
        "compile", EMBEDDED_MODEL, "--input-shape", "image=1,1,8,8", "--precision", "int8",
        "--calibration-data", cal, "--dump-ir", dump, "-o", tmp_path / "digits.hai",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    before, after = (read_hir(dump / "quantize" / name) for name in ("00-input.hir", "01-quantize.hir"))
    assert "QuantizeLinear" not in {n.op for n in before.nodes}
    assert "QuantizeLinear" in {n.op for n in after.nodes}
    compiled = read_hir(dump / "00-input.hir")  # bias correction may change constants after the pass
    assert [n.op for n in compiled.nodes] == [n.op for n in after.nodes]


def test_quantize_takes_the_target_options_of_compile(tmp_path: Path) -> None:
    """--cpu and --cpu-features describe the target as for `hai compile`: FP16 layers are offered on
    cortex-a76 (ARMv8.2 with FP16 arithmetic) and refused on cortex-a72 (ARMv8.0, none) or with -fp16."""
    base: list[str | Path] = ["quantize", EMBEDDED_MODEL, "--input-shape", "image=1,1,8,8", "--precision",
                              "fp16", "-o", tmp_path / "q.hir", "--target", "arm64"]  # fmt: skip
    result = invoke(*base, "--cpu", "cortex-a76")
    assert result.exit_code == 0, result.output
    assert {row[1] for row in table_rows(result.stdout).values()} == {"fp16"}, result.stdout
    assert_user_error(invoke(*base, "--cpu", "cortex-a72"), "cortex-a72", "no f16 support")
    assert_user_error(invoke(*base, "--cpu", "cortex-a76", "--cpu-features", "-fp16"), "no f16 support")
    assert_user_error(invoke(*base[:-2], "--cpu", "cortex-a76"), "x86 cpu 'cortex-a76'")
