"""README's "Using it" runs as written: every command of its shell block, in order, in an empty directory,
with the venv's `hai` on PATH; the outputs it leaves agree with onnxruntime."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime
from cli_helpers import ROOT

SECTION = "## Using it"


def readme_commands(readme: Path = ROOT / "README.md") -> list[str]:
    """The commands of the first ```sh block after SECTION: continuation lines joined, comments and blank
    lines dropped (a command's trailing comment stays: the shell ignores it)."""
    text = readme.read_text(encoding="utf-8")
    section = text[text.index(SECTION) :]
    block = re.search(r"```sh\n(.*?)```", section, re.DOTALL)
    assert block is not None, f"no ```sh block under {SECTION!r}"
    joined = block[1].replace("\\\n", " ")
    return [
        line.strip() for line in joined.splitlines() if line.strip() and not line.lstrip().startswith("#")
    ]


def test_readme_block_is_parsed() -> None:
    commands = readme_commands()
    assert commands[0].startswith("hai samples")
    assert all(command.startswith("hai ") for command in commands), commands
    assert any("--labels labels.npy" in command for command in commands)  # the continued line, joined


def test_using_it_runs_as_written(tmp_path: Path) -> None:
    bin_dir = Path(sys.executable).parent
    assert (bin_dir / "hai").is_file(), f"the venv has no `hai` script in {bin_dir}: run scripts/setup.sh"
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}", PYTHONPATH=str(ROOT))
    for command in readme_commands():
        done = subprocess.run(
            ["bash", "-c", command], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, (command, done.stdout[-2000:], done.stderr[-2000:])
        assert "Traceback" not in done.stderr, (command, done.stderr)
    image = np.load(tmp_path / "image.npy")
    session = onnxruntime.InferenceSession(str(tmp_path / "digits.onnx"), providers=["CPUExecutionProvider"])
    (expected,) = session.run(None, {"image": image})
    np.testing.assert_allclose(np.load(tmp_path / "out" / "logits.npy"), expected, rtol=1e-4, atol=1e-4)
    assert (tmp_path / "digits.weights.npz").is_file() and (tmp_path / "q.weights.npz").is_file()
    bench = json.loads((tmp_path / "bench.json").read_text())
    assert bench["runs"] == 20 and bench["hai"]["latency"]["p50_ms"] > 0
    assert json.loads((tmp_path / "hardware_profile.json").read_text())["cpu"]["threads"] == os.cpu_count()
