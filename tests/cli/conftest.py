"""Fixtures of the CLI tests: model files in a temporary directory."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_helpers import add_relu_model, symbolic_model


@pytest.fixture
def add_relu(tmp_path: Path) -> Path:
    return add_relu_model(tmp_path / "add_relu.onnx")


@pytest.fixture
def symbolic(tmp_path: Path) -> Path:
    return symbolic_model(tmp_path / "symbolic.onnx")
