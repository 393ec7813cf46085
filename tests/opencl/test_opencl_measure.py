"""`hai doctor --measure` on an OpenCL device: the microbenchmarks compiled for this machine's OpenCL
device measure positive speeds and transfers there; a precision the device lacks is 'unsupported'
with the reason, as its facts (runtime/opencl_probe.py) say, never a guess."""

from __future__ import annotations

from typing import Any

from hai_compiler import microbench
from runtime.microbench import measure


def test_opencl_device_is_measured(opencl_device: dict[str, Any], tmp_path: Any) -> None:
    microbench.build(tmp_path, [{"target": "opencl", "cpu": None}], microbench.Sizes.quick())
    result = measure(tmp_path, runs=2)
    first = result["devices"][0]
    assert (first["device"], first["name"], first["target"]) == ("opencl:0", opencl_device["name"], "opencl")
    assert 1e5 < first["flops"]["f32"] < 1e16
    assert (first["flops"]["f16"] == "unsupported") == (not opencl_device["fp16"])
    assert all(b["bytes_per_second"] > 0 for b in first["bandwidth"]) and first["launch_seconds"] > 0
    for mode in ("copy_in", "copy_out", "zero_copy"):
        figures = first["transfer"][mode]
        assert 0 < figures["latency_seconds"] < 1
        assert figures["bytes_per_second"] is None or figures["bytes_per_second"] > 0
