"""The markdown table of docs/opencl.md from the JSON of bench/opencl_runner.py.

One row per model: whether HAI's outputs on the timed platform (NVIDIA) and on PoCL match onnxruntime
(the largest relative error at any batch), HAI's p50 latency at batch 1 against onnxruntime's on the
machine's CPU threads (and the speed-up), then throughput in inferences per second at batch 1, 8
and 32, HAI against onnxruntime CPU. A cell is `—` where no artifact or measurement exists, and
`failed` where the row failed (the error follows the table). An onnxruntime CUDA row, when the runner
found one, gets a table of its own.

    python bench/opencl_report.py results.json > table.md
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from report_tables import report_main, section, table_head, table_row  # noqa: E402

BATCHES = (1, 8, 32)
TOLERANCE = 1e-4


def index_rows(rows: list[dict[str, Any]], timed: str) -> dict[tuple[str, str, int], dict[str, Any]]:
    """(engine, model, batch) -> row; HAI's engine is `hai` on the timed platform, `pocl` on PoCL."""
    indexed = {}
    for row in rows:
        engine = row["engine"]
        if engine == "hai-opencl":
            engine = "hai" if row.get("platform") == timed else "pocl"
        indexed[(engine, row["model"], int(row["batch"]))] = row
    return indexed


def correctness(rows: list[dict[str, Any]]) -> str:
    """`ok (2e-07)`, `off (3e-02)` or `failed`: the worst of the rows given; `—` if none."""
    if not rows:
        return "—"
    if any("max_relative_error" not in r for r in rows):
        return "failed"
    worst = max(r["max_relative_error"] for r in rows)
    return f"{'ok' if worst <= TOLERANCE else 'off'} ({worst:.0e})"


def number(row: dict[str, Any] | None, key: str, digits: int) -> str:
    if row is None:
        return "—"
    if key not in row:
        return "failed"
    return f"{row[key]:.{digits}f}"


def ratio(numerator: dict[str, Any] | None, denominator: dict[str, Any] | None, key: str) -> str:
    if not numerator or not denominator or key not in numerator or key not in denominator:
        return "—"
    return f"{numerator[key] / denominator[key]:.2g}×"


def table(report: dict[str, Any], peer: str = "onnxruntime-cpu") -> list[str]:
    timed = report.get("platform", "NVIDIA")
    rows = index_rows(report.get("rows", []), timed)
    models = list(dict.fromkeys(r["model"] for r in report.get("rows", [])))
    threads = report.get("cpus", "?")
    peer_name = f"{peer} ({threads} threads)" if peer.endswith("cpu") else peer
    head = [
        "model",
        f"matches onnxruntime: {timed}",
        "PoCL",
        f"batch 1 ms: HAI {timed}",
        peer_name,
        "speed-up",
    ]
    head += [f"batch {b}/s: HAI / {peer.split('-')[-1].upper()}" for b in BATCHES]
    lines = table_head(head)
    for model in models:
        hai = [rows[key] for key in rows if key[0] == "hai" and key[1] == model]
        pocl = [rows[key] for key in rows if key[0] == "pocl" and key[1] == model]
        one, peer_one = rows.get(("hai", model, 1)), rows.get((peer, model, 1))
        cells = [model, correctness(hai), correctness(pocl), number(one, "latency_ms_p50", 2),
                 number(peer_one, "latency_ms_p50", 2), ratio(peer_one, one, "latency_ms_p50")]  # fmt: skip
        for batch in BATCHES:
            mine, theirs = rows.get(("hai", model, batch)), rows.get((peer, model, batch))
            cells.append(f"{number(mine, 'throughput_per_s', 0)} / {number(theirs, 'throughput_per_s', 0)}")
        lines.append(table_row(cells))
    return lines


def transfers_table(report: dict[str, Any]) -> list[str]:
    """Per batch-1 model timed with `--transfers`: transfer time per inference, zero-copy off and on."""
    timed = [r for r in report.get("rows", []) if r.get("transfers") and r["engine"] == "hai-opencl"
             and r.get("platform") == report.get("platform", "NVIDIA")]  # fmt: skip
    if not timed:
        return []
    lines = table_head(["model", "zero-copy mode", "transfer us, copy", "zero-copy", "reduction",
                        "host us in transfer calls, copy / zero-copy"])  # fmt: skip
    for row in timed:
        t = row["transfers"]
        if "error" in t:
            lines.append(f"| {row['model']} | {t['error']} | | | | |")
            continue
        copy, zero = t["copy"], t["zero_copy"]
        host = f"{copy['host_us']:.1f} / {zero['host_us']:.1f}"
        cells = [row["model"], zero["mode"], f"{copy['device_us']:.1f}", f"{zero['device_us']:.1f}",
                 f"{-t['reduction_percent']:+.0f}%", host]  # fmt: skip
        lines.append(table_row(cells))
    return lines


def failures(report: dict[str, Any]) -> list[str]:
    found = [f"- {r['engine']} {r.get('platform', '')} {r['model']} batch {r['batch']}: {r['error']}"
             for r in report.get("rows", []) if r.get("error")]  # fmt: skip
    return found + [f"- {line}" for line in report.get("absent", [])]


def render(report: dict[str, Any]) -> str:
    lines = table(report)
    if any(r["engine"] == "onnxruntime-cuda" for r in report.get("rows", [])):
        lines += ["", *table(report, "onnxruntime-cuda")]
    lines += section("Transfers per inference (OpenCL event times, medians):", transfers_table(report))
    lines += section("Failures:", failures(report))
    return "\n".join(lines) + "\n"


def main() -> int:
    return report_main(__doc__ or "", render)


if __name__ == "__main__":
    sys.exit(main())
