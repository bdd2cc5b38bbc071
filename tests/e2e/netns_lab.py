"""The sidecar topology in namespaces, its upstream services and a real `interlock run`.

    agent ──int0── proxy ──opr0── operator        proxy runs `interlock run` (via the image's
                     └────up0──── upstream        entrypoint); upstream serves HTTP, HTTPS, DNS

The agent's only neighbour is the proxy namespace (compose: the internal network). The control API
listens on the proxy's operator-side address and admits only that subnet (compose: the egress
network). The upstream routes everything back through the proxy namespace, as the internet would,
so only the proxy namespace's configuration keeps the agent from reaching it.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tests.e2e.netns import Lab, Netns
from tests.e2e.upstream import Upstream, start_upstream

REPO = Path(__file__).resolve().parents[2]
ENTRYPOINT = REPO / "docker" / "entrypoint.sh"
HEALTHCHECK = REPO / "docker" / "healthcheck.py"
BIN = Path(sys.executable).parent  # the venv's `interlock` script lives beside its python

# Private test addresses, used only inside the namespaces a Lab creates.
PROXY_INTERNAL, AGENT = "10.77.1.1", "10.77.1.2"
PROXY_INTERNAL6, AGENT6 = "fd00:77:1::1", "fd00:77:1::2"
PROXY_OPERATOR, OPERATOR = "10.77.2.1", "10.77.2.2"
OPERATOR_SUBNET = "10.77.2.0/24"
PROXY_UPSTREAM, UPSTREAM, DECOY = "10.77.3.1", "10.77.3.2", "10.77.3.3"
PROXY_UPSTREAM6, UPSTREAM6 = "fd00:77:3::1", "fd00:77:3::2"
PROXY_PORT, API_PORT = 8080, 8081
DIRECT_PORT = 8000  # a plain HTTP port on the upstream that nothing redirects
UPSTREAM_NAMES = ("upstream.test", "decoy.test", UPSTREAM, DECOY, UPSTREAM6)
# What the proxy namespace's resolver answers (compose: Docker's DNS and the internet's).
PROXY_HOSTS = f"""127.0.0.1 localhost
::1 localhost
{UPSTREAM} upstream.test
{UPSTREAM6} upstream.test
{DECOY} decoy.test
{PROXY_OPERATOR} interlock-api.test
"""


@dataclass
class Topology:
    lab: Lab
    agent: Netns
    proxy: Netns
    operator: Netns
    upstream: Netns


def build_topology(lab: Lab, *, agent_default_route: bool, forwarding: bool) -> Topology:
    agent, proxy, operator, upstream = (lab.add(r) for r in ("agent", "proxy", "opr", "up"))
    lab.link(
        proxy, "int0", [f"{PROXY_INTERNAL}/24", f"{PROXY_INTERNAL6}/64"],
        agent, "eth0", [f"{AGENT}/24", f"{AGENT6}/64"],
    )  # fmt: skip
    lab.link(proxy, "opr0", [f"{PROXY_OPERATOR}/24"], operator, "eth0", [f"{OPERATOR}/24"])
    lab.link(
        proxy, "up0", [f"{PROXY_UPSTREAM}/24", f"{PROXY_UPSTREAM6}/64"],
        upstream, "eth0", [f"{UPSTREAM}/24", f"{DECOY}/24", f"{UPSTREAM6}/64"],
    )  # fmt: skip
    upstream.ip("route", "add", "default", "via", PROXY_UPSTREAM)
    upstream.ip("-6", "route", "add", "default", "via", PROXY_UPSTREAM6)
    if agent_default_route:
        add_default_routes(agent)
    value = "1" if forwarding else "0"
    proxy.sysctl("net.ipv4.ip_forward", value)
    proxy.sysctl("net.ipv6.conf.all.forwarding", value)
    lab.etc(proxy, "hosts", PROXY_HOSTS)
    lab.etc(proxy, "resolv.conf", "nameserver 127.0.0.1\n")  # names outside hosts fail at once
    return Topology(lab, agent, proxy, operator, upstream)


def add_default_routes(agent: Netns) -> None:
    agent.ip("route", "add", "default", "via", PROXY_INTERNAL)
    agent.ip("-6", "route", "add", "default", "via", PROXY_INTERNAL6)


def remove_default_routes(agent: Netns) -> None:
    agent.ip("route", "del", "default")
    agent.ip("-6", "route", "del", "default")


# -- upstream services ----------------------------------------------------------------------


def dns_query(name: str) -> bytes:
    header = struct.pack("!HHHHHH", secrets.randbits(16), 0x0100, 1, 0, 0, 0)
    labels = b"".join(bytes([len(p)]) + p.encode() for p in name.split("."))
    return header + labels + b"\0" + struct.pack("!HH", 1, 1)  # type A, class IN


def _query_name(query: bytes) -> str:
    labels, at = [], 12
    while at < len(query) and query[at]:
        labels.append(query[at + 1 : at + 1 + query[at]].decode(errors="replace"))
        at += 1 + query[at]
    return ".".join(labels)


class DnsServer:
    """A UDP DNS responder on [::]:53 (dual stack) answering every A query with UPSTREAM."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        self.sock.bind(("::", 53))
        self.sock.settimeout(0.2)
        self.queries: list[tuple[str, str]] = []  # (client address, name)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="dns", daemon=True)
        self._thread.start()

    def names(self) -> list[str]:
        return [name for _, name in self.queries]

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                query, client = self.sock.recvfrom(512)
            except TimeoutError:
                continue
            except OSError:
                return
            self.queries.append((client[0], _query_name(query)))
            question_end = query.index(b"\0", 12) + 5
            answer = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 60, 4) + socket.inet_aton(UPSTREAM)
            header = query[:2] + struct.pack("!HHHHH", 0x8180, 1, 1, 0, 0)
            self.sock.sendto(header + query[12:question_end] + answer, client)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


