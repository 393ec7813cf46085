"""Signed artifacts: `hai keygen`, `hai compile --sign` (here `sign_artifact`), and `read_manifest` /
`runtime.load` / `hai run` with trusted keys refusing unsigned, wrongly signed or edited artifacts before
anything is loaded. Kernel libraries are stand-in bytes except in the end-to-end test."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from tiny_artifact import tiny_parts, tiny_weights

from runtime.artifact import MANIFEST_FILE, SIGNATURE_FILE
from runtime.artifact_files import read_manifest
from runtime.errors import ArtifactSignatureError, InvalidArgumentError, UnsupportedError
from runtime.signing import generate_key_files
from targets.artifact import sign_artifact, write_artifact

pytest.importorskip("cryptography")


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, Path, Path]:
    """(private key, its public key, another key's public key)."""
    private, public = generate_key_files(tmp_path / "signer")
    _, other = generate_key_files(tmp_path / "other")
    return private, public, other


@pytest.fixture
def artifact(tmp_path: Path) -> Path:
    (tmp_path / "k.so").write_bytes(b"\x7fELF stand-in kernel library")
    (tmp_path / "rt.so").write_bytes(b"\x7fELF stand-in tvm runtime")
    parts = tiny_parts()
    return write_artifact(
        tmp_path / "tiny.hai",
        parts,
        tiny_weights(),
        {"cpu": tmp_path / "k.so"},
        "// hir\n",
        tmp_path / "rt.so",
    )


def test_signed_artifact_verifies_with_its_key(artifact: Path, keys: tuple[Path, Path, Path]) -> None:
    private, public, other = keys
    before = {p.name: p.read_bytes() for p in artifact.iterdir()}
    sign_artifact(artifact, private)
    after = {p.name: p.read_bytes() for p in artifact.iterdir()}
    assert len(after.pop(SIGNATURE_FILE)) == 64 and after == before  # only the signature is added
    assert SIGNATURE_FILE not in read_manifest(artifact, trusted_keys=[public]).files
    read_manifest(artifact, trusted_keys=[other, public])  # any one trusted key is enough
    read_manifest(artifact, trusted_keys=[public.read_bytes()])
    signature = (artifact / SIGNATURE_FILE).read_bytes()
    sign_artifact(artifact, private)
    assert (artifact / SIGNATURE_FILE).read_bytes() == signature  # Ed25519 is deterministic


def test_unsigned_wrongly_signed_and_edited_artifacts_are_refused(
    artifact: Path, keys: tuple[Path, Path, Path]
) -> None:
    private, public, other = keys
    with pytest.raises(ArtifactSignatureError, match="is not signed"):
        read_manifest(artifact, trusted_keys=[public])
    sign_artifact(artifact, private)
    with pytest.raises(ArtifactSignatureError, match="does not verify with any of the 1 trusted key"):
        read_manifest(artifact, trusted_keys=[other])
    manifest = artifact / MANIFEST_FILE
    data = json.loads(manifest.read_text())
    data["files"]["kernels.cpu.so"]["sha256"] = "0" * 64  # a replaced library and its new hash
    manifest.write_text(json.dumps(data, sort_keys=True, indent=2) + "\n")
    with pytest.raises(ArtifactSignatureError, match="manifest was changed after signing"):
        read_manifest(artifact, trusted_keys=[public])
    read_manifest(artifact, verify=False)  # without keys the (self-consistent) edit is not detectable


def test_bad_trusted_keys_are_clear_errors(artifact: Path, keys: tuple[Path, Path, Path]) -> None:
    private, public, _ = keys
    sign_artifact(artifact, private)
    with pytest.raises(InvalidArgumentError, match="must be a list"):
        read_manifest(artifact, trusted_keys=str(public))  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="is empty"):
        read_manifest(artifact, trusted_keys=[])
    with pytest.raises(ArtifactSignatureError, match="is not a PEM key"):
        read_manifest(artifact, trusted_keys=[b"not a key"])
    with pytest.raises(ArtifactSignatureError, match="cannot read public key"):
        read_manifest(artifact, trusted_keys=[artifact / "missing.pub"])
    with pytest.raises(ArtifactSignatureError, match="refusing to overwrite"):
        generate_key_files(private.with_suffix(""))


def test_missing_signing_extra_is_a_clear_error(
    artifact: Path, keys: tuple[Path, Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in [n for n in sys.modules if n.split(".")[0] == "cryptography"] + ["cryptography"]:
        monkeypatch.setitem(sys.modules, name, None)  # as if the extra were not installed
    with pytest.raises(UnsupportedError, match=r"pip install 'hai-compiler\[signing\]'"):
        read_manifest(artifact, trusted_keys=[keys[1]])


def test_cli_keygen_sign_and_run(tmp_path: Path) -> None:
    """`hai keygen`, then `hai run --trusted-key` on a real compiled tiny artifact, signed or not."""
    from tiny_artifact import build_kernels, write_tiny_artifact
    from typer.testing import CliRunner

    from hai_compiler.cli import app

    pytest.importorskip("tvm")
    runner = CliRunner()
    done = runner.invoke(app, ["keygen", str(tmp_path / "me")])
    assert done.exit_code == 0, done.output
    assert (tmp_path / "me.key").stat().st_mode & 0o077 == 0
    artifact = write_tiny_artifact(tmp_path / "tiny.hai", build_kernels(tmp_path / "k.so"))
    refused = runner.invoke(app, ["run", str(artifact), "--trusted-key", str(tmp_path / "me.pub")])
    assert (
        refused.exit_code == 1 and refused.output.count("error:") == 1 and "is not signed" in refused.output
    )
    sign_artifact(artifact, tmp_path / "me.key")
    accepted = runner.invoke(app, ["run", str(artifact), "--trusted-key", str(tmp_path / "me.pub")])
    assert accepted.exit_code == 0 and "y: f32[4, 8]" in accepted.output, accepted.output
