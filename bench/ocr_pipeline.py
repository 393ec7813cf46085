"""Throughput of the OCR pipeline example (examples/ocr: det -> crop -> cls -> rec) over a stream of
synthetic pages, HAI against onnxruntime, measured side by side in one run.

Each engine reads the same pages twice: page by page (`serial`: one model at a time) and streamed
(`stream`: detection of page i+1 concurrent with the lines of page i). The table gives pages/s,
lines/s, p50 and p99 seconds per page (serial) and each HAI row's throughput against onnxruntime's in
the same mode; HAI's lines must read as onnxruntime's (the count of differing lines is printed).

HAI's cls and rec are compiled for `--line-batch` lines a run (onnxruntime's take any batch: a
page's lines at once).

    python bench/ocr_pipeline.py --pages 50 --threads 2 [--target x86] [--line-batch 8] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "examples" / "ocr")]

from ocr_models import LINE_BATCH, ROLES, input_shapes  # noqa: E402
from ocr_pipeline import Line, OcrModels, OnnxRunner, read_page, read_pages, rec_alphabet  # noqa: E402
from pages import page_of, random_lines  # noqa: E402

from hai_compiler import real_models  # noqa: E402


def hai_models(directory: Path, threads: int, target: str, line_batch: int = LINE_BATCH) -> OcrModels:
    from hai_compiler.compiler.driver import compile_model
    from hai_compiler.compiler.options import CompileOptions
    from runtime import load

    runners = {}
    for role in ROLES:
        name = f"ppocr_{role}"
        options = CompileOptions(target=target, input_shapes=input_shapes(role, line_batch))
        artifact = compile_model(real_models.fetch(name), directory / f"{name}.hai", options).path
        runners[role] = load(artifact, threads=threads)
    return OcrModels(**runners, alphabet=rec_alphabet(str(real_models.fetch("ppocr_rec"))))


def onnxruntime_models(threads: int) -> OcrModels:
    runners = {role: OnnxRunner(str(real_models.fetch(f"ppocr_{role}")), threads) for role in ROLES}
    return OcrModels(**runners, alphabet=rec_alphabet(str(real_models.fetch("ppocr_rec"))))


def timed(read: Callable[[], list[list[Line]]]) -> tuple[float, list[list[Line]]]:
    start = time.perf_counter()
    lines = read()
    return time.perf_counter() - start, lines


def measure(
    engine: str, models: OcrModels, pages: Sequence[np.ndarray]
) -> tuple[list[dict[str, Any]], list[list[Line]]]:
    """The serial and streamed rows of one engine, and the lines it read."""
    per_page = []
    serial: list[list[Line]] = []
    for page in pages:
        seconds, (lines,) = timed(lambda page=page: [read_page(page, models)])
        per_page.append(seconds)
        serial.append(lines)
    streamed_seconds, streamed = timed(lambda: list(read_pages(pages, models)))
    if streamed != serial:
        raise SystemExit(f"{engine}: the streamed pipeline read other lines than page-by-page reading")
    count = sum(len(lines) for lines in serial)
    rows = []
    for mode, seconds in (("serial", sum(per_page)), ("stream", streamed_seconds)):
        rows.append({"engine": engine, "mode": mode, "pages_per_s": len(pages) / seconds,
                     "lines_per_s": count / seconds, "p50_s": float(np.percentile(per_page, 50)),
                     "p99_s": float(np.percentile(per_page, 99))})  # fmt: skip
    return rows, serial


def differing(lines: list[list[Line]], reference: list[list[Line]]) -> int:
    """Lines (box, flip, text) that differ between two readings of the same pages."""
    key = lambda page: [(line.box, line.flipped, line.text) for line in page]  # noqa: E731
    return sum(
        sum(a != b for a, b in zip(key(x), key(y), strict=False)) + abs(len(x) - len(y))
        for x, y in zip(lines, reference, strict=True)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", type=int, default=20)
    parser.add_argument("--lines", type=int, default=8, help="text lines per page")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--target", default="x86", help="HAI's compile target")
    parser.add_argument("--line-batch", type=int, default=LINE_BATCH, help="lines cls and rec read a run")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    pages = [page_of(random_lines(rng, args.lines), flipped=(1,)) for _ in range(args.pages)]
    with tempfile.TemporaryDirectory() as directory:
        reference_rows, reference = measure("onnxruntime", onnxruntime_models(args.threads), pages)
        hai_rows, lines = measure(
            "hai", hai_models(Path(directory), args.threads, args.target, args.line_batch), pages
        )
    peers = {row["mode"]: row for row in reference_rows}
    for row in hai_rows:
        row["throughput_vs_onnxruntime"] = row["pages_per_s"] / peers[row["mode"]]["pages_per_s"]
    rows = reference_rows + hai_rows
    print(f"{args.pages} pages x {args.lines} lines, {args.threads} threads; "
          f"lines HAI read differently from onnxruntime: {differing(lines, reference)}")  # fmt: skip
    print(f"{'engine':<12} {'mode':<7} {'pages/s':>8} {'lines/s':>8} {'p50 s':>7} {'p99 s':>7} {'vs ort':>7}")
    for row in rows:
        ratio = f"{row['throughput_vs_onnxruntime']:.2f}x" if "throughput_vs_onnxruntime" in row else ""
        print(f"{row['engine']:<12} {row['mode']:<7} {row['pages_per_s']:8.2f} {row['lines_per_s']:8.1f} "
              f"{row['p50_s']:7.3f} {row['p99_s']:7.3f} {ratio:>7}")  # fmt: skip
    if args.json:
        args.json.write_text(
            json.dumps({"pages": args.pages, "threads": args.threads, "rows": rows}, indent=1)
        )


if __name__ == "__main__":
    main()
