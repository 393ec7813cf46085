"""The artifact writer: byte-identical output for the same inputs, 64-byte aligned weights in the order
given, weight slots made absolute, and refusals that name the step, weight or directory. Kernel libraries
are stand-in bytes (the runtime tests run real ones); `runtime.artifact_files.read_manifest` reads back."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from runtime.artifact import (
    MANIFEST_FILE,
    WEIGHTS_FILE,
    CompilerInfo,
    ExecutionPlan,
    Slot,
    Step,
    TargetInfo,
    TensorBinding,
)
from runtime.artifact_files import read_manifest
from targets.artifact import ArtifactWriteError, ManifestParts, write_artifact

F32 = "float32"


def parts(steps: tuple[Step, ...], entry: str | None = None) -> ManifestParts:
    return ManifestParts(
        name="m",
        compiler=CompilerInfo("0.1.0", "0.27.0.post1", {"passes": "default", "cpu": "x86-64-v3"}),
        target=TargetInfo("x86", "x86_64", "x86-64-v3", ("avx2", "fma")),
        inputs=(TensorBinding("x", (3,), F32),),
        outputs=(TensorBinding("y", (3,), F32, 64),),
        plan=ExecutionPlan(128, steps, entry),
    )


def add_step(weight_slot: Slot) -> Step:
    return Step(
        "add",
        (Slot("input", (3,), F32, name="x"), weight_slot, Slot("output", (3,), F32, name="y", writes=True)),
        ("n1",),
    )


def weights() -> dict[str, np.ndarray]:
    return {
        "a": np.arange(3, dtype=np.float32),  # 12 bytes, then padding to 64
        "b": np.arange(10, dtype=np.int8),
        "c": np.linspace(0, 1, 6, dtype=np.float32).reshape(2, 3),
    }


@pytest.fixture
def libraries(tmp_path: Path) -> dict[str, Path]:
    (tmp_path / "k.so").write_bytes(b"\x7fELF kernels")
    (tmp_path / "rt.so").write_bytes(b"\x7fELF runtime")
    return {"cpu": tmp_path / "k.so", "runtime": tmp_path / "rt.so"}


def write(out: Path, libraries: dict[str, Path], steps: tuple[Step, ...] | None = None) -> Path:
    steps = steps if steps is not None else (add_step(Slot("weight", (3,), F32, name="c")),)
    return write_artifact(
        out, parts(steps), weights(), {"cpu": libraries["cpu"]}, "// hir\n", libraries["runtime"]
    )


def directory_bytes(path: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(path.iterdir())}


def test_same_inputs_give_byte_identical_artifacts(tmp_path: Path, libraries: dict[str, Path]) -> None:
    first = directory_bytes(write(tmp_path / "one.hai", libraries))
    second = directory_bytes(write(tmp_path / "two" / "m.hai", libraries))
    again = directory_bytes(write(tmp_path / "one.hai", libraries))  # replacing an artifact in place
    assert first == second == again
    assert sorted(first) == [
        "kernels.cpu.so", "libtvm_runtime.so", MANIFEST_FILE, "model.hir", WEIGHTS_FILE
    ]  # fmt: skip
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no staging left


def test_manifest_text_is_sorted_and_stable(tmp_path: Path, libraries: dict[str, Path]) -> None:
    text = (write(tmp_path / "m.hai", libraries) / MANIFEST_FILE).read_text()
    assert text.endswith("}\n") and '\n  "compiler": {' in text
    top_keys = [line.split('"')[1] for line in text.splitlines() if line.startswith('  "')]
    assert top_keys == sorted(top_keys)


def test_weights_are_aligned_in_the_order_given(tmp_path: Path, libraries: dict[str, Path]) -> None:
    out = write(tmp_path / "m.hai", libraries)
    manifest = read_manifest(out)
    assert [(w.name, w.offset, w.shape, w.dtype) for w in manifest.weights] == [
        ("a", 0, (3,), "float32"), ("b", 64, (10,), "int8"), ("c", 128, (2, 3), "float32")
    ]  # fmt: skip
    blob = (out / WEIGHTS_FILE).read_bytes()
    assert manifest.weights_size == len(blob) == 128 + 24
    assert blob[12:64] == bytes(52) and blob[74:128] == bytes(54)  # zero padding
    for name, array in weights().items():
        entry = next(w for w in manifest.weights if w.name == name)
        assert blob[entry.offset : entry.offset + array.nbytes] == array.tobytes()


def test_weight_slots_become_absolute(tmp_path: Path, libraries: dict[str, Path]) -> None:
    slot = Slot("weight", (3,), F32, offset=0, name="c")
    out = write(tmp_path / "m.hai", libraries, (add_step(slot),))
    (written,) = read_manifest(out).plan.steps
    assert written.args[1] == Slot("weight", (3,), F32, offset=128, name="c")


def test_unknown_weight_and_overrunning_view(tmp_path: Path, libraries: dict[str, Path]) -> None:
    with pytest.raises(ArtifactWriteError, match=r"argument #1 of step 0 \(add\) names weight 'zz'"):
        write(tmp_path / "m.hai", libraries, (add_step(Slot("weight", (3,), F32, name="zz")),))
    with pytest.raises(ArtifactWriteError, match="views 64 bytes at offset 0 of weight 'a', which has 12"):
        write(tmp_path / "m.hai", libraries, (add_step(Slot("weight", (16,), F32, name="a")),))
    assert not (tmp_path / "m.hai").exists()


def test_invalid_plan_is_refused(tmp_path: Path, libraries: dict[str, Path]) -> None:
    step = Step(
        "copy", (Slot("arena", (3,), F32, offset=8), Slot("output", (3,), F32, name="y", writes=True))
    )
    with pytest.raises(ArtifactWriteError, match=r"argument #0 of step 0 \(copy\) has offset 8"):
        write(tmp_path / "m.hai", libraries, (step,))


def test_refuses_to_overwrite_other_directories(tmp_path: Path, libraries: dict[str, Path]) -> None:
    precious = tmp_path / "data"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me")
    with pytest.raises(ArtifactWriteError, match="exists and is not a HAI artifact"):
        write(precious, libraries)
    assert (precious / "notes.txt").read_text() == "keep me"


def test_missing_kernel_library(tmp_path: Path, libraries: dict[str, Path]) -> None:
    with pytest.raises(ArtifactWriteError, match="kernel library .*nope.so of device 'cpu' does not exist"):
        write_artifact(
            tmp_path / "m.hai", parts(()), {}, {"cpu": tmp_path / "nope.so"}, "", libraries["runtime"]
        )
