"""Where a request really goes: names resolved the way the proxy will connect, and own addresses.

Policies match names, but the proxy connects to addresses. These checks keep the two honest: a
transparent-mode request must name a host that resolves to where it was sent, and no name may lead
the proxy back to its own control API or listen port.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Callable, Iterable

from policies.normalize import parse_ip

Endpoints = Callable[[], Iterable[tuple[str, int]]]


async def resolve(host: str, port: int) -> list[str]:
    """The addresses `host` resolves to here, in the resolver's order (an IP literal: itself).

    Empty when the name does not resolve: the connection would fail anyway.
    """
    literal = parse_ip(host)
    if literal is not None:
        return [str(literal)]
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return []
    found: list[str] = []
    for *_, address in infos:
        text = str(ipaddress.ip_address(str(address[0]).split("%", 1)[0]))
        if text not in found:
            found.append(text)
    return found


def is_local_address(address: str) -> bool:
    """Whether a connection to `address` would stay on this machine (this network namespace)."""
    ip = ipaddress.ip_address(address)
    if ip.is_loopback or ip.is_unspecified:
        return True
    family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as probe:
        try:
            probe.bind((address, 0))  # only the machine's own addresses can be bound
        except OSError:
            return False
    return True


async def names_address(name: str, address: str, port: int) -> bool:
    """Whether `name` (a host name or IP literal) resolves to `address` here."""
    want = ipaddress.ip_address(address)
    return any(ipaddress.ip_address(found) == want for found in await resolve(name, port))


class OwnEndpoints:
    """The proxy's own listen and control API addresses, which no request may reach through it."""

    def __init__(self, endpoints: Endpoints) -> None:
        self.endpoints = endpoints

    def ports(self) -> set[int]:
        return {port for _, port in self.endpoints()}

    def reason(self, host: str, port: int, addresses: Iterable[str]) -> str | None:
        """Why `host:port`, resolved to `addresses`, must not be connected to; None when it may."""
        if port not in self.ports():
            return None
        for address in addresses:
            if is_local_address(address):
                return (
                    f"{host}:{port} resolves to {address}, this proxy's own address: the gate "
                    "does not proxy requests to its own control API or listen addresses"
                )
        return None

    async def refusal(self, host: str, port: int) -> str | None:
        """`reason()` after resolving `host` the way the proxy would."""
        if port not in self.ports():
            return None
        return self.reason(host, port, await resolve(host, port))
