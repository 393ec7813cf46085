"""The artifact format: manifests round-trip through JSON, and `read_manifest` refuses every kind of damage
with a message naming the file. Kernel libraries here are stand-in bytes: reading never loads them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from tiny_artifact import tiny_parts, tiny_weights

from runtime.artifact import FORMAT_VERSION, MANIFEST_FILE, WEIGHTS_FILE
from runtime.artifact_files import read_manifest, sha256_of
from runtime.errors import ArtifactError, ArtifactIntegrityError, ArtifactVersionError
from runtime.manifest_checks import parse_manifest
from targets.artifact import write_artifact


@pytest.fixture
def artifact(tmp_path: Path) -> Path:
    kernels = tmp_path / "kernels.so"
    kernels.write_bytes(b"\x7fELF stand-in kernel library")
    tvm_runtime = tmp_path / "libtvm_runtime.so"
    tvm_runtime.write_bytes(b"\x7fELF stand-in tvm runtime")
    return write_artifact(
        tmp_path / "tiny.hai", tiny_parts(), tiny_weights(), {"cpu": kernels}, "// hir\n", tvm_runtime
    )


def edit_manifest(artifact: Path, change) -> None:  # type: ignore[no-untyped-def]
    data = json.loads((artifact / MANIFEST_FILE).read_text())
    change(data)
    (artifact / MANIFEST_FILE).write_text(json.dumps(data))


def test_manifest_round_trips_through_json(artifact: Path) -> None:
    manifest = read_manifest(artifact)
    text = (artifact / MANIFEST_FILE).read_text()
    assert manifest.to_json() == text
    assert parse_manifest(text) == manifest
    assert manifest.format_version == FORMAT_VERSION
    assert [s.kernel for s in manifest.plan.steps] == ["matmul", "bias_relu"]
    assert manifest.plan.steps[1].nodes == ("/fc/Add", "/relu/Relu")


def test_every_file_has_its_sha256(artifact: Path) -> None:
    manifest = read_manifest(artifact)
    on_disk = sorted(p.name for p in artifact.iterdir() if p.name != MANIFEST_FILE)
    assert sorted(manifest.files) == on_disk
    for name, entry in manifest.files.items():
        assert sha256_of(artifact / name) == entry.sha256
        assert (artifact / name).stat().st_size == entry.size


def test_weights_are_aligned_and_exact(artifact: Path) -> None:
    manifest = read_manifest(artifact)
    blob = (artifact / WEIGHTS_FILE).read_bytes()
    weights = tiny_weights()
    for entry in manifest.weights:
        assert entry.offset % 64 == 0
        stored = np.frombuffer(blob, entry.dtype, count=int(np.prod(entry.shape)), offset=entry.offset)
        np.testing.assert_array_equal(stored.reshape(entry.shape), weights[entry.name])


def test_missing_directory_and_manifest(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="does not exist"):
        read_manifest(tmp_path / "nowhere.hai")
    with pytest.raises(ArtifactError, match="no manifest.json"):
        read_manifest(tmp_path)


def test_corrupt_manifest(artifact: Path) -> None:
    (artifact / MANIFEST_FILE).write_text('{"format_version": 1, "name": ')
    with pytest.raises(ArtifactError, match="manifest.json is not valid JSON"):
        read_manifest(artifact)


def test_manifest_outside_the_schema(artifact: Path) -> None:
    edit_manifest(artifact, lambda d: d["plan"].update(surprise=1))
    with pytest.raises(ArtifactError, match=r"ExecutionPlan has no field\(s\) \['surprise'\]"):
        read_manifest(artifact)


def test_wrong_format_version(artifact: Path) -> None:
    edit_manifest(artifact, lambda d: d.update(format_version=FORMAT_VERSION + 1))
    with pytest.raises(ArtifactVersionError, match=f"format version {FORMAT_VERSION + 1}.*reads version"):
        read_manifest(artifact)


def test_truncated_weights(artifact: Path) -> None:
    path = artifact / WEIGHTS_FILE
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(ArtifactIntegrityError, match="weights.bin has .* bytes .* truncated"):
        read_manifest(artifact)


def test_kernel_library_checksum_mismatch(artifact: Path) -> None:
    path = artifact / "kernels.cpu.so"
    data = bytearray(path.read_bytes())
    data[3] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ArtifactIntegrityError, match="kernels.cpu.so does not match its checksum"):
        read_manifest(artifact)
    read_manifest(artifact, verify=False)  # sizes only: the caller chose not to hash


def test_missing_listed_file(artifact: Path) -> None:
    (artifact / "libtvm_runtime.so").unlink()
    with pytest.raises(ArtifactError, match="missing libtvm_runtime.so"):
        read_manifest(artifact)


def test_misaligned_and_overrunning_slots(artifact: Path) -> None:
    edit_manifest(artifact, lambda d: d["plan"]["steps"][0]["args"][2].update(offset=260))
    with pytest.raises(ArtifactError, match=r"argument #2 of step 0 \(matmul\) has offset 260"):
        read_manifest(artifact)
    edit_manifest(artifact, lambda d: d["plan"]["steps"][0]["args"][2].update(offset=448))
    with pytest.raises(ArtifactError, match="overruns the arena of 512 bytes"):
        read_manifest(artifact)


def test_slot_naming_an_unknown_binding(artifact: Path) -> None:
    edit_manifest(artifact, lambda d: d["plan"]["steps"][0]["args"][0].update(name="z"))
    with pytest.raises(ArtifactError, match="names graph input 'z'"):
        read_manifest(artifact)


# -- tampering (issue 11): every edit is refused, naming what is wrong ---------------------------------


def test_every_file_the_runtime_opens_must_be_listed(artifact: Path) -> None:
    edit_manifest(artifact, lambda d: d["files"].pop("libtvm_runtime.so"))
    with pytest.raises(
        ArtifactError, match="libtvm_runtime.so, which the kernel libraries need, is not listed"
    ):
        read_manifest(artifact)
    edit_manifest(artifact, lambda d: d["files"].pop("kernels.cpu.so"))
    with pytest.raises(ArtifactError, match="kernel library 'kernels.cpu.so' of device 'cpu' is not listed"):
        read_manifest(artifact)


@pytest.mark.parametrize("name", ["weights.bin", "kernels.cpu.so", MANIFEST_FILE])
def test_links_inside_the_artifact_are_refused(artifact: Path, tmp_path: Path, name: str) -> None:
    outside = tmp_path / "elsewhere"
    outside.write_bytes((artifact / name).read_bytes())  # same bytes, same hash: only the link is wrong
    (artifact / name).unlink()
    (artifact / name).symlink_to(outside)
    with pytest.raises(ArtifactError, match=f"cannot open .*{name}: it is a link"):
        read_manifest(artifact, verify=False)


def test_sizes_are_checked_without_verifying(artifact: Path) -> None:
    library = artifact / "kernels.cpu.so"
    library.write_bytes(library.read_bytes()[:10])
    with pytest.raises(ArtifactIntegrityError, match=r"kernels.cpu.so has 10 bytes .* truncated"):
        read_manifest(artifact, verify=False)


def test_older_format_asks_to_recompile(artifact: Path) -> None:
    edit_manifest(artifact, lambda d: d.update(format_version=FORMAT_VERSION - 1))
    with pytest.raises(ArtifactVersionError, match="recompile the model with this HAI"):
        read_manifest(artifact)


def set_output(**fields):  # type: ignore[no-untyped-def]
    return lambda d: d["outputs"][0].update(fields)


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (set_output(dtype="float64"), r"output 'y' \(2.* bytes at offset 384\) overruns the arena"),
        (set_output(dtype="U4"), "output 'y' has dtype 'U4'; expected one of float32"),
        (set_output(dtype="object"), "output 'y' has dtype 'object'"),
        (set_output(shape=[True, 8]), r"TensorBinding.shape\[0\] must be a int, got True"),
        (set_output(offset=True), "TensorBinding.offset must be a int, got True"),
        (set_output(offset=1.5e3), "TensorBinding.offset must be a int, got 1500.0"),
        (lambda d: d["plan"].update(steps=[]), r"output 'y' \(arena bytes \[384, 512\)\) is not written"),
        (lambda d: d["plan"]["steps"][0]["args"][2].update(offset=0), r"reads arena bytes \[256, 384\)"),
        (
            set_output(offset=320),
            r"argument #2 of step 1 \(bias_relu\) writes arena bytes \[320, 448\) over "
            r"part of argument #0 \[256, 384\), which it reads",
        ),
        (lambda d: d["plan"]["steps"][0]["args"][1].update(writes=True), "writes a weight"),
        (
            lambda d: d["plan"].update(arena_size=2**50, planned_peak_bytes=1 << 30),
            "more than the planned peak",
        ),
        (lambda d: d["plan"].update(arena_size=-1), "arena size -1 is negative"),
        (lambda d: d["files"]["weights.bin"].update(size=1), "weights.bin is listed with 1 bytes"),
        (lambda d: d["files"].update({"../x": d["files"]["model.hir"]}), r"bad file name '../x'"),
    ],
)
def test_manifest_edits_are_named(artifact: Path, change, message: str) -> None:  # type: ignore[no-untyped-def]
    edit_manifest(artifact, change)
    with pytest.raises(ArtifactError, match=message):
        read_manifest(artifact, verify=False)


def test_oversized_numbers_and_nesting_are_corrupt_json(artifact: Path) -> None:
    text = (artifact / MANIFEST_FILE).read_text()
    (artifact / MANIFEST_FILE).write_text(text.replace('"arena_size": 512', '"arena_size": ' + "9" * 5000))
    with pytest.raises(ArtifactError, match="not valid JSON .*4300 digits"):
        read_manifest(artifact)
    (artifact / MANIFEST_FILE).write_text(nested(200_000))
    with pytest.raises(ArtifactError, match="not valid JSON .*nests too deeply"):
        read_manifest(artifact)
