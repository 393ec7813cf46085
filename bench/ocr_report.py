"""The markdown tables of docs/heterogeneous.md from the JSON of bench/ocr_runner.py.

Rule: every figure is copied from the runner's JSON, never computed beyond a ratio or a sum of
sources it measured. Two tables: the OCR pipeline over pages (whether HAI read onnxruntime's
lines, streamed pages/s and its ratio to HAI CPU-only and to onnxruntime, p50/p99 ms per page read
alone and while streamed, joules per page) and the stream of single inputs through one model
(matches onnxruntime, inferences/s, p50/p99 ms, joules per inference). Energy has a GPU column
(NVML), a CPU column (RAPL package zones) and their total; a cell is `unavailable` where a source
exists but could not be read (the reasons follow the tables), `—` where nothing was measured or the
device is not there. A failed row shows `failed`, its error after the tables; engines the bundle
left out are listed with why.

    python bench/ocr_report.py ocr.json > table.md
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from report_tables import report_main, section, table_head, table_row  # noqa: E402

CPU_ONLY = "hai-x86"
PEER = "onnxruntime-cpu"
RUNS_ON = {"onnxruntime-cpu": "CPU", "hai-x86": "CPU", "hai-opencl": "GPU", "hai-partitioned": "CPU + GPU"}


def joules(energy: dict[str, Any] | None, kind: str) -> str:
    """The joules per item of the sources whose name starts with `kind` (`cpu`, `gpu`), summed."""
    if not energy:
        return "—"
    if any(u["source"].startswith(kind) and u["exists"] for u in energy["unavailable"]):
        return "unavailable"
    found = [j for name, j in energy["per_item_j"].items() if name.startswith(kind)]
    return f"{sum(found):.3g}" if found else "—"


def total(energy: dict[str, Any] | None) -> str:
    if not energy:
        return "—"
    value = energy.get("total_per_item_j")
    return "—" if value is None else f"{value:.3g}"


def cell(row: dict[str, Any], *keys: str, digits: int = 1) -> str:
    value: Any = row
    for key in keys:
        if not isinstance(value, dict) or key not in value:
            return "failed" if not row.get("ok", True) else "—"
        value = value[key]
    return f"{value:.{digits}f}"


def ratio(row: dict[str, Any], base: dict[str, Any] | None, *keys: str) -> str:
    mine, theirs = cell(row, *keys, digits=9), cell(base or {}, *keys, digits=9)
    try:
        return f"{float(mine) / float(theirs):.2f}×"
    except ValueError:
        return "—"


def matches(row: dict[str, Any]) -> str:
    if row["engine"] == PEER:
        return "(reference)"
    if "lines_differing" in row:
        differing = row["lines_differing"]
        return "—" if differing is None else ("yes" if differing == 0 else f"{differing} lines differ")
    if "max_relative_error" in row:
        return f"{'yes' if row['ok'] else 'off'} ({row['max_relative_error']:.0e})"
    return "failed"


def rows_of(report: dict[str, Any], workload: str) -> dict[str, dict[str, Any]]:
    return {r["engine"]: r for r in report.get("rows", []) if r["workload"] == workload}


def ocr_table(report: dict[str, Any]) -> list[str]:
    rows = rows_of(report, "ocr")
    head = ["engine", "runs on", "reads onnxruntime's lines", "pages/s (streamed)", f"vs {CPU_ONLY}",
            f"vs {PEER}", "p50 / p99 ms per page alone", "p50 / p99 ms streamed", "J/page GPU",
            "J/page CPU", "J/page total"]  # fmt: skip
    lines = table_head(head)
    for engine, row in rows.items():
        cells = [engine, RUNS_ON.get(engine, "?"), matches(row), cell(row, "stream", "pages_per_s", digits=2),
                 ratio(row, rows.get(CPU_ONLY), "stream", "pages_per_s"),
                 ratio(row, rows.get(PEER), "stream", "pages_per_s"),
                 f"{cell(row, 'serial', 'p50_ms')} / {cell(row, 'serial', 'p99_ms')}",
                 f"{cell(row, 'stream', 'p50_ms')} / {cell(row, 'stream', 'p99_ms')}",
                 joules(row.get("energy_per_page"), "gpu"), joules(row.get("energy_per_page"), "cpu"),
                 total(row.get("energy_per_page"))]  # fmt: skip
        lines.append(table_row(cells))
    return lines


def stream_table(report: dict[str, Any]) -> list[str]:
    rows = rows_of(report, "stream")
    head = ["engine", "runs on", "matches onnxruntime", "inferences/s", f"vs {CPU_ONLY}", "p50 / p99 ms",
            "J/inference GPU", "J/inference CPU", "J/inference total"]  # fmt: skip
    lines = table_head(head)
    for engine, row in rows.items():
        energy = row.get("energy_per_inference")
        cells = [engine, RUNS_ON.get(engine, "?"), matches(row), cell(row, "per_s"),
                 ratio(row, rows.get(CPU_ONLY), "per_s"),
                 f"{cell(row, 'p50_ms', digits=3)} / {cell(row, 'p99_ms', digits=3)}",
                 joules(energy, "gpu"), joules(energy, "cpu"), total(energy)]  # fmt: skip
        lines.append(table_row(cells))
    return lines


def notes(report: dict[str, Any]) -> list[str]:
    """Failures, engines left out, and the energy sources that could not be read, each once."""
    found = [f"- {r['engine']} {r['workload']}: {r['error'][:400]}" for r in report.get("rows", [])
             if r.get("error")]  # fmt: skip
    found += [f"- {x['engine']} not measured: {x['why']}" for x in report.get("left_out", [])]
    reasons: dict[str, str] = {}
    for row in report.get("rows", []):
        for key in ("energy_per_page", "energy_per_inference"):
            for u in (row.get(key) or {}).get("unavailable", []):
                reasons.setdefault(
                    u["source"], ("unavailable: " if u["exists"] else "not here: ") + u["reason"]
                )
    found += [f"- energy, {source}: {reason}" for source, reason in reasons.items()]
    return found


def render(report: dict[str, Any]) -> str:
    ocr = rows_of(report, "ocr")
    some = next(iter(ocr.values()), {})
    stream = next(iter(rows_of(report, "stream").values()), {})
    pages = f"{some.get('pages', '?')} pages, {some.get('lines_per_page', 0):.0f} lines a page"
    machine = f"{report.get('cpus', '?')} CPU threads, OpenCL platform {report.get('platform', '?')!r}"
    lines = [f"OCR pipeline: {pages}, {machine}", "", *ocr_table(report), "",
             f"Stream: {stream.get('inputs', '?')} single inputs through {stream.get('model', '?')}", "",
             *stream_table(report)]  # fmt: skip
    lines += section("Notes:", notes(report))
    return "\n".join(lines) + "\n"


def main() -> int:
    return report_main(__doc__ or "", render)


if __name__ == "__main__":
    sys.exit(main())
