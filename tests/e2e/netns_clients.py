"""Clients inside the namespaces: raw probes, curl as the agent, the operator's API client.

Probes open their sockets inside a namespace (see `Netns.socket`), so they run in-process and
report the failure by name (ENETUNREACH, ECONNREFUSED, timed out) for the assertion messages.
"""

from __future__ import annotations

import errno
import json
import os
import secrets
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.e2e.netns import Netns
from tests.e2e.netns_lab import dns_query

# -- probes (sockets made inside a namespace) ---------------------------------------------------


def _failure(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, OSError) and exc.errno is not None:
        return errno.errorcode.get(exc.errno, str(exc))
    return repr(exc)


def _family(host: str) -> int:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def http_probe(ns: Netns, host: str, port: int, path: str, timeout: float = 1.5) -> str:
    """'HTTP <status>' for a plain GET sent straight to host:port from `ns`, else the error."""
    sock = ns.socket(_family(host), socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect((host, port))
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        answer = b""
        while chunk := sock.recv(65536):  # read to the end: the server closes after answering
            answer += chunk
        status = answer.split(b" ", 2)
        return f"HTTP {status[1].decode()}" if len(status) > 1 else "no answer"
    except OSError as exc:
        return _failure(exc)
    finally:
        sock.close()


def tcp_probe(ns: Netns, host: str, port: int, timeout: float = 1.5) -> str:
    sock = ns.socket(_family(host), socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect((host, port))
        return "connected"
    except OSError as exc:
        return _failure(exc)
    finally:
        sock.close()


def dns_probe(ns: Netns, server: str, name: str, timeout: float = 1.5) -> str:
    """'answered' when a DNS query for `name` to server:53 gets a reply, else the error."""
    sock = ns.socket(_family(server), socket.SOCK_DGRAM)
    sock.settimeout(timeout)
    try:
        sock.connect((server, 53))  # connected, so ICMP errors (refusals) are reported
        sock.send(dns_query(name))
        sock.recv(512)
        return "answered"
    except OSError as exc:
        return _failure(exc)
    finally:
        sock.close()


def unique(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


# -- clients -----------------------------------------------------------------------------------


@dataclass
class CurlResult:
    exit_code: int
    status: int
    headers: dict[str, str]
    body: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.body)


class Curl:
    """curl run inside a namespace, in the background until `result()`."""

    def __init__(self, ns: Netns, args: list[str], env: dict[str, str] | None = None) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="interlock-curl-")
        out = Path(self._dir.name)
        self._body, self._headers = out / "body", out / "headers"
        command = ns.exec_args(
            "curl", "-sS", "--max-time", "60", "-o", str(self._body), "-D", str(self._headers),
            "-w", "%{http_code}", *args,
        )  # fmt: skip
        base = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        self.proc = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=base | (env or {}),
        )  # fmt: skip

    def running(self) -> bool:
        return self.proc.poll() is None

    def result(self, timeout: float = 60) -> CurlResult:
        stdout, stderr = self.proc.communicate(timeout=timeout)
        headers: dict[str, str] = {}
        if self._headers.exists():  # the last block: a proxy's CONNECT answer comes first
            block = self._headers.read_text(errors="replace").strip().split("\r\n\r\n")[-1]
            for line in block.splitlines()[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        body = self._body.read_text(errors="replace") if self._body.exists() else ""
        self._dir.cleanup()
        status = int(stdout) if stdout.strip().isdigit() else 0
        return CurlResult(self.proc.returncode, status, headers, body, stderr)


def curl(ns: Netns, *args: str, env: dict[str, str] | None = None) -> CurlResult:
    return Curl(ns, list(args), env).result()


@dataclass
class OperatorClient:
    """The control API as the operator uses it, from the operator's namespace."""

    ns: Netns
    url: str
    token: str

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token}"}
        with self.ns.entered():
            return httpx.request(
                method, self.url + path, headers=headers, timeout=10, trust_env=False, **kwargs
            )

    def holds(self) -> list[dict[str, Any]]:
        found = self.request("GET", "/v1/holds").json()
        return list(found["holds"] if isinstance(found, dict) else found)

    def wait_for_hold(self, path: str, timeout: float = 20) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for hold in self.holds():
                if path in json.dumps(hold):
                    return hold
            time.sleep(0.05)
        raise AssertionError(f"no hold for {path} appeared within {timeout} s")