@dataclass
class Services:
    """What listens in the upstream namespace, each recording what reached it."""

    http: Upstream  # :80
    https: Upstream  # :443
    direct: Upstream  # :8000
    dns: DnsServer
    stops: list[Callable[[], None]] = field(default_factory=list)

    def paths(self) -> list[str]:
        return self.http.paths() + self.https.paths() + self.direct.paths()

    def stop(self) -> None:
        for stop in self.stops:
            stop()
        self.dns.stop()


def start_services(upstream: Netns, cert: Path, key: Path) -> Services:
    stops: list[Callable[[], None]] = []
    with upstream.entered():  # listening sockets, and their threads, in the upstream namespace
        http, stop = start_upstream(None, None, host="::", port=80)
        stops.append(stop)
        https, stop = start_upstream(cert, key, host="::", port=443)
        stops.append(stop)
        direct, stop = start_upstream(None, None, host="::", port=DIRECT_PORT)
        stops.append(stop)
        dns = DnsServer()
    return Services(http, https, direct, dns, stops)


# -- Interlock -----------------------------------------------------------------------------------


@dataclass
class InterlockProcess:
    """`interlock run` started the way the image starts it: docker/entrypoint.sh, then exec."""

    ns: Netns
    home: Path
    ca_export: Path
    args: list[str]
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def env(self) -> dict[str, str]:
        return os.environ | {
            "PATH": f"{BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}",
            "INTERLOCK_HOME": str(self.home),
            "INTERLOCK_CA_EXPORT": str(self.ca_export),
        }

    @property
    def ca_cert(self) -> Path:
        return self.ca_export / "interlock-ca.pem"

    @property
    def operator_token(self) -> str:
        return (self.home / "operator.token").read_text().strip()

    def start(self, timeout: float = 40) -> None:
        self.ca_export.mkdir(parents=True, exist_ok=True)
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                self.ns.exec_args("sh", str(ENTRYPOINT), *self.args),
                stdout=log, stderr=subprocess.STDOUT, env=self.env,
            )  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"interlock exited {self.proc.returncode}:\n{self.output()}")
            if (self.home / "api.json").exists() and self.ca_cert.exists():
                return
            time.sleep(0.05)
        raise RuntimeError(f"interlock did not start within {timeout} s:\n{self.output()}")

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(5)


def add_agent(home: Path, name: str) -> str:
    done = subprocess.run(
        [str(BIN / "interlock"), "agents", "add", name, "--data-dir", str(home), "--json"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return str(json.loads(done.stdout)["token"])
