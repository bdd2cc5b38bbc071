"""Linux network namespaces for the isolation tests: create, wire, run and open sockets inside.

Everything lives in namespaces this module creates (veth pairs are created inside them, never in
the host's namespace), so no test packet can leave the machine. `Lab.close()` removes it all.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import secrets
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CLONE_NEWNET = 0x40000000
NETNS_RUN = Path("/run/netns")
NETNS_ETC = Path("/etc/netns")  # `ip netns exec NAME` mounts /etc/netns/NAME/* over /etc/*


def unavailable() -> str | None:
    """Why namespaces cannot be used here, or None when they can."""
    if sys.platform != "linux":
        return "network namespaces need Linux"
    if os.geteuid() != 0:
        return "creating network namespaces needs root (run as root, as CI does)"
    if shutil.which("ip") is None:
        return "the `ip` command is missing (apt-get install iproute2)"
    name = f"il{secrets.token_hex(3)}-probe"
    made = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True)
    if made.returncode != 0:
        return f"`ip netns add` failed: {made.stderr.strip()}"
    subprocess.run(["ip", "netns", "delete", name], capture_output=True)
    return None


def nft_unavailable() -> str | None:
    if shutil.which("nft") is None:
        return "the `nft` command is missing (apt-get install nftables)"
    return None


def _libc_setns(fd: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"setns: {os.strerror(errno)}")


@dataclass(frozen=True)
class Netns:
    name: str

    def ip(self, *args: str) -> None:
        """`ip -n NAME ARGS`, raising with ip's message on failure."""
        _check(["ip", "-n", self.name, *args])

    def exec_args(self, *args: str) -> list[str]:
        return ["ip", "netns", "exec", self.name, *args]

    def run(
        self, *args: str, timeout: float = 30, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.exec_args(*args), capture_output=True, text=True, timeout=timeout, env=env
        )

    def sysctl(self, name: str, value: str) -> None:
        """Set a network sysctl of this namespace (no procps needed)."""
        path = "/proc/sys/" + name.replace(".", "/")
        _check(self.exec_args("sh", "-c", f"echo {value} > {path}"))

    @contextlib.contextmanager
    def entered(self) -> Iterator[None]:
        """The calling thread joins this namespace (network namespaces are per thread).

        Sockets made inside stay in it after the thread returns, so servers and probes created
        here can run in any thread.
        """
        own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        target = os.open(NETNS_RUN / self.name, os.O_RDONLY)
        try:
            _libc_setns(target)
            try:
                yield
            finally:
                _libc_setns(own)
        finally:
            os.close(target)
            os.close(own)

    def socket(self, family: int, kind: int) -> socket.socket:
        with self.entered():
            return socket.socket(family, kind)


@dataclass
class Lab:
    """The namespaces of one test run, named uniquely; `close()` removes them (idempotent)."""

    tag: str = field(default_factory=lambda: secrets.token_hex(3))
    spaces: list[Netns] = field(default_factory=list)

    def add(self, role: str) -> Netns:
        ns = Netns(f"il{self.tag}-{role}")
        _check(["ip", "netns", "add", ns.name])
        self.spaces.append(ns)
        ns.ip("link", "set", "lo", "up")
        return ns

    def link(
        self,
        a: Netns,
        a_if: str,
        a_addrs: Sequence[str],
        b: Netns,
        b_if: str,
        b_addrs: Sequence[str],
    ) -> None:
        """A veth pair between `a` and `b`, made inside `a` (never in the host's namespace)."""
        a.ip("link", "add", a_if, "type", "veth", "peer", "name", b_if, "netns", b.name)
        for ns, ifname, addrs in ((a, a_if, a_addrs), (b, b_if, b_addrs)):
            for addr in addrs:
                extra = ["nodad"] if ":" in addr else []  # no 1-2 s duplicate detection wait
                ns.ip("addr", "add", addr, "dev", ifname, *extra)
            ns.ip("link", "set", ifname, "up")

    def etc(self, ns: Netns, filename: str, text: str) -> None:
        """A file that programs run with `ip netns exec` see as /etc/FILENAME."""
        directory = NETNS_ETC / ns.name
        directory.mkdir(parents=True, exist_ok=True)
        (directory / filename).write_text(text)

    def close(self) -> None:
        for ns in reversed(self.spaces):
            subprocess.run(["ip", "netns", "delete", ns.name], capture_output=True)
            shutil.rmtree(NETNS_ETC / ns.name, ignore_errors=True)
        self.spaces.clear()
        with contextlib.suppress(OSError):
            NETNS_ETC.rmdir()  # only when empty: it may hold other namespaces' files


def _check(args: list[str], **kwargs: Any) -> None:
    done = subprocess.run(args, capture_output=True, text=True, **kwargs)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({done.returncode}): {done.stderr.strip()}")
