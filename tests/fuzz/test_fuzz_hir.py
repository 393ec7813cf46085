"""Fuzzing `.hir` text: token-level mutations of the printed IR of small models (with their weights
file), through `hai ir` and `hai interp`. Oracle: fuzz_oracle.py; an accepted mutation of the text
that still reads the same inputs must give onnxruntime's result when it left the program unchanged."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import onnx
import pytest
from fuzz_oracle import assert_clean_result, fuzz_settings, invoke, seed_models
from hypothesis import given
from hypothesis import strategies as st

TOKEN = re.compile(r"%?[A-Za-z_][A-Za-z0-9_.]*|-?\d+(?:\.\d+)?(?:e-?\d+)?|\S")
REPLACEMENTS = ["0", "-1", "4294967296", "1e309", "nan", "f16", "i64", "[", "]", "{", "}", "=", ",", "%x",
                "%ghost", "Relu", "Conv", "\"", "@", "\\", "9" * 5000, "weights", "sha256:00"]  # fmt: skip


@pytest.fixture(scope="module")
def printed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[str, Path]]:
    """Each seed model's printed `.hir` and the weights file beside it."""
    root = tmp_path_factory.mktemp("hir")
    texts = {}
    for name, model in seed_models().items():
        source = root / f"{name}.onnx"
        onnx.save(model, str(source))
        target = root / f"{name}.hir"
        result = invoke("ir", source, "-o", target, "--save-weights")
        assert result.exit_code == 0, result.output
        texts[name] = (target.read_text(), root)
    return texts


def mutate(text: str, data: st.DataObject) -> str:
    tokens = [m for m in TOKEN.finditer(text)]
    for _ in range(data.draw(st.integers(1, 3))):
        match = tokens[data.draw(st.integers(0, len(tokens) - 1))]
        kind = data.draw(st.sampled_from(["replace", "delete", "duplicate", "line"]))
        start, end = match.span()
        if kind == "replace":
            new = data.draw(
                st.one_of(st.sampled_from(REPLACEMENTS), st.sampled_from([t.group() for t in tokens]))
            )
            text = text[:start] + new + text[end:]
        elif kind == "delete":
            text = text[:start] + text[end:]
        elif kind == "duplicate":
            text = text[:end] + " " + match.group() + text[end:]
        else:
            lines = text.splitlines()
            i = data.draw(st.integers(0, len(lines) - 1))
            lines.insert(data.draw(st.integers(0, len(lines))), lines.pop(i))
            text = "\n".join(lines) + "\n"
        tokens = [m for m in TOKEN.finditer(text)]
    return text


def check(printed: dict[str, tuple[str, Path]], name: str, data: st.DataObject) -> None:
    text, root = printed[name]
    mutated = mutate(text, data)
    with tempfile.TemporaryDirectory(dir=root) as work:
        path = Path(work) / f"{name}.hir"
        path.write_text(mutated)
        for weights in root.glob(f"{name}.*"):
            if weights.suffix not in (".hir", ".onnx"):
                (Path(work) / weights.name).write_bytes(weights.read_bytes())
        for command in ("ir", "interp"):
            args = [command, path] + (["--output-dir", Path(work) / "out"] if command == "interp" else [])
            assert_clean_result(invoke(*args), (command, mutated[:4000]))


FAST = fuzz_settings(200)
SLOW = fuzz_settings(2000)


@FAST
@given(name=st.sampled_from(["cnn", "elementwise", "shapes"]), data=st.data())
def test_mutated_hir(printed: dict[str, tuple[str, Path]], name: str, data: st.DataObject) -> None:
    check(printed, name, data)


@pytest.mark.slow
@SLOW
@given(name=st.sampled_from(["cnn", "elementwise", "shapes"]), data=st.data())
def test_mutated_hir_slow(printed: dict[str, tuple[str, Path]], name: str, data: st.DataObject) -> None:
    check(printed, name, data)
