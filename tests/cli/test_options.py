"""One CLI: an option spelled and defined once across commands, sizes in ir/units.py's grammar
everywhere, one --threads default, choices and an example in --help, bare `hai doctor`, and
`hai bench --json -` on stdout."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import typer
from cli_helpers import assert_user_error, invoke

from hai_compiler.cli import app
from hai_compiler.demo import EMBEDDED_MODEL, load_heldout_digits
from hai_compiler.quantize.observers import OBSERVERS
from hai_compiler.quantize.quantizer import PROFILES
from hai_compiler.quantize_commands import QuantizeOptions
from ir.units import EXAMPLES
from targets.registry import available_targets

COMMANDS = typer.main.get_command(app).commands  # type: ignore[attr-defined]


def options(command: str) -> dict[str, object]:
    """Each option's long name -> its click parameter."""
    return {max(p.opts, key=len): p for p in COMMANDS[command].params if p.opts[0].startswith("-")}


def test_an_option_shared_by_commands_is_one_definition() -> None:
    for first in COMMANDS:
        for second in COMMANDS:
            shared = options(first).keys() & options(second).keys()
            for name in shared - {"--help", "--output", "--passes"}:  # the artifact kind; none vs default
                one, other = options(first)[name], options(second)[name]
                assert (one.help, one.default) == (other.help, other.default), (first, second, name)  # type: ignore[attr-defined]


def test_the_quantize_options_are_in_compile_and_quantize_alike() -> None:
    for command in ("compile", "quantize"):
        assert {"--target", "--hardware-profile", "--eval-data", "--labels", "--save-stats"} <= options(
            command
        ).keys()
    assert "--target-device" not in options("quantize")


def test_every_size_option_takes_and_shows_the_units_grammar() -> None:
    sizes = [(c, n) for c in COMMANDS for n, p in options(c).items() if p.metavar == "SIZE"]  # type: ignore[attr-defined]
    assert {n for _, n in sizes} >= {"--memory-budget", "--page-size", "--target-size"}
    for command, name in sizes:
        assert EXAMPLES in options(command)[name].help, (command, name)  # type: ignore[attr-defined]
    assert QuantizeOptions(target_size="20KB").quantizer("x86").target_size == 20 * 2**10


@pytest.mark.parametrize("option", ["--target-size", "--memory-budget", "--page-size"])
def test_a_malformed_size_is_a_usage_error_naming_the_grammar(option: str, tmp_path: Path) -> None:
    result = invoke("compile", EMBEDDED_MODEL, "-o", tmp_path / "m.hai", option, "20XB")
    assert_user_error(result, option, "unknown unit 'XB'", code=2)


def test_threads_has_one_default() -> None:
    defaults = {command: options(command)["--threads"].default for command in ("run", "bench", "demo")}  # type: ignore[attr-defined]
    assert len(set(defaults.values())) == 1, defaults


def test_help_lists_the_choices_and_an_example() -> None:
    for command in COMMANDS:
        assert "Example:\n    hai " in invoke(command, "--help").stdout, command
    text = invoke("compile", "--help").stdout
    assert "|".join(PROFILES) in text
    assert "|".join(["auto", *sorted(OBSERVERS)]) in text
    assert f"--target <{'|'.join(available_targets())}>" in text
    assert_user_error(
        invoke("compile", EMBEDDED_MODEL, "-o", "m.hai", "--observer", "median"), "--observer", code=2
    )


def test_compile_quantized_takes_eval_data_and_save_stats(tmp_path: Path) -> None:
    x, y = load_heldout_digits()
    np.savez(tmp_path / "cal.npz", image=x[:16])
    np.savez(tmp_path / "eval.npz", image=x[100:140])
    np.save(tmp_path / "labels.npy", y[100:140])
    result = invoke(
        "compile", EMBEDDED_MODEL, "--input-shape", "image=1,1,8,8", "--precision", "int8",
        "--calibration-data", tmp_path / "cal.npz", "--eval-data", tmp_path / "eval.npz",
        "--labels", tmp_path / "labels.npy", "--save-stats", tmp_path / "stats.npz", "-o", tmp_path / "q.hai",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "against fp32 on 40 evaluation samples" in result.stdout and "accuracy" in result.stdout
    again = invoke(
        "compile", EMBEDDED_MODEL, "--input-shape", "image=1,1,8,8", "--precision", "int8",
        "--stats", tmp_path / "stats.npz", "-o", tmp_path / "q2.hai",
    )  # fmt: skip
    assert again.exit_code == 0, again.output


def test_bench_json_dash_is_stdout(add_relu: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert invoke("compile", add_relu, "-o", "m.hai").exit_code == 0
    result = invoke("bench", "m.hai", "--runs", "3", "--json", "-")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["runs"] == 3
    assert "p50 ms" in result.stderr
    assert not (tmp_path / "-").exists()
