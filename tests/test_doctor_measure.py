"""`hai doctor --measure`: the microbenchmarks (real HAI kernels) compiled for the host CPU measure
sane, positive speeds; the profile with its `measured` section matches the schema and reads back
for the cost model (targets/kernel_costs.py)."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from test_doctor import SCHEMA, schema_errors, validate

from hai_compiler import doctor, microbench
from runtime.microbench import measure
from targets.kernel_costs import measured_device


@pytest.fixture(scope="module")
def measured(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    profile = doctor.scan()
    folder = tmp_path_factory.mktemp("microbench")
    microbench.build(folder, [microbench.host_spec(profile)], microbench.Sizes.quick())
    return {**profile, "measured": measure(folder, runs=2)}


def test_cpu_figures_are_sane(measured: dict[str, Any]) -> None:
    (cpu,) = measured["measured"]["devices"]
    assert (cpu["device"], cpu["kind"], cpu["transfer"]) == ("cpu", "cpu", None)
    assert 1e6 < cpu["flops"]["f32"] < 1e15  # between a microcontroller and a rack
    for dtype in ("f16", "bf16", "int8"):
        value = cpu["flops"][dtype]
        assert (value == "unsupported" and cpu["unsupported"][dtype]) or 1e6 < value < 1e16
    sizes = sorted(b["bytes"] for b in cpu["bandwidth"])
    assert sizes == sorted(12 * n for n in microbench.Sizes.quick().stream)
    assert all(1e6 < b["bytes_per_second"] < 1e13 for b in cpu["bandwidth"])
    assert 0 < cpu["launch_seconds"] < 0.01


def test_measured_profile_matches_the_schema_and_reads_back(measured: dict[str, Any], tmp_path: Path) -> None:
    validate(measured)
    stream = io.StringIO()
    doctor.write_json(measured, stream)
    path = tmp_path / "profile.json"
    path.write_text(stream.getvalue())
    read = doctor.read_profile(path)
    assert read == measured
    speed = measured_device(read, "cpu")
    assert speed.flops["f32"] == measured["measured"]["devices"][0]["flops"]["f32"]
    assert speed.gemm_n == microbench.Sizes.quick().gemm


@pytest.mark.parametrize(
    ("key", "value", "complaint"),
    [("f32", -1.0, "matches 0 of oneOf"), ("f16", "missing", "matches 0 of oneOf"), ("int8", None, "oneOf")],
)
def test_schema_refuses_bad_figures(measured: dict[str, Any], key: str, value: Any, complaint: str) -> None:
    bad = json.loads(json.dumps(measured))
    bad["measured"]["devices"][0]["flops"][key] = value
    assert any(complaint in e for e in schema_errors(bad, SCHEMA))


def test_table_shows_measured_devices_and_shared_memory_transfers(measured: dict[str, Any]) -> None:
    profile = json.loads(json.dumps(measured))
    shared = {"latency_seconds": 2e-5, "bytes_per_second": None}  # the size made no difference
    device = {**profile["measured"]["devices"][0], "device": "opencl:0", "kind": "gpu",
              "transfer": {"copy_in": shared, "copy_out": shared, "zero_copy": shared}}  # fmt: skip
    profile["measured"]["devices"].append(device)
    validate(profile)
    console = Console(record=True, width=240)
    doctor.render_table(profile, console)
    text = console.export_text()
    assert "Measured" in text and "opencl:0" in text and "20.0 / size-independent" in text


@pytest.mark.parametrize(
    ("measured", "complaint"),
    [
        ({"version": 1}, "'measured' has no 'devices' list"),
        ({"devices": [{"device": "opencl:0", "kind": "gpu"}]}, "measured device opencl:0 lacks flops"),
        ({"devices": ["x"]}, "measured device #0 lacks device"),
    ],
)
def test_a_profile_with_a_broken_measured_section_is_a_clear_error(
    tmp_path: Path, measured: dict[str, Any], complaint: str
) -> None:
    from hai_compiler.doctor import HardwareProfileError, read_profile, scan

    path = tmp_path / "profile.json"
    path.write_text(json.dumps({**scan(), "measured": measured}))
    with pytest.raises(HardwareProfileError, match=re.escape(complaint)):
        read_profile(path)
