"""The runtime asks Linux for the AMX tile state before an artifact that may use tiles runs.

Checked on this host where it has AMX (the request succeeds, a tile kernel then
runs: tests/targets/test_lowering_bf16.py), and by stand-ins elsewhere: an
artifact without `amx` asks nothing, a refusal is an UnsupportedCpuError that
names the artifact and the way out.
"""

from __future__ import annotations

import platform
import sys
from pathlib import Path

import pytest

from runtime import amx
from runtime.cpu_features import host_cpu
from runtime.errors import UnsupportedCpuError


def test_the_request_succeeds_where_the_host_has_amx() -> None:
    if sys.platform != "linux" or platform.machine() != "x86_64" or "amx" not in host_cpu().features:
        pytest.skip("this host has no AMX tiles")
    assert amx.request_tile_state() == 0
    amx.check_tile_state(("avx512f", "amx"), Path("m.hai"))


def test_an_artifact_without_amx_asks_nothing(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(amx, "request_tile_state", lambda: pytest.fail("asked for the tile state"))
    amx.check_tile_state(("avx512f", "avx512_bf16"), Path("m.hai"))


def test_a_refusal_names_the_artifact(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(amx, "needs_tile_state", lambda features: True)
    monkeypatch.setattr(amx, "request_tile_state", lambda: 22)  # EINVAL: a kernel before 5.16
    with pytest.raises(UnsupportedCpuError, match=r"artifact m\.hai may run AMX .*--cpu-features -amx"):
        amx.check_tile_state(("amx",), Path("m.hai"))
