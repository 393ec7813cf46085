"""Predicted against measured kernel times on a device without the compiler: bench/opencl_runner.py's
JSON, read with the artifacts it ran and the device's measured hardware profile.

Rule: the runner's HAI rows on its timed platform at batch 1 carry each step's best time (`steps`;
a runner before that kept the 6 slowest, `slowest_kernels`, read the same way). A step names its
kernel and its nodes; its first node is its kernel's anchor in the artifact's `model.hir` (the IR
the artifact was compiled from, fusion groups included). Steps of one anchor add up (a kernel
lowered as several steps). Each kernel is predicted by targets/kernel_costs.py from that IR and the
profile's measured device, twice: with the built kernel's launches from the artifact's OpenCL kernel
library (`predicted_us`: launch count and occupancy, targets/kernel_launches.py) and without them
(`roofline_us`: what the partition pass sees, before any kernel is built). Artifacts come from the
bundle that ran (`bundle.json` and its `payload.zip`, or the payload unpacked) or are recompiled for
the bundle's device profile (bench/opencl_bundle.py's compile). Imports our packages and the stdlib.
"""

from __future__ import annotations

import json
import math
import statistics
import tempfile
import zipfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ir.fusion import anchor_label
from ir.parser import parse_hir
from targets.kernel_costs import DeviceSpeed, KernelCostError, anchor_of, kernel_seconds
from targets.kernel_launches import KernelLaunches

TIMED_ENGINE = "hai-opencl"


