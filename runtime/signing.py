"""Ed25519 signatures of artifacts: key files, signing `manifest.json`, verifying it against trusted keys.

Rule: a signature is the 64-byte Ed25519 signature (RFC 8032, deterministic: the same key and
manifest give the same bytes) of `manifest.json`'s exact bytes, stored as `manifest.sig` beside it and
not listed in `files`. The manifest holds every other file's sha256 and size, so one verified
signature covers the whole artifact. Keys are PEM files: the private key PKCS#8 (`NAME.key`, mode
0600), the public key SubjectPublicKeyInfo (`NAME.pub`); a trusted key is a public key file's path or
its bytes. Signing is an optional extra (`pip install 'hai-compiler[signing]'`, the `cryptography`
package), imported only when a key is used, so the minimal runtime stays numpy + tvm-ffi.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from runtime.errors import ArtifactSignatureError, InvalidArgumentError, UnsupportedError

TrustedKey = str | os.PathLike[str] | bytes
"""A public key: the path of a PEM file, or the file's bytes."""


def ed25519() -> Any:
    """`cryptography`'s Ed25519 module, or a clear error naming the extra to install."""
    try:
        from cryptography.hazmat.primitives.asymmetric import ed25519 as module
    except ImportError:
        raise UnsupportedError(
            "signed artifacts need the `cryptography` package: pip install 'hai-compiler[signing]'"
        ) from None
    return module


def load_pem(key: TrustedKey, private: bool) -> Any:
    """The Ed25519 key in `key` (a PEM file's path or bytes), or an `ArtifactSignatureError` naming it."""
    module = ed25519()
    from cryptography.hazmat.primitives import serialization

    kind = "private" if private else "public"
    name = "the given bytes" if isinstance(key, bytes) else str(key)
    try:
        data = key if isinstance(key, bytes) else Path(key).read_bytes()
    except OSError as exc:
        raise ArtifactSignatureError(f"cannot read {kind} key {name}: {exc.strerror}") from None
    try:
        loaded = (
            serialization.load_pem_private_key(data, password=None)
            if private
            else serialization.load_pem_public_key(data)
        )
    except (ValueError, TypeError) as exc:
        if private and is_public_pem(data):
            raise ArtifactSignatureError(
                f"private key {name} is a public key; sign with the private key (NAME.key of `hai keygen`)"
            ) from None
        raise ArtifactSignatureError(f"{kind} key {name} is not a PEM key ({exc})") from None
    expected = module.Ed25519PrivateKey if private else module.Ed25519PublicKey
    if not isinstance(loaded, expected):
        raise ArtifactSignatureError(f"{kind} key {name} is not an Ed25519 key; make one with `hai keygen`")
    return loaded


def is_public_pem(data: bytes) -> bool:
    from cryptography.hazmat.primitives import serialization

    try:
        serialization.load_pem_public_key(data)
    except (ValueError, TypeError):
        return False
    return True


def private_key(key: TrustedKey) -> Any:
    """The Ed25519 private key in `key` (a PEM file's path or bytes), checked now: load it before the
    work that ends in signing (`hai compile --sign`), so a missing or wrong key fails first."""
    return load_pem(key, private=True)


def generate_key_files(stem: str | os.PathLike[str]) -> tuple[Path, Path]:
    """Write a new key pair as `STEM.key` (private, mode 0600) and `STEM.pub`; refuses to overwrite."""
    module = ed25519()
    from cryptography.hazmat.primitives import serialization

    private_path, public_path = Path(f"{os.fspath(stem)}.key"), Path(f"{os.fspath(stem)}.pub")
    for path in (private_path, public_path):
        if path.exists() or path.is_symlink():
            raise ArtifactSignatureError(f"{path} exists; refusing to overwrite a key file")
    key = module.Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    try:
        fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(private)
        public_path.write_bytes(public)
    except OSError as exc:
        raise ArtifactSignatureError(f"cannot write key files {private_path}, {public_path}: {exc}") from None
    return private_path, public_path


def sign(data: bytes, key: Any) -> bytes:
    """The Ed25519 signature of `data` with `key`: a key from `private_key`, or a PEM file's path or bytes."""
    loaded = private_key(key) if isinstance(key, str | bytes | os.PathLike) else key
    signature: bytes = loaded.sign(data)
    return signature


def verify_signature(
    manifest: bytes, signature: bytes | None, trusted_keys: Sequence[TrustedKey], artifact: str
) -> None:
    """Accept `signature` of `manifest` only when one of `trusted_keys` verifies it (module doc)."""
    if isinstance(trusted_keys, str | bytes | os.PathLike) or not isinstance(trusted_keys, Sequence):
        raise InvalidArgumentError(
            "trusted_keys must be a list of public key files or their bytes, "
            f"got a {type(trusted_keys).__name__}"
        )
    if not trusted_keys:
        raise InvalidArgumentError("trusted_keys is empty: give at least one public key, or None to skip")
    keys = [load_pem(key, private=False) for key in trusted_keys]
    if signature is None:
        raise ArtifactSignatureError(
            f"artifact {artifact} is not signed (it has no manifest.sig) but trusted keys were given: "
            "compile it with `hai compile --sign KEY`"
        )
    from cryptography.exceptions import InvalidSignature

    for key in keys:
        try:
            key.verify(signature, manifest)
            return
        except InvalidSignature:
            continue
    raise ArtifactSignatureError(
        f"the signature of artifact {artifact} does not verify with any of the {len(keys)} trusted key(s): "
        "its manifest was changed after signing, or another key signed it"
    )
