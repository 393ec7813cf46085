"""Progress (hai_compiler/progress.py): a line per stage on stderr when it is not a terminal, a live rich
display on one, nothing from the Python API."""

from __future__ import annotations

import io
import re
import time
from pathlib import Path

import pytest
from cli_helpers import add_relu_model, invoke

from hai_compiler import progress
from hai_compiler.compiler import CompileOptions, compile_model
from hai_compiler.demo import EMBEDDED_MODEL
from hai_compiler.progress import LineStages, RichStages, reporting, stage

STAGE_LINE = re.compile(r"^\[\s*\d+\.\d s\] (.+)$")


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def stage_lines(stderr: str) -> list[str]:
    return [m[1] for line in stderr.splitlines() if (m := STAGE_LINE.match(line))]


@pytest.fixture
def every_stage(monkeypatch: pytest.MonkeyPatch) -> None:
    """Lines for stages however short (the small models here compile in well under QUIET_SECONDS)."""
    monkeypatch.setattr(progress, "QUIET_SECONDS", 0.0)


def test_piped_compile_prints_each_stage_as_it_starts(tmp_path: Path, every_stage: None) -> None:
    model = add_relu_model(tmp_path / "m.onnx")
    done = invoke("compile", model, "-o", tmp_path / "m.hai")
    assert done.exit_code == 0, done.output
    stages = stage_lines(done.stderr)
    expected = ["loading the model", "describing the target", "running passes", "lowering kernels"]
    assert stages[:4] == expected, stages
    # the library is linked once the entry fixes the plan: it carries the plan's digest
    later = ["building the entry call", "linking the kernel library", "writing the artifact"]
    assert [s for s in stages if s in later] == later
    assert any(re.fullmatch(r"compiling kernels \(\d+\)", s) for s in stages), stages


def test_piped_quantized_compile_reports_the_quantizer_stages(tmp_path: Path, every_stage: None) -> None:
    import numpy as np

    from hai_compiler.demo import load_heldout_digits

    np.savez(tmp_path / "cal.npz", image=load_heldout_digits()[0][:8])
    done = invoke(
        "compile", EMBEDDED_MODEL, "--input-shape", "image=1,1,8,8", "--precision", "int8",
        "--calibration-data", tmp_path / "cal.npz", "-o", tmp_path / "q.hai",
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    stages = stage_lines(done.stderr)
    for name in ("calibrating with minmax (8)", "choosing activation ranges", "quantizing to int8",
                 "compiling kernels", "measuring against fp32"):  # fmt: skip
        assert any(s.startswith(name) for s in stages), (name, stages)


def test_a_pipe_shows_only_the_stages_that_last(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(progress, "QUIET_SECONDS", 0.05)
    stream = io.StringIO()
    with reporting(stream):
        with stage("quick"):
            pass
        with stage("slow", total=3):
            time.sleep(0.3)
    assert stage_lines(stream.getvalue()) == ["slow (3)"]


def test_a_terminal_gets_the_live_display_and_a_pipe_the_lines(every_stage: None) -> None:
    for stream, kind in ((Terminal(), RichStages), (io.StringIO(), LineStages)):
        with reporting(stream):
            from hai_compiler.progress import _REPORTER

            assert isinstance(_REPORTER.get(), kind)
            with stage("building things", total=2) as advance:
                advance("one")
                advance("two")
        assert "building things" in stream.getvalue()
    assert _REPORTER.get() is None


def test_the_python_api_is_quiet(tmp_path: Path, capfd) -> None:  # type: ignore[no-untyped-def]
    compile_model(add_relu_model(tmp_path / "m.onnx"), tmp_path / "m.hai", CompileOptions())
    assert capfd.readouterr().err == ""
