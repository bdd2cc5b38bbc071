"""The mitmproxy adapter of the gate: flows in, verdicts out, and every failure a refusal.

mitmproxy logs an addon's exception and lets the flow continue, so every hook here catches its
own errors and answers the agent with a refusal instead (fail closed).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass, field

from mitmproxy import connection, http, tcp, tls

from addons.destination import HOST, REFUSAL
from addons.identity import Identity
from policies.model import HostAction
from policies.normalize import normalize_host
from proxy.gate import (
    DECISION_HEADER,
    REQUEST_ID_HEADER,
    SHARED_RESPONSE_TIMEOUT,
    Gate,
    Incoming,
    Verdict,
    new_request_id,
)
from proxy.holds import Hold
from proxy.outcomes import Outcome
from proxy.records import AuditRecord, Kind

log = logging.getLogger(__name__)

STREAM_RESPONSES_OVER = 1024 * 1024  # larger downloads stream through, never size-limited


@dataclass
class _Connection:
    """What the gate knows about one client connection."""

    agent: str | None = None
    credentials: str | None = None  # the CONNECT's Proxy-Authorization, re-checked per request
    connect_host: str | None = None
    connect_port: int | None = None
    sni: str | None = None
    broken: str | None = None  # a reason to refuse everything on this connection
    failed: Exception | None = None  # a gate error on this connection: refuse everything, `error`
    tunnel: Hold | None = None  # the approved host-level hold of this connection's CONNECT
    gone: asyncio.Event = field(default_factory=asyncio.Event)


class GateAddon:
    def __init__(self, gate: Gate, identity: Identity) -> None:
        self.gate = gate
        self.identity = identity
        self.connections: dict[str, _Connection] = {}

    def _conn(self, client: connection.Client) -> _Connection:
        state = self.connections.get(client.id)
        if state is None:
            state = self.connections[client.id] = _Connection()
        return state

    # -- hooks --------------------------------------------------------------------------------

    async def http_connect(self, flow: http.HTTPFlow) -> None:
        try:
            await self._http_connect(flow)
        except Exception as exc:
            self._fail(flow, exc)

    async def _http_connect(self, flow: http.HTTPFlow) -> None:
        state = self._conn(flow.client_conn)
        request_id = new_request_id()
        flow.metadata["interlock_request_id"] = request_id
        credentials = flow.request.headers.get("Proxy-Authorization")
        agent, refusal = self.identity.resolve(credentials, None, _ip(flow.client_conn))
        if refusal is not None:
            self._respond(flow, await self.gate.record_refusal(self._incoming(flow), refusal))
            return
        state.agent, state.credentials = agent, credentials
        host = normalize_host(flow.request.host)
        state.connect_host, state.connect_port = host, flow.request.port
        verdict = await self.gate.check_connect(
            request_id, agent, _client(flow.client_conn), host, flow.request.port
        )
        if not verdict.forward:
            self._respond(flow, verdict)
        elif verdict.outcome is Outcome.APPROVED:
            state.tunnel = verdict.hold

    def tls_clienthello(self, data: tls.ClientHelloData) -> None:
        try:
            # Never pass TLS through undecrypted: the gate could not see what leaves.
            data.ignore_connection = False
            state = self._conn(data.context.client)
            sni = data.client_hello.sni
            if sni:
                state.sni = normalize_host(sni)
                if state.connect_host and state.sni != state.connect_host:
                    state.broken = (
                        f"TLS server name {state.sni!r} differs from the CONNECT "
                        f"target {state.connect_host!r} (domain fronting)"
                    )
        except Exception as exc:
            log.error("interlock: tls_clienthello failed, refusing the connection: %s", exc)
            self._conn(data.context.client).failed = exc

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        try:
            self._requestheaders(flow)
        except Exception as exc:
            self._fail(flow, exc)

    def _requestheaders(self, flow: http.HTTPFlow) -> None:
        request_id = new_request_id()
        metadata = flow.metadata
        metadata["interlock_request_id"] = request_id
        metadata["interlock_started"] = time.time()
        state = self._conn(flow.client_conn)
        headers = flow.request.headers
        credentials, length = _header_values(headers, (b"proxy-authorization", b"content-length"))
        agent, refusal = self.identity.resolve(
            credentials, state.credentials, _ip(flow.client_conn)
        )
        if credentials is not None:  # never forwarded upstream
            headers.fields = _without(headers.fields, (b"proxy-authorization",))
        metadata["interlock_agent"] = agent
        # A streamed body would reach the server before the decision; bodies are always read.
        flow.request.stream = False
        if refusal is None:
            refusal = self.gate.check_size(request_id, length)
        if refusal is not None:
            # Answered before the body is read; recorded without waiting, nothing leaves.
            refusal.request_id = request_id
            if refusal.body is not None:
                refusal.body["request_id"] = request_id
            self.gate.record_refusal_nowait(self._incoming(flow, with_body=False), refusal)
            self._respond(flow, refusal)

    async def request(self, flow: http.HTTPFlow) -> None:
        try:
            await self._request(flow)
        except Exception as exc:
            self._fail(flow, exc)

    async def _request(self, flow: http.HTTPFlow) -> None:
        if flow.response is not None:
            return  # answered at requestheaders (credentials, size)
        state = self._conn(flow.client_conn)
        incoming = self._incoming(flow)
        if state.failed is not None:
            failure = self.gate.failure(incoming.request_id, state.failed)
            self._respond(flow, await self.gate.record_refusal(incoming, failure))
            return
        fronting = state.broken or flow.metadata.get(REFUSAL) or self._fronting(flow, state)
        if fronting is not None:
            verdict = self.gate.answer(
                Outcome.DENIED, incoming.request_id, 403, "request_denied", None, fronting, "system"
            )
            self._respond(flow, await self.gate.record_refusal(incoming, verdict))
            return
        verdict = await self.gate.check_request(incoming, state.gone, state.tunnel)
        flow.metadata["interlock_verdict"] = verdict
        if not verdict.forward:
            self._respond(flow, verdict)
            return
        if verdict.follower and verdict.hold is not None:
            await self._copy_leader_response(flow, verdict)

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        try:
            assert flow.response is not None
            if flow.metadata.get("interlock_answered"):
                return  # the gate's own answer
            headers = flow.response.headers
            decision, request_id, length = _header_values(headers, _OWN_HEADERS)
            fields = headers.fields
            if decision is not None or request_id is not None:  # no upstream may forge them
                fields = _without(fields, _OWN_HEADERS[:2])
            verdict: Verdict | None = flow.metadata.get("interlock_verdict")
            leads_others = (
                verdict is not None and verdict.hold is not None and verdict.hold.joined > 0
            )
            if verdict is not None and verdict.forward:
                # Set here, not in `response`: a streamed body has its headers sent already.
                fields += (
                    (_DECISION_NAME, verdict.outcome.value.encode()),
                    (_REQUEST_ID_NAME, verdict.request_id.encode()),
                )
            headers.fields = fields
            large = length is None or not length.isdigit() or int(length) > STREAM_RESPONSES_OVER
            if large and not leads_others:
                flow.response.stream = True
        except Exception as exc:
            log.error("interlock: responseheaders failed: %s", exc)

    def response(self, flow: http.HTTPFlow) -> None:
        try:
            self._response(flow)
        except Exception as exc:
            log.error("interlock: response hook failed: %s", exc)

    def _response(self, flow: http.HTTPFlow) -> None:
        verdict: Verdict | None = flow.metadata.get("interlock_verdict")
        assert flow.response is not None
        if verdict is None or not verdict.forward:
            return  # our own refusal, already recorded
        hold = verdict.hold
        if hold is not None and not verdict.follower and not hold.shared_response.done():
            hold.shared_response.set_result(flow.response.copy())
        self._complete(flow, verdict, status=flow.response.status_code)

    def error(self, flow: http.HTTPFlow) -> None:
        try:
            verdict: Verdict | None = flow.metadata.get("interlock_verdict")
            if verdict is None or not verdict.forward:
                return
            hold = verdict.hold
            if hold is not None and not verdict.follower and not hold.shared_response.done():
                hold.shared_response.set_exception(RuntimeError(str(flow.error)))
                hold.shared_response.exception()  # mark retrieved: followers may be none
            self._complete(flow, verdict, status=None)
        except Exception as exc:
            log.error("interlock: error hook failed: %s", exc)

    def client_disconnected(self, client: connection.Client) -> None:
        state = self.connections.pop(client.id, None)
        if state is not None:
            state.gone.set()

    def tcp_start(self, flow: tcp.TCPFlow) -> None:
        """Raw TCP is decided at host level only, and only an explicit allow rule lets it pass."""
        try:
            state = self._conn(flow.client_conn)
            host, port = state.connect_host, state.connect_port
            if host is None and flow.server_conn.address is not None:
                host, port = flow.server_conn.address
            agent = state.agent or "anonymous"
            decision = self.gate.policy.policy.decide_host(str(host), int(port or 0), agent)
            if decision.action is HostAction.ALLOW and decision.rule is not None:
                return
            log.info("interlock: refusing raw TCP to %s:%s (%s)", host, port, decision.action)
        except Exception as exc:
            log.error("interlock: tcp_start failed, refusing: %s", exc)
        flow.kill()

    # -- helpers ------------------------------------------------------------------------------

    def _incoming(self, flow: http.HTTPFlow, *, with_body: bool = True) -> Incoming:
        request, metadata = flow.request, flow.metadata
        headers = tuple(request.headers.items(multi=True))
        types = [v for k, v in headers if len(k) == 12 and k.lower() == "content-type"]
        return Incoming(
            request_id=metadata.get("interlock_request_id") or new_request_id(),
            agent=metadata.get("interlock_agent") or "anonymous",
            client=_client(flow.client_conn),
            method=request.method,
            scheme=request.scheme,
            host=metadata.get(HOST) or normalize_host(request.host),
            port=request.port,
            target=request.path,
            headers=headers,
            body=(request.raw_content or b"") if with_body else b"",
            content_type=", ".join(types) if types else None,
        )

    def _fronting(self, flow: http.HTTPFlow, state: _Connection) -> str | None:
        if state.connect_host is None:
            return None
        host = normalize_host(flow.request.host)
        if host != state.connect_host or flow.request.port != state.connect_port:
            return (
                f"the request is addressed to {host!r} but its connection was opened to "
                f"{state.connect_host!r} (domain fronting)"
            )
        host_header = flow.request.host_header
        if host_header:
            named = _authority_host(host_header)
            if named != state.connect_host:
                return (
                    f"the Host header names {named!r} but the connection was opened to "
                    f"{state.connect_host!r} (domain fronting)"
                )
        if state.sni and state.sni != state.connect_host:
            return (
                f"TLS server name {state.sni!r} differs from {state.connect_host!r} "
                "(domain fronting)"
            )
        return None

    async def _copy_leader_response(self, flow: http.HTTPFlow, verdict: Verdict) -> None:
        assert verdict.hold is not None
        try:
            response = await asyncio.wait_for(
                asyncio.shield(verdict.hold.shared_response), SHARED_RESPONSE_TIMEOUT
            )
        except Exception as exc:
            body = {
                "error": "upstream_failed",
                "outcome": "approved",
                "request_id": verdict.request_id,
                "reason": f"the approved request failed upstream: {exc}",
                "hold_id": verdict.hold.id,
            }
            flow.response = http.Response.make(
                502, json.dumps(body), {"Content-Type": "application/json"}
            )
            return
        copy = response.copy()
        copy.headers[DECISION_HEADER] = verdict.outcome.value
        copy.headers[REQUEST_ID_HEADER] = verdict.request_id
        flow.response = copy
        flow.metadata["interlock_verdict"] = None  # answered from the leader's response
        flow.metadata["interlock_answered"] = True

    def _respond(self, flow: http.HTTPFlow, verdict: Verdict) -> None:
        headers = {"Content-Type": "application/json", **verdict.headers}
        assert verdict.status is not None and verdict.body is not None
        flow.response = http.Response.make(
            verdict.status, json.dumps(verdict.body, indent=1), headers
        )
        flow.metadata["interlock_answered"] = True

    def _fail(self, flow: http.HTTPFlow, exc: BaseException) -> None:
        log.error("interlock: gate hook failed, refusing the request: %r", exc)
        request_id = flow.metadata.get("interlock_request_id") or new_request_id()
        self._respond(flow, self.gate.failure(request_id, exc))

    def _complete(self, flow: http.HTTPFlow, verdict: Verdict, status: int | None) -> None:
        started = flow.metadata.get("interlock_started") or flow.request.timestamp_start
        size = None
        if flow.response is not None and not flow.response.stream:
            size = len(flow.response.raw_content or b"")
        elif flow.response is not None:
            length = flow.response.headers.get("content-length", "")
            size = int(length) if length.isdigit() else None
        self.gate.audit.append_nowait(
            AuditRecord(
                kind=Kind.COMPLETION,
                request_id=verdict.request_id,
                outcome=verdict.outcome.value,
                hold_id=verdict.hold.id if verdict.hold else None,
                status=status,
                response_size=size,
                duration_ms=int((time.time() - started) * 1000),
                reason=str(flow.error) if flow.error else None,
            )
        )


_OWN_HEADERS = (DECISION_HEADER.lower().encode(), REQUEST_ID_HEADER.lower().encode(),
                b"content-length")  # fmt: skip
_DECISION_NAME, _REQUEST_ID_NAME = DECISION_HEADER.encode(), REQUEST_ID_HEADER.encode()


def _header_values(headers: http.Headers, names: tuple[bytes, ...]) -> list[str | None]:
    """`headers.get(name)` for each of `names` (lower case), in one pass over the fields."""
    found: list[str | None] = [None] * len(names)
    for name, value in headers.fields:
        lower = name.lower()
        if lower in names:
            at = names.index(lower)
            text = value.decode("utf-8", "surrogateescape")
            previous = found[at]
            found[at] = text if previous is None else f"{previous}, {text}"  # folded, as `get`
    return found


def _without(
    fields: tuple[tuple[bytes, bytes], ...], names: tuple[bytes, ...]
) -> tuple[tuple[bytes, bytes], ...]:
    return tuple(field for field in fields if field[0].lower() not in names)


def _authority_host(authority: str) -> str:
    """The normalized host of a Host header (`name`, `name:port`, `[v6]:port`)."""
    host = authority.strip()
    if host.startswith("["):
        host = host[1 : host.find("]")] if "]" in host else host
    elif host.count(":") == 1:
        host = host.partition(":")[0]
    try:
        return normalize_host(host)
    except ValueError:
        return host


def _ip(client: connection.Client) -> str:
    return str(client.peername[0]) if client.peername else ""


def _client(client: connection.Client) -> str:
    if not client.peername:
        return ""
    host, port = client.peername[0], client.peername[1]
    return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
