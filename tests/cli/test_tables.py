"""Tables at 80 columns (`COLUMNS=80`): `hai compile --report`, `hai bench --profile` and the `hai quantize`
report fit, cut no kernel or layer name, and show each share of the budget with meaningful digits."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import invoke
from typer.testing import CliRunner

from hai_compiler.cli import app
from hai_compiler.compiler.report import percent
from hai_compiler.demo import EMBEDDED_MODEL, load_heldout_digits

SHAPE = ("--input-shape", "image=1,1,8,8")


def narrow(*args: object) -> str:
    result = CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    return result.stdout


def assert_readable(text: str, names: list[str]) -> None:
    assert all(len(line) <= 80 for line in text.splitlines()), max(text.splitlines(), key=len)
    assert "…" not in text  # rich's mark of a cut cell
    for name in names:
        assert name in text, name


@pytest.fixture(scope="module")
def digits_artifact(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    artifact = tmp_path_factory.mktemp("tables") / "digits.hai"
    return artifact, narrow("compile", EMBEDDED_MODEL, *SHAPE, "--report", "-o", artifact)


def kernel_names(artifact: Path) -> list[str]:
    manifest = json.loads((artifact / "manifest.json").read_text())
    return sorted({step["kernel"] for step in manifest["plan"]["steps"]})


def test_compile_report_at_80_columns(digits_artifact: tuple[Path, str]) -> None:
    artifact, text = digits_artifact
    assert_readable(text, kernel_names(artifact))
    budget = 512 * 2**20
    rows = [line.split("│") for line in text.splitlines() if line.count("│") == 3]
    assert len(rows) >= 5
    for term, nbytes, _, share in rows:
        assert share.strip() == percent(int(nbytes), budget), term
        assert share.strip() not in ("0.0", "0"), term  # every term is a real share of the budget


def test_percent_keeps_two_significant_digits_below_one() -> None:
    assert [percent(x, 10_000) for x in (0, 1, 15, 181, 870, 10_000)] == [
        "0",
        "0.01",
        "0.15",
        "1.8",
        "8.7",
        "100.0",
    ]
    assert percent(1, 10**9) == "<0.001"


def test_bench_profile_at_80_columns(digits_artifact: tuple[Path, str]) -> None:
    artifact, _ = digits_artifact
    assert_readable(narrow("bench", artifact, "--runs", "3", "--profile"), kernel_names(artifact))


def test_quantize_report_at_80_columns(tmp_path: Path) -> None:
    np.savez(tmp_path / "cal.npz", image=load_heldout_digits()[0][:16])
    text = narrow(
        "quantize",
        EMBEDDED_MODEL,
        *SHAPE,
        "--calibration-data",
        tmp_path / "cal.npz",
        "-o",
        tmp_path / "q.hir",
    )
    layers = [line.split("│")[1].strip() for line in text.splitlines() if line.count("│") == 7]
    assert len(layers) == 4
    assert_readable(text, layers)
    assert invoke("ir", tmp_path / "q.hir", "--summary").exit_code == 0
