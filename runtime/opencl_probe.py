"""OpenCL platforms and devices as plain data, through pyopencl when it is installed.

Used by `hai doctor` and, later, by the OpenCL driver's probe. pyopencl
is optional: without it (or without an ICD loader) the answer says so and why,
it never raises. Imports pyopencl lazily and nothing of ours but the runtime.
"""

from __future__ import annotations

from typing import Any

OPENCL_FEATURES = ("fp16", "int8_dot", "host_unified")
"""HAI's feature names of an OpenCL device: cl_khr_fp16, cl_khr_integer_dot_product, host-unified memory."""

# cl.device_type bits -> the name the hardware profile uses.
DEVICE_TYPES = {1 << 1: "CPU", 1 << 2: "GPU", 1 << 3: "ACCELERATOR", 1 << 4: "CUSTOM"}


def device_type_name(bits: int) -> str:
    """`CPU`, `GPU`, `ACCELERATOR` or `CUSTOM` for a cl_device_type bit field (first match wins)."""
    for bit, name in DEVICE_TYPES.items():
        if bits & bit:
            return name
    return "UNKNOWN"


def device_facts(device: Any) -> dict[str, Any]:
    """The capabilities of one pyopencl Device that kernels and the partitioner care about."""
    extensions = sorted(device.extensions.split())
    return {
        "name": device.name.strip(),
        "type": device_type_name(int(device.type)),
        "vendor": device.vendor.strip(),
        "version": device.version.strip(),
        "driver_version": device.driver_version.strip(),
        "compute_units": int(device.max_compute_units),
        "max_clock_mhz": int(device.max_clock_frequency),
        "global_memory_bytes": int(device.global_mem_size),
        "local_memory_bytes": int(device.local_mem_size),
        "max_allocation_bytes": int(device.max_mem_alloc_size),
        "max_work_group_size": int(device.max_work_group_size),
        "host_unified_memory": bool(getattr(device, "host_unified_memory", False)),
        "fp16": "cl_khr_fp16" in extensions,
        "fp64": "cl_khr_fp64" in extensions,
        "int8_dot_product": "cl_khr_integer_dot_product" in extensions,
        "subgroups": "cl_khr_subgroups" in extensions,
        "sub_group_size": _optional(device, "warp_size_nv"),
        "base_align_bits": _optional(device, "mem_base_addr_align"),
        "vector_width_float": _optional(device, "preferred_vector_width_float"),
        "vector_width_half": _optional(device, "preferred_vector_width_half"),
        "extensions": extensions,
    }


def _optional(device: object, name: str) -> int:
    """An integer fact not every driver reports (NVIDIA's warp size, the half vector width); 0 when absent."""
    try:
        return int(getattr(device, name))
    except Exception:  # pyopencl raises LogicError/AttributeError for an unsupported query
        return 0


def platform_facts(platform: Any) -> dict[str, Any]:
    """One platform with its devices; a platform whose driver fails to list devices carries the `error`."""
    entry: dict[str, Any] = {
        "name": platform.name.strip(),
        "vendor": platform.vendor.strip(),
        "version": platform.version.strip(),
        "devices": [],
    }
    try:
        entry["devices"] = [device_facts(d) for d in platform.get_devices()]
    except Exception as exc:  # pyopencl raises its own error types per driver
        entry["error"] = str(exc)
    return entry


def opencl_inventory() -> dict[str, Any]:
    """Every platform and its devices, or `available: False` with the `reason` and no platforms."""
    try:
        import pyopencl as cl
    except ImportError as exc:
        return {"available": False, "reason": f"pyopencl is not installed ({exc})", "platforms": []}
    try:
        platforms = cl.get_platforms()
    except Exception as exc:  # pyopencl raises LogicError/RuntimeError when no ICD is registered
        return {"available": False, "reason": f"no OpenCL platform: {exc}", "platforms": []}
    listed = [platform_facts(platform) for platform in platforms]
    if not listed:
        return {"available": False, "reason": "the OpenCL ICD loader lists no platform", "platforms": []}
    return {"available": True, "platforms": listed}
