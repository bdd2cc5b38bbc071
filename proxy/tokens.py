"""Agent and operator tokens, stored only as hashes in `tokens.json`."""

from __future__ import annotations

import fcntl
import hashlib
import hmac
import json
import os
import re
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from proxy.datadir import atomic_write

AGENT_PREFIX = "ila_"
OPERATOR_PREFIX = "ilo_"
RESERVED_AGENT_NAMES = frozenset({"anonymous"})
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
FILE_VERSION = 1
STAT_INTERVAL = 1.0  # seconds between checks for changes made by another process
_KINDS = ("agents", "operators")
_STALE = (-1, -1, -1)


class TokenFileError(ValueError):
    """`tokens.json` cannot be read or has the wrong shape."""


@dataclass(frozen=True)
class Operator:
    """Who is calling the control API, and whether they may only look."""

    name: str
    read_only: bool


def new_token(prefix: str) -> str:
    return prefix + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """SHA-256 hex of the token.

    Tokens carry 32 random bytes, so a plain hash cannot be brute-forced: no salt or KDF needed.
    """
    return hashlib.sha256(token.encode()).hexdigest()


def check_name(name: str, kind: str) -> None:
    if not NAME_PATTERN.fullmatch(name):
        raise ValueError(
            f"invalid {kind} name {name!r}: use 1-64 letters, digits, '_', '.' or '-', "
            "starting with a letter or digit"
        )
    if kind == "agent" and name.lower() in RESERVED_AGENT_NAMES:
        raise ValueError(f"the agent name {name!r} is reserved for unauthenticated traffic")


class TokenStore:
    """Tokens in a JSON file, re-read when another process (the CLI) changes it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._data: dict[str, dict[str, dict[str, Any]]] = {kind: {} for kind in _KINDS}
        self._signature: tuple[int, int, int] | None = None
        self._checked = 0.0
        self._refresh(force=True)

    # Agents: proxy authentication `http://NAME:TOKEN@host:port`.

    def add_agent(self, name: str) -> str:
        """Create an agent and return its token; only its hash is stored."""
        check_name(name, "agent")
        return self._add("agents", name, new_token(AGENT_PREFIX), {})

    def remove_agent(self, name: str) -> bool:
        return self._remove("agents", name)

    def agents(self) -> list[dict[str, Any]]:
        self._refresh()
        return [
            {"name": name, "created": entry.get("created")}
            for name, entry in sorted(self._data["agents"].items())
        ]

    def verify_agent(self, name: str, token: str) -> bool:
        if self._verify_agent(name, token):
            return True
        # A miss may be a token the CLI added a moment ago: look at the file now, not in a second.
        return self._refresh(force=True) and self._verify_agent(name, token)

    # Operators: Bearer tokens for the control API.

    def add_operator(self, name: str, read_only: bool = False) -> str:
        """Create an operator and return its token; only its hash is stored."""
        check_name(name, "operator")
        return self._add("operators", name, new_token(OPERATOR_PREFIX), {"read_only": read_only})

    def revoke_operator(self, name: str) -> bool:
        return self._remove("operators", name)

    def operators(self) -> list[dict[str, Any]]:
        self._refresh()
        return [
            {
                "name": name,
                "read_only": bool(entry.get("read_only")),
                "created": entry.get("created"),
            }
            for name, entry in sorted(self._data["operators"].items())
        ]

    def verify_operator(self, token: str) -> Operator | None:
        found = self._verify_operator(token)
        if found is None and self._refresh(force=True):
            found = self._verify_operator(token)
        return found

    def ensure_first_operator(self, token_file: Path) -> tuple[str, Path] | None:
        """With no operator yet, create `admin` and write its token to `token_file` (0600)."""
        with self._locked():
            if self._data["operators"]:
                return None
            name = "admin"
            token = new_token(OPERATOR_PREFIX)
            # The token file first: if saving the store then fails, no one is locked out.
            atomic_write(token_file, (token + "\n").encode())
            self._data["operators"][name] = self._entry(token, {"read_only": False})
            self._save()
        return name, token_file

    # Internals.

    def _verify_agent(self, name: str, token: str) -> bool:
        self._refresh()
        entry = self._data["agents"].get(name)
        if entry is None or not token.startswith(AGENT_PREFIX):
            return False
        return hmac.compare_digest(hash_token(token), str(entry.get("sha256", "")))

    def _verify_operator(self, token: str) -> Operator | None:
        self._refresh()
        if not token.startswith(OPERATOR_PREFIX):
            return None
        digest = hash_token(token)
        found = None
        for name, entry in self._data["operators"].items():
            if hmac.compare_digest(digest, str(entry.get("sha256", ""))):
                found = Operator(name, bool(entry.get("read_only")))
        return found

    def _add(self, kind: str, name: str, token: str, extra: dict[str, Any]) -> str:
        with self._locked():
            if name in self._data[kind]:
                raise ValueError(f"{kind[:-1]} {name!r} already exists in {self.path}")
            self._data[kind][name] = self._entry(token, extra)
            self._save()
        return token

    def _remove(self, kind: str, name: str) -> bool:
        with self._locked():
            if self._data[kind].pop(name, None) is None:
                return False
            self._save()
        return True

    @staticmethod
    def _entry(token: str, extra: dict[str, Any]) -> dict[str, Any]:
        created = datetime.now(UTC).isoformat(timespec="seconds")
        return {"sha256": hash_token(token), "created": created, **extra}

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """Serialise read-modify-write across processes; the lock file survives `os.replace`."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock = self.path.with_name(self.path.name + ".lock")
        fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            self._refresh(force=True)
            yield
        except BaseException:
            self._signature = _STALE  # memory may differ from the file now: re-read next time
            raise
        finally:
            os.close(fd)

    def _save(self) -> None:
        document = {"version": FILE_VERSION, **self._data}
        atomic_write(self.path, (json.dumps(document, indent=2, sort_keys=True) + "\n").encode())
        self._signature = self._stat()

    def _stat(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def _refresh(self, force: bool = False) -> bool:
        """Re-read the file if it changed; at most one `stat` a second unless forced.

        Returns whether the contents were replaced.
        """
        now = time.monotonic()
        if not force and now - self._checked < STAT_INTERVAL:
            return False
        self._checked = now
        signature = self._stat()
        if signature == self._signature:
            return False
        self._data = self._load() if signature is not None else {kind: {} for kind in _KINDS}
        self._signature = signature
        return True

    def _load(self) -> dict[str, dict[str, dict[str, Any]]]:
        try:
            document = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {kind: {} for kind in _KINDS}
        except (OSError, ValueError) as exc:
            raise TokenFileError(f"{self.path}: cannot read tokens: {exc}") from exc
        if not isinstance(document, dict) or document.get("version") != FILE_VERSION:
            raise TokenFileError(f"{self.path}: expected a version {FILE_VERSION} tokens file")
        data: dict[str, dict[str, dict[str, Any]]] = {}
        for kind in _KINDS:
            section = document.get(kind, {})
            if not isinstance(section, dict) or not all(
                isinstance(entry, dict) and isinstance(entry.get("sha256"), str)
                for entry in section.values()
            ):
                raise TokenFileError(f"{self.path}: {kind!r} must map names to hashed tokens")
            data[kind] = section
        return data
