"""bench/opencl_runner.py's ICD step: without an NVIDIA platform, the driver's library is registered in
an icd folder of the bundle beside the system's icds, and OCL_ICD_VENDORS points at it."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

SPEC = importlib.util.spec_from_file_location(
    "opencl_runner", Path(__file__).parents[2] / "bench" / "opencl_runner.py"
)
assert SPEC and SPEC.loader
runner = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(runner)


def test_nvidia_library_registered_beside_system_icds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    system = tmp_path / "etc-vendors"
    system.mkdir()
    (system / "pocl.icd").write_text("libpocl.so.2\n")
    library = tmp_path / "driver" / "libnvidia-opencl.so.1"
    monkeypatch.delenv("OCL_ICD_VENDORS", raising=False)
    monkeypatch.setattr(runner, "SYSTEM_VENDORS", str(system))
    monkeypatch.setattr(runner, "list_platforms", lambda: ["Portable Computing Language"])
    monkeypatch.setattr(runner, "find_nvidia_library", lambda: str(library))
    report = runner.register_nvidia(tmp_path / "work")
    vendors = Path(os.environ["OCL_ICD_VENDORS"])
    assert vendors == tmp_path / "work" / "vendors"
    assert (vendors / "nvidia.icd").read_text().strip() == str(library)
    assert (vendors / "pocl.icd").read_text() == "libpocl.so.2\n"
    assert report["nvidia_library"] == str(library)


def test_listed_nvidia_platform_is_left_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OCL_ICD_VENDORS", raising=False)
    monkeypatch.setattr(runner, "list_platforms", lambda: ["NVIDIA CUDA", "Portable Computing Language"])
    runner.register_nvidia(tmp_path / "work")
    assert "OCL_ICD_VENDORS" not in os.environ
    assert not (tmp_path / "work").exists()
