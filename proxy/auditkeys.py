"""The audit signing key (Ed25519) and what it signs: checkpoints of the chain head, prune anchors.

The private key lives in `audit-signing.key` (mode 0400) beside the database; the public key is
exported as `audit-signing.pub` (PEM) so a third party can verify offline.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import stat
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from proxy.auditchain import canonical

KEY_FILE = "audit-signing.key"
PUBLIC_KEY_FILE = "audit-signing.pub"
CHECKPOINT_EVENT = "audit.checkpoint"


class KeyFileError(Exception):
    """A signing or public key file is missing, unreadable, too open, or not an Ed25519 key."""


def rfc3339(at: float) -> str:
    """`at` (epoch seconds) as an RFC 3339 UTC timestamp with microseconds."""
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def key_id(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return "ed25519:" + hashlib.sha256(raw).hexdigest()[:16]


def public_pem(public: Ed25519PublicKey) -> str:
    return public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


@dataclass(frozen=True)
class VerifyKey:
    """A public key that checks signatures, with its id."""

    public: Ed25519PublicKey
    key_id: str

    @classmethod
    def from_pem(cls, pem: bytes | str, source: str) -> VerifyKey:
        data = pem.encode() if isinstance(pem, str) else pem
        try:
            public = serialization.load_pem_public_key(data)
        except ValueError as exc:
            raise KeyFileError(f"{source}: not a PEM public key ({exc})") from exc
        if not isinstance(public, Ed25519PublicKey):
            raise KeyFileError(f"{source}: not an Ed25519 public key")
        return cls(public, key_id(public))

    @classmethod
    def load(cls, path: Path) -> VerifyKey:
        try:
            return cls.from_pem(path.read_bytes(), str(path))
        except OSError as exc:
            raise KeyFileError(f"cannot read the public key {path}: {exc.strerror}") from exc

    def verify(self, signature: str, payload: bytes) -> bool:
        try:
            self.public.verify(base64.b64decode(signature, validate=True), payload)
        except (InvalidSignature, ValueError):
            return False
        return True


@dataclass(frozen=True)
class SigningKey:
    """The private key that signs checkpoints and prune anchors."""

    private: Ed25519PrivateKey

    @property
    def verify_key(self) -> VerifyKey:
        public = self.private.public_key()
        return VerifyKey(public, key_id(public))

    @property
    def key_id(self) -> str:
        return self.verify_key.key_id

    def sign(self, payload: bytes) -> str:
        return base64.b64encode(self.private.sign(payload)).decode()

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def load(cls, path: Path) -> SigningKey:
        """Read the key, refusing a file that others may read (as ssh does)."""
        try:
            st = path.stat()
            data = path.read_bytes()
        except OSError as exc:
            raise KeyFileError(f"cannot read the audit signing key {path}: {exc.strerror}") from exc
        if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise KeyFileError(
                f"the audit signing key {path} is open to others (mode "
                f"{stat.S_IMODE(st.st_mode):04o}); run: chmod 400 {path}"
            )
        try:
            private = serialization.load_pem_private_key(data, password=None)
        except (ValueError, TypeError) as exc:
            raise KeyFileError(f"{path}: not a PEM private key ({exc})") from exc
        if not isinstance(private, Ed25519PrivateKey):
            raise KeyFileError(f"{path}: not an Ed25519 private key")
        return cls(private)


def load_or_create_signing_key(root: Path) -> SigningKey:
    """The data directory's signing key, created (mode 0400) on first use; the public key file
    is (re)written when it is missing or does not match."""
    path, pub_path = root / KEY_FILE, root / PUBLIC_KEY_FILE
    if not path.exists():
        key = SigningKey.generate()
        pem = key.private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o400)
        except FileExistsError:  # another process won the race: use its key
            return load_or_create_signing_key(root)
        except OSError as exc:
            raise KeyFileError(f"cannot create the audit signing key {path}: {exc}") from exc
        with os.fdopen(fd, "wb") as file:
            file.write(pem)
            file.flush()
            os.fsync(file.fileno())
    key = SigningKey.load(path)
    expected = public_pem(key.private.public_key())
    with contextlib.suppress(OSError):
        if pub_path.read_text() == expected:
            return key
    try:
        tmp = pub_path.with_name(f".{PUBLIC_KEY_FILE}.tmp")
        tmp.write_text(expected)
        tmp.chmod(0o644)
        os.replace(tmp, pub_path)
    except OSError as exc:
        raise KeyFileError(f"cannot write the audit public key {pub_path}: {exc}") from exc
    return key


@dataclass(frozen=True)
class SignedHead:
    """A signed statement that the chain's record `seq` has `hash`: a checkpoint, or a pin."""

    seq: int
    hash: str
    at: float
    signature: str
    key_id: str
    count: int | None = None

    @staticmethod
    def payload(seq: int, head_hash: str, at: float) -> bytes:
        return canonical({"seq": seq, "hash": head_hash, "at": at})

    @classmethod
    def sign(cls, key: SigningKey, seq: int, head_hash: str, at: float, count: int) -> SignedHead:
        signature = key.sign(cls.payload(seq, head_hash, at))
        return cls(seq, head_hash, at, signature, key.key_id, count)

    def valid(self, key: VerifyKey) -> bool:
        return self.key_id == key.key_id and key.verify(
            self.signature, self.payload(self.seq, self.hash, self.at)
        )

    def to_json(self) -> dict[str, Any]:
        """The JSON published on the log stream and by `interlock audit head`."""
        return {
            "event": CHECKPOINT_EVENT, "seq": self.seq, "hash": self.hash, "at": self.at,
            "time": rfc3339(self.at), "count": self.count, "signature": self.signature,
            "key_id": self.key_id,
        }  # fmt: skip

    @classmethod
    def from_json(cls, document: Any, source: str) -> SignedHead:
        try:
            return cls(
                seq=int(document["seq"]),
                hash=str(document["hash"]),
                at=float(document["at"]),
                signature=str(document["signature"]),
                key_id=str(document["key_id"]),
                count=None if document.get("count") is None else int(document["count"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(
                f"{source}: not a signed audit head ({exc!r} missing or wrong)"
            ) from exc

    @classmethod
    def parse(cls, text: str, source: str) -> SignedHead:
        """A head from JSON text; a log with many lines gives its last checkpoint line."""
        text = text.strip()
        try:
            return cls.from_json(json.loads(text), source)
        except json.JSONDecodeError:
            pass
        for line in reversed(text.splitlines()):
            with contextlib.suppress(json.JSONDecodeError):
                document = json.loads(line)
                if isinstance(document, dict) and document.get("event") == CHECKPOINT_EVENT:
                    return cls.from_json(document, source)
        raise ValueError(f"{source}: no signed audit head (JSON) found")


def anchor_payload(detail: dict[str, Any]) -> bytes:
    """What a prune anchor signs: everything in its detail but the signature itself."""
    return canonical(
        {"type": "audit.prune", **{k: v for k, v in detail.items() if k != "signature"}}
    )
