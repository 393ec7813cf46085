"""What the bench reports (bench/ocr_report.py, bench/opencl_report.py) share: markdown table lines, a
titled section of notes, and the command line that prints a report of a runner's JSON.

Rule: a report is a pure `render(report) -> str` of the runner's JSON; this module only lays out
lines and reads the file: it computes no figure.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any


def table_head(head: Sequence[str]) -> list[str]:
    """A markdown table's header row and its separator."""
    return [table_row(head), "|" + " --- |" * len(head)]


def table_row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def section(title: str, lines: list[str]) -> list[str]:
    """`lines` after a blank line and `title`; nothing when there are none."""
    return ["", title, *lines] if lines else []


def report_main(doc: str, render: Callable[[dict[str, Any]], str]) -> int:
    """`python bench/X_report.py results.json`: prints `render` of the runner's JSON (the module `doc`'s
    first line is the usage's description)."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("json", type=Path, help="the runner's JSON")
    args = parser.parse_args()
    sys.stdout.write(render(json.loads(args.json.read_text())))
    return 0