def device_steps(report: Mapping[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Model -> its measured steps (kernel, nodes, ms, ...) at batch 1 on the report's timed platform,
    from `steps` or else the `slowest_kernels` list (its leading total has no kernel); models whose
    row has neither are left out."""
    timed = report.get("platform", "NVIDIA")
    found: dict[str, list[dict[str, Any]]] = {}
    for row in report.get("rows", []):
        if row.get("engine") != TIMED_ENGINE or row.get("platform") != timed or int(row["batch"]) != 1:
            continue
        steps = row.get("steps") or [s for s in row.get("slowest_kernels", []) if "kernel" in s]
        if steps:
            found[row["model"]] = steps
    return found


def kernel_rows(
    model: str, steps: list[dict[str, Any]], artifact: Path, speed: DeviceSpeed
) -> tuple[list[dict[str, Any]], list[str]]:
    """Each measured kernel of `model` predicted from `artifact` (the module rule), and the steps no
    node of the artifact's IR accounts for (a different compile, or a copy step)."""
    graph = parse_hir((artifact / "model.hir").read_text(encoding="utf-8"))
    library = opencl_library(artifact)
    by_label = {anchor_label(n): n for n in graph.nodes}
    kernels: dict[int, dict[str, Any]] = {}
    unmatched = []
    for step in steps:
        node = by_label.get(step["nodes"][0]) if step.get("nodes") else None
        if node is None:
            unmatched.append(str(step.get("kernel")))
            continue
        anchor = anchor_of(node)
        entry = kernels.setdefault(id(anchor), {"anchor": anchor, "kernels": [], "ms": 0.0})
        entry["kernels"].append(step["kernel"])
        entry["ms"] += float(step["ms"])
    rows = []
    for entry in kernels.values():
        anchor, measured_us = entry["anchor"], entry["ms"] * 1e3
        launches = KernelLaunches.from_library(library, entry["kernels"])
        predicted = kernel_seconds(anchor, speed, launches=launches) * 1e6
        rows.append({
            "model": model, "kernel": anchor_label(anchor), "op": anchor.op,
            "name": entry["kernels"][0], "schedule": launches.schedule if launches else None,
            "launches": [list(size) for size in launches.sizes] if launches else None,
            "measured_us": measured_us, "predicted_us": predicted,
            "launch_us": speed.launch * (launches.count if launches else 1) * 1e6,
            "roofline_us": kernel_seconds(anchor, speed) * 1e6,
            "ratio": predicted / measured_us if measured_us > 0 else math.inf,
        })  # fmt: skip
    return rows, unmatched


def launch_check(rows: list[dict[str, Any]]) -> dict[int, dict[str, float]]:
    """Per count of device kernels, the kernels whose predicted work is under a tenth of their launches
    (tiny kernels: their time is the launches'): how many, their median measured µs and the µs the
    launches are predicted to take. What calibrates the launch term."""
    tiny: dict[int, list[dict[str, Any]]] = {}
    for r in rows:
        if r["launches"] and r["predicted_us"] - r["launch_us"] < 0.1 * r["launch_us"]:
            tiny.setdefault(len(r["launches"]), []).append(r)
    return {
        count: {"kernels": len(found), "launches_us": found[0]["launch_us"],
                "median_measured_us": statistics.median(r["measured_us"] for r in found)}
        for count, found in sorted(tiny.items())
    }  # fmt: skip


def opencl_library(artifact: Path) -> dict[str, Any]:
    """The artifact's OpenCL kernel library (parsed JSON), empty where it has none."""
    manifest = json.loads((artifact / "manifest.json").read_text(encoding="utf-8"))
    name = manifest.get("kernel_libraries", {}).get("opencl")
    if name is None:
        return {}
    library: dict[str, Any] = json.loads((artifact / name).read_text(encoding="utf-8"))
    return library


@contextmanager
def bundle_artifacts(bundle: Path) -> Iterator[tuple[dict[str, Any], Path]]:
    """The bundle's index (bundle.json) and the folder its artifact paths are relative to: the payload
    unpacked into a temporary folder, or the bundle itself when it holds them unpacked."""
    payload = bundle / "payload.zip"
    if not payload.exists():
        yield json.loads((bundle / "bundle.json").read_text(encoding="utf-8")), bundle
        return
    with tempfile.TemporaryDirectory(prefix="hai-device-costs-") as tmp:
        with zipfile.ZipFile(payload) as archive:
            archive.extractall(tmp, [n for n in archive.namelist() if n.startswith("artifacts/")])
        yield json.loads((bundle / "bundle.json").read_text(encoding="utf-8")), Path(tmp)


@contextmanager
def recompiled_artifacts(models: list[str], profile: str) -> Iterator[tuple[dict[str, Any], Path]]:
    """The batch-1 artifacts of `models` compiled now for the OpenCL device `profile`, as a bundle
    index and its folder (bench/opencl_bundle.py's compile: the same options the bundle used)."""
    from bench.opencl_bundle import compile_artifact, model_source

    with tempfile.TemporaryDirectory(prefix="hai-device-costs-") as tmp:
        entries = []
        for name in models:
            onnx, shapes, _ = model_source(name)
            compile_artifact(onnx, shapes, 1, profile, Path(tmp) / "artifacts" / f"{name}.hai")
            entries.append({"name": name, "artifacts": {"1": f"artifacts/{name}.hai"}})
        yield {"profile": profile, "models": entries}, Path(tmp)


def device_report(
    report: Mapping[str, Any], index: Mapping[str, Any], folder: Path, speed: DeviceSpeed
) -> dict[str, dict[str, Any]]:
    """Model -> {"rows", "unmatched"} for each model the runner profiled (errors as {"error"})."""
    artifacts = {m["name"]: m["artifacts"].get("1") for m in index.get("models", [])}
    result: dict[str, dict[str, Any]] = {}
    for model, steps in device_steps(report).items():
        if not artifacts.get(model):
            result[model] = {"error": f"the bundle has no batch-1 artifact of {model}"}
            continue
        rows, unmatched = kernel_rows(model, steps, folder / artifacts[model], speed)
        result[model] = {"rows": rows, "unmatched": unmatched}
    return result


def read_json(path: Path, what: str) -> dict[str, Any]:
    try:
        found: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise KernelCostError(f"{what} {path}: {type(exc).__name__}: {exc}") from None
    return found
