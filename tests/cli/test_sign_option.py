"""`hai compile --sign KEY` loads the key before compiling: a missing, unreadable or wrong-kind key is one
`error:` line naming the file, and nothing is compiled (compile_model is replaced by a trap)."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_helpers import assert_user_error, invoke

import hai_compiler.compiler
from hai_compiler.demo import EMBEDDED_MODEL

pytest.importorskip("cryptography")
SHAPE = ("--input-shape", "image=1,1,8,8")


def rsa_key(path: Path) -> Path:
    """A PEM private key that is not Ed25519."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))  # fmt: skip
    return path


@pytest.mark.parametrize(
    ("key", "fragment"),
    [
        ("missing.key", "cannot read private key {key}: No such file"),
        ("folder", "cannot read private key {key}: Is a directory"),
        ("signer.pub", "private key {key} is a public key"),
        ("rsa.key", "private key {key} is not an Ed25519 key"),
        ("garbage.key", "private key {key} is not a PEM key"),
    ],
)
def test_compile_checks_the_signing_key_before_compiling(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, key: str, fragment: str
) -> None:
    """A bad `--sign` key is one error naming the file, before compiling (compile_model is never called)."""

    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("compiled before the signing key was checked")

    monkeypatch.setattr(hai_compiler.compiler, "compile_model", never)
    from runtime.signing import generate_key_files

    generate_key_files(tmp_path / "signer")
    (tmp_path / "folder").mkdir()
    (tmp_path / "garbage.key").write_text("not a key\n")
    rsa_key(tmp_path / "rsa.key")
    path, out = tmp_path / key, tmp_path / "digits.hai"
    result = invoke("compile", EMBEDDED_MODEL, *SHAPE, "--sign", path, "-o", out)
    assert_user_error(result, "cannot sign the artifact", fragment.format(key=path))
    assert not out.exists()


def test_compile_signs_with_the_key_loaded_up_front(tmp_path: Path) -> None:
    import runtime
    from runtime.signing import generate_key_files

    private, public = generate_key_files(tmp_path / "signer")
    out = tmp_path / "digits.hai"
    result = invoke("compile", EMBEDDED_MODEL, *SHAPE, "--sign", private, "-o", out)
    assert result.exit_code == 0, result.output
    runtime.load(out, trusted_keys=[public])
