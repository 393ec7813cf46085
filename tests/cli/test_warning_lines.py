"""Every HAI warning (`ir.errors.HaiWarning`) is one `warning: ...` line in the CLI, whatever the command:
here `hai compile --cpu NAME` with this host's LLVM cpu name whose feature table is not the host's
(`CpuFeaturesWarning`, targets/feature_edits.py), never Python's `file:line: Category` format with the
`warnings.warn(` source line."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_helpers import invoke

from hai_compiler.demo import EMBEDDED_MODEL, INPUT
from hai_compiler.quantize.caveats import QuantizationWarning
from ir.errors import HaiWarning
from runtime.cpu_features import host_cpu
from targets.feature_edits import CpuFeaturesWarning, edits_between

pytest.importorskip("tvm")


def test_hai_warnings_share_one_base() -> None:
    assert issubclass(CpuFeaturesWarning, HaiWarning) and issubclass(QuantizationWarning, HaiWarning)


def host_name_unlike_host() -> str:
    """This host's LLVM cpu name, when LLVM's feature table for it is not the host's features."""
    from targets.target import TargetError, cpu_table_features, llvm_host_cpu

    if host_cpu().arch != "x86_64":
        pytest.skip("the --cpu feature-table warning is for x86 hosts")
    try:
        name = llvm_host_cpu()
    except TargetError as exc:
        pytest.skip(f"LLVM has no name for this host: {exc}")
    if not edits_between(cpu_table_features("x86", name), host_cpu().features):
        pytest.skip(f"LLVM's feature table for {name} is this host's features: --cpu {name} does not warn")
    return name


def test_cpu_features_warning_is_one_warning_line(tmp_path: Path) -> None:
    name = host_name_unlike_host()
    result = invoke("compile", EMBEDDED_MODEL, "--input-shape", f"{INPUT}=1,1,8,8", "--cpu", name,
                    "-o", tmp_path / "digits.hai")  # fmt: skip
    assert result.exit_code == 0, result.output
    lines = result.stderr.splitlines()
    said = f"warning: --cpu {name} is this host's LLVM cpu name"
    warned = [line for line in lines if line.startswith(said)]
    assert len(warned) == 1, result.stderr
    assert "warnings.warn" not in result.stderr and "CpuFeaturesWarning" not in result.stderr, result.stderr
    assert not any("UserWarning" in line or ".py:" in line for line in lines), result.stderr
