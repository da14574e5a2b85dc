"""Ed25519 signatures over manifests: who wrote a backup, not just whether its bytes are whole.

Age encryption does not authenticate (anyone holding the public recipient can write a valid ``.age`` file), and
whoever can write the store can rewrite the data, its ``.sha256`` and its manifest together. A signature over the
manifest's exact bytes (which hold the data's sha256 and size) made with a key the store never sees closes that.

Key formats, both one line of text:

- the secret key file: ``dbkeeper-ed25519-secret:<base64 of the 32-byte seed>``, mode 0600;
- the verify (public) key: ``dbkeeper-ed25519:<base64 of the 32-byte key>``, short enough for a config line.
"""

from __future__ import annotations

import base64
import binascii
import os
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat

from dbkeeper.errors import UsageError

SECRET_PREFIX = "dbkeeper-ed25519-secret:"  # noqa: S105 (a format tag, not a secret)
PUBLIC_PREFIX = "dbkeeper-ed25519:"
SIGNATURE_BYTES = 64
GENERATE_HINT = "create one with `dbkeeper key generate FILE`"


@dataclass(frozen=True)
class Signer:
    """A secret key, loaded: signs a manifest's bytes."""

    key: Ed25519PrivateKey

    def sign(self, data: bytes) -> bytes:
        return self.key.sign(data)

    @property
    def public(self) -> str:
        return _public_text(self.key.public_key())


@dataclass(frozen=True)
class VerifyKey:
    """A public key: checks a signature over a manifest's bytes."""

    key: Ed25519PublicKey
    text: str

    def verifies(self, data: bytes, signature: bytes) -> bool:
        if len(signature) != SIGNATURE_BYTES:
            return False
        try:
            self.key.verify(signature, data)
        except InvalidSignature:
            return False
        return True


def _public_text(key: Ed25519PublicKey) -> str:
    raw = key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return PUBLIC_PREFIX + base64.b64encode(raw).decode("ascii")


def _raw32(text: str, prefix: str) -> bytes | None:
    if not text.startswith(prefix):
        return None
    try:
        raw = base64.b64decode(text[len(prefix) :].encode("ascii"), validate=True)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        return None
    return raw if len(raw) == 32 else None


def parse_verify_key(text: str, where: str = "the verify key") -> VerifyKey:
    """A ``dbkeeper-ed25519:…`` public key; UsageError naming ``where`` otherwise (never quoting a secret)."""
    value = text.strip()
    if value.startswith(SECRET_PREFIX):
        raise UsageError(
            f"{where} is a secret key, not a verify key",
            "give the public key `dbkeeper key public FILE` prints (dbkeeper-ed25519:…); keep the secret key on the"
            " backup host",
        )
    raw = _raw32(value, PUBLIC_PREFIX)
    if raw is None:
        raise UsageError(
            f"{where} is not a dbkeeper verify key",
            "give the dbkeeper-ed25519:… line `dbkeeper key generate` or `dbkeeper key public FILE` printed",
        )
    return VerifyKey(Ed25519PublicKey.from_public_bytes(raw), value)


def load_signer(path: str | os.PathLike[str]) -> Signer:
    """The secret key in ``path``; UsageError with a hint if it is missing, unreadable or not one."""
    try:
        with open(path, "rb") as f:
            data = f.read(4096)
    except FileNotFoundError:
        raise UsageError(f"signing key {path} does not exist", GENERATE_HINT) from None
    except OSError as exc:
        raise UsageError(
            f"cannot read signing key {path}: {exc.strerror or exc}", "check the path and its permissions"
        ) from None
    try:
        text = data.decode("ascii").strip()
    except UnicodeDecodeError:
        text = ""
    if text.startswith(PUBLIC_PREFIX):
        raise UsageError(
            f"{path} holds a verify key, not a signing key",
            "give --sign-key the secret key file `dbkeeper key generate` wrote",
        )
    raw = _raw32(text, SECRET_PREFIX)
    if raw is None:
        raise UsageError(f"{path} is not a dbkeeper signing key", GENERATE_HINT)
    return Signer(Ed25519PrivateKey.from_private_bytes(raw))


def generate(path: str | os.PathLike[str]) -> Signer:
    """A new secret key written to ``path`` (mode 0600, never over an existing file)."""
    key = Ed25519PrivateKey.generate()
    seed = key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    line = (SECRET_PREFIX + base64.b64encode(seed).decode("ascii") + "\n").encode("ascii")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    except FileExistsError:
        raise UsageError(f"{path} already exists; it was left as it is", "give a new file name") from None
    except OSError as exc:
        raise UsageError(
            f"cannot create {path}: {exc.strerror or exc}", "check the directory and its permissions"
        ) from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())
    except OSError as exc:
        os.unlink(path)
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from None
    return Signer(key)
