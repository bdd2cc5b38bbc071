"""Where each request really goes, checked before the gate decides and again before connecting.

In transparent mode the proxy connects to the address the agent sent its packets to, whatever the
Host header or TLS server name say; the policy may only trust such a name when it resolves to that
address. In every mode, no name may lead the proxy back into its own control API or listen port.
The findings go to `GateAddon` through flow metadata: it records and answers every refusal.
"""

from __future__ import annotations

import logging

from mitmproxy import http
from mitmproxy.net.http.url import parse_authority
from mitmproxy.proxy import server_hooks

from policies.normalize import normalize_host, parse_ip
from proxy.destination import OwnEndpoints, names_address, resolve

log = logging.getLogger(__name__)

REFUSAL = "interlock_destination_refusal"  # why the request must be refused (GateAddon records it)
HOST = "interlock_destination_host"  # the verified name the policy decides on
# Modes whose destination comes from the request itself (or the configuration), not the packets.
_REQUEST_ROUTED = frozenset({"regular", "upstream", "reverse"})


class Destination:
    def __init__(self, own: OwnEndpoints) -> None:
        self.own = own

    async def request(self, flow: http.HTTPFlow) -> None:
        try:
            if flow.response is None:
                await self._request(flow)
        except Exception as exc:  # fail closed: the gate refuses what could not be checked
            log.error("interlock: destination check failed, refusing: %r", exc)
            flow.metadata[REFUSAL] = f"gate error while checking the destination: {exc}"

    async def _request(self, flow: http.HTTPFlow) -> None:
        host, port = flow.request.host, flow.request.port
        if flow.client_conn.proxy_mode.type_name not in _REQUEST_ROUTED:
            reason, name = await self._named_destination(flow)
            if reason is not None:
                flow.metadata[REFUSAL] = reason
                return
            if name is not None:
                flow.metadata[HOST] = host = name
        reason = await self.own.refusal(host, port)
        if reason is not None:
            flow.metadata[REFUSAL] = reason

    async def _named_destination(self, flow: http.HTTPFlow) -> tuple[str | None, str | None]:
        """(refusal reason, None), or (None, the name to decide on; None: decide on the address)."""
        request = flow.request
        sni = normalize_host(flow.client_conn.sni) if flow.client_conn.sni else None
        header = request.host_header
        named = normalize_host(parse_authority(header, check=False)[0]) if header else None
        if sni is not None and named is not None and sni != named:
            return (
                f"the TLS server name {sni!r} differs from the Host header {named!r} "
                "(domain fronting)",
                None,
            )
        name = sni or named
        if name is None:
            return None, None
        destination = normalize_host(request.host)
        if parse_ip(destination) is None:  # e.g. SOCKS5 with a name: it must be the same name
            matches = name == destination
        else:
            matches = await names_address(name, destination, request.port)
        if not matches:
            return (
                f"the request names {name!r} but was sent to {destination}, "
                f"which is not where {name!r} resolves",
                None,
            )
        return None, name

    async def server_connect(self, data: server_hooks.ServerConnectionHookData) -> None:
        """Connect only where the check above looked: refuse own addresses, pin the answer."""
        server = data.server
        try:
            if server.address is None or server.via is not None:
                return
            host, port = str(server.address[0]), int(server.address[1])
            if port not in self.own.ports():
                return
            addresses = await resolve(host, port)
            reason = self.own.reason(host, port, addresses)
            if reason is not None:
                server.error = reason
            elif addresses:  # a second lookup by mitmproxy could answer differently (rebinding)
                server.address = (addresses[0], port)
        except Exception as exc:
            log.error("interlock: destination check failed, refusing the connection: %r", exc)
            server.error = f"gate error while checking the destination: {exc}"
