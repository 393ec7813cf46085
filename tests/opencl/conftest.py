"""OpenCL tests run on whatever OpenCL platform is installed (CI: PoCL's CPU device, Debian
pocl-opencl-icd); without pyopencl or a platform they skip, saying so. PoCL's kernel cache goes
under HAI's cache directory (POCL_CACHE_DIR), beside the kernel and program-binary caches."""

from __future__ import annotations

import os

import pytest

from runtime.opencl_probe import opencl_inventory
from targets.kernel_cache import cache_root

os.environ.setdefault("POCL_CACHE_DIR", str(cache_root() / "pocl"))


@pytest.fixture(scope="session")
def opencl_device() -> dict:
    """The first OpenCL device's facts (runtime/opencl_probe.py), or a skip naming why there is none."""
    inventory = opencl_inventory()
    devices = [d for p in inventory["platforms"] for d in p.get("devices", [])]
    if not devices:
        pytest.skip(f"no OpenCL device: {inventory.get('reason', 'no platform lists a device')}")
    return devices[0]
