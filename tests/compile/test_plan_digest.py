"""The plan digest (runtime/plan_digest.py): a manifest whose plan, target or weights' table was edited after
compiling is refused at load, before any kernel runs, though every plan check and the CPU check accept the
edit and every file's sha256 still matches.

The digits model is compiled once with its one-call entry and once step by step; the untouched artifacts
load and match onnxruntime. Each edit below passes `read_manifest` (format, plan invariants, hashes):
only the digest compiled into `kernels.cpu.so` can tell the manifest no longer describes the code.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from compile_helpers import (
    assert_matches_onnxruntime,
    onnxruntime_outputs,
    output_moved_to_written_bytes,
    with_manifest,
)

import runtime
from hai_compiler.compiler import CompileOptions, compile_model
from hai_compiler.demo import EMBEDDED_MODEL, INPUT
from runtime.artifact import MANIFEST_FILE, kernel_library_file
from runtime.artifact_files import read_manifest
from runtime.errors import ArtifactError
from runtime.hai import open_device
from runtime.model import check_cpu
from runtime.plan_digest import compiled_digest, manifest_digest

SHAPES = {INPUT: (1, 1, 8, 8)}


@pytest.fixture(scope="module", params=["auto", "off"], ids=["entry", "steps"])
def artifact(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp(f"digits-{request.param}")
    options = CompileOptions(input_shapes=SHAPES, entry=request.param)
    path = compile_model(EMBEDDED_MODEL, folder / "digits.hai", options).path
    entry = read_manifest(path).plan.entry
    assert (entry is not None) == (request.param == "auto")
    return path


def feeds() -> dict[str, np.ndarray]:
    return {INPUT: np.random.default_rng(5).standard_normal(SHAPES[INPUT]).astype(np.float32)}


def test_untouched_artifact_loads_and_matches_onnxruntime(artifact: Path) -> None:
    model = runtime.load(artifact)
    cpu = open_device("cpu")
    library = cpu.load_executable(str(artifact / kernel_library_file("cpu")))
    assert compiled_digest(cpu, library) == manifest_digest(model.manifest)
    plan, executable = model.manifest.plan, kernel_library_file("cpu")  # the x86 target's device: the cpu
    assert {(step.device, step.executable) for step in plan.steps} == {("cpu", executable)}
    assert plan.entry_executable == (executable if plan.entry is not None else None)
    assert_matches_onnxruntime(artifact, EMBEDDED_MODEL, feeds())


def entry_changed(data: dict) -> None:
    """An entry plan called step by step, or a step plan's first kernel called as its entry."""
    plan, first = data["plan"], data["plan"]["steps"][0]
    plan["entry"], plan["entry_executable"] = (
        (None, None) if plan["entry"] else (first["kernel"], first["executable"])
    )


def feature_dropped(data: dict) -> None:
    """One of the features the kernels were compiled for removed: the CPU check then asks for less."""
    features = data["target"]["features"]
    if not features:
        pytest.skip("the artifact's target lists no features to drop")
    features.pop(len(features) // 2)


def weight_retyped(data: dict) -> None:
    """The first weight's dtype changed to another of the same size (its bytes and every slot still fit)."""
    weight = data["weights"][0]
    size = np.dtype(weight["dtype"]).itemsize
    weight["dtype"] = next(d for d in ("int32", "float32", "int16", "int8", "uint8")
                           if np.dtype(d).itemsize == size and d != weight["dtype"])  # fmt: skip


EDITS = {"entry changed": entry_changed, "feature dropped": feature_dropped, "weight retyped": weight_retyped}


@pytest.mark.parametrize("edit", ["output moved", *EDITS])
def test_edited_plan_is_refused_naming_the_plan_digest(artifact: Path, tmp_path: Path, edit: str) -> None:
    if edit == "output moved":
        data = output_moved_to_written_bytes(artifact)
    else:
        data = json.loads((artifact / MANIFEST_FILE).read_text())
        EDITS[edit](data)
    edited = with_manifest(artifact, tmp_path / "edited.hai", data)
    manifest = read_manifest(edited)  # every plan check and every sha256 accept the edit
    check_cpu(manifest, open_device("cpu").capabilities(), edited)  # and so does the CPU check
    with pytest.raises(ArtifactError, match=r"does not match the compiled kernels in .*kernels\.cpu\.so "
                       r"\(plan digest [0-9a-f]{16}…, compiled for [0-9a-f]{16}…\).*recompile"):  # fmt: skip
        runtime.load(edited)
    with pytest.raises(ArtifactError, match="plan digest"):
        runtime.load(edited, verify=False)


def test_without_the_digest_check_a_moved_output_is_garbage(
    artifact: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The control: what the check prevents. Unchecked, the edited artifact runs and returns wrong logits."""
    import runtime.plan_devices

    if read_manifest(artifact).plan.entry is None:
        pytest.skip("called step by step, the step writing an output follows its binding: still right")
    edited = with_manifest(artifact, tmp_path / "edited.hai", output_moved_to_written_bytes(artifact))
    monkeypatch.setattr(runtime.plan_devices, "check_plan_digest", lambda *args: None)
    got = runtime.load(edited).run(feeds())["logits"]
    want = onnxruntime_outputs(EMBEDDED_MODEL, feeds())["logits"]
    assert not np.allclose(got, want, rtol=1e-2, atol=1e-2)
