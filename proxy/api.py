"""The control API: operators list and decide holds, follow events, read the audit log."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from ipaddress import IPv4Network, IPv6Address, IPv6Network, ip_address
from typing import Any, Protocol

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from policies.durations import parse_duration
from proxy.apidoc import ROUTES, openapi_document
from proxy.apistream import EventStream
from proxy.audit import MAX_QUERY_LIMIT, AuditError
from proxy.channels.base import channel_label
from proxy.channels.links import LinkSigner, check_audience, manual_channel
from proxy.events import EventBus
from proxy.grants import GrantError, GrantRequest, GrantStore, check_grantable, grant_record
from proxy.holds import Hold, HoldAlreadyDecided, HoldError, HoldQueue
from proxy.lockdown import Lockdown
from proxy.outcomes import Outcome, person
from proxy.records import AuditRecord, Kind

log = logging.getLogger(__name__)

CHANNEL_HEADER = "X-Interlock-Channel"
CHANNELS = frozenset({"cli", "tui"})  # anything else a client claims is recorded as "api"
MAX_LIMIT = MAX_QUERY_LIMIT
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
OPERATOR_KEY = "interlock.operator"


class Operator(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def read_only(self) -> bool: ...


class OperatorTokens(Protocol):
    def verify_operator(self, token: str) -> Operator | None: ...


class AuditReader(Protocol):
    @property
    def healthy(self) -> bool: ...

    async def query(
        self,
        *,
        since: float | None = None,
        until: float | None = None,
        agent: str | None = None,
        host: str | None = None,
        outcome: str | None = None,
        rule: str | None = None,
        kind: str = "request",
        limit: int = 100,
        before_seq: int | None = None,
    ) -> list[dict[str, Any]]: ...

    async def trail(self, request_id: str) -> list[dict[str, Any]]: ...

    async def stats_for_rule(self, rule: str) -> dict[str, Any]: ...

    async def append(self, record: AuditRecord) -> int: ...


def _installed_version() -> str:
    try:
        return package_version("interlock")
    except PackageNotFoundError:
        return "unknown"


@dataclass(frozen=True, slots=True, kw_only=True)
class ApiSettings:
    allow: tuple[IPv4Network | IPv6Network, ...] = ()  # client networks allowed; empty: any
    version: str = field(default_factory=_installed_version)
    keepalive: float = 15.0  # seconds between SSE comment lines on a quiet stream
    shutdown: asyncio.Event | None = None  # once set, event streams end; else app.state.shutdown


def error(status: int, code: str, detail: str, **extra: Any) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse({"error": code, "detail": detail, **extra}, status, headers=headers)


class ClientGate:
    """ASGI middleware: refuse clients outside `allow`, then require an operator's Bearer token."""

    def __init__(
        self, app: ASGIApp, tokens: OperatorTokens, allow: tuple[IPv4Network | IPv6Network, ...]
    ) -> None:
        self.app, self.tokens, self.allow = app, tokens, allow

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        refusal = self._refusal(scope)
        if refusal is not None:
            return await refusal(scope, receive, send)
        await self.app(scope, receive, send)

    def _refusal(self, scope: Scope) -> Response | None:
        client = scope.get("client")
        if self.allow and not _client_allowed(client, self.allow):
            who = client[0] if client else "an unknown address"
            return error(403, "forbidden", f"client {who} is not in the control API's allow list")
        if scope["path"] == "/healthz" and scope["method"] in READ_METHODS:
            return None
        headers = dict(scope["headers"])
        scheme, _, token = headers.get(b"authorization", b"").decode("latin-1").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return error(401, "unauthorized", "send an operator token: Authorization: Bearer TOKEN")
        operator = self.tokens.verify_operator(token.strip())
        if operator is None:
            return error(401, "unauthorized", "the operator token is not valid (revoked?)")
        if operator.read_only and scope["method"] not in READ_METHODS:
            return error(403, "read_only", f"operator {operator.name!r} may only read")
        scope[OPERATOR_KEY] = operator
        return None


def _client_allowed(
    client: tuple[str, int] | None, allow: tuple[IPv4Network | IPv6Network, ...]
) -> bool:
    if not client:
        return False
    try:
        address = ip_address(client[0].split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in network for network in allow)


async def _json_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError as exc:
        raise HTTPException(400, f"the request body is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise HTTPException(400, "the request body must be a JSON object")
    return body


def _optional_str(body: Mapping[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is not None and not isinstance(value, str):
        raise HTTPException(400, f"{key!r} must be a string")
    return value


def _time_param(request: Request, name: str) -> float | None:
    text = request.query_params.get(name)
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        pass
    try:
        return time.time() - parse_duration(text)
    except ValueError:
        raise HTTPException(
            400, f"{name}={text!r}: expected epoch seconds or a duration ago like 2h"
        ) from None


def _int_param(request: Request, name: str, default: int | None, low: int, high: int) -> int | None:
    text = request.query_params.get(name)
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        raise HTTPException(400, f"{name}={text!r}: expected a whole number") from None
    if not low <= value <= high:
        raise HTTPException(400, f"{name}={value}: must be between {low} and {high}")
    return value


class Handlers:
    """The route endpoints, sharing the core objects they read and change."""

    def __init__(
        self,
        holds: HoldQueue,
        lockdown: Lockdown,
        events: EventBus,
        audit: AuditReader,
        reload_policy: Callable[[], Awaitable[dict[str, Any]]],
        settings: ApiSettings,
        shutdown: asyncio.Event,
        grants: GrantStore | None = None,
        links: LinkSigner | None = None,
    ) -> None:
        self.holds, self.lockdown, self.events, self.audit = holds, lockdown, events, audit
        self.grants, self.links = grants, links
        self.reload_policy, self.settings, self.shutdown = reload_policy, settings, shutdown
        # Event ids on the wire: the bus's id plus the start time in microseconds, so an id kept
        # across a proxy restart is older than anything this process sent and gets `resync`.
        self.event_id_base = int(time.time() * 1_000_000)

    @staticmethod
    def _who(request: Request) -> tuple[str, str]:
        operator: Operator = request.scope[OPERATOR_KEY]
        claimed = request.headers.get(CHANNEL_HEADER, "").strip().lower()
        return person(operator.name), claimed if claimed in CHANNELS else "api"

    async def healthz(self, request: Request) -> Response:
        healthy = bool(self.audit.healthy)
        body = {"ok": healthy, "audit": healthy, "lockdown": self.lockdown.on}
        return JSONResponse(body, 200 if healthy else 503)

    async def openapi(self, request: Request) -> Response:
        return JSONResponse(openapi_document(self.settings.version))

    async def list_holds(self, request: Request) -> Response:
        return JSONResponse({"holds": [hold.to_json() for hold in self.holds.pending()]})

    async def get_hold(self, request: Request) -> Response:
        hold_id = request.path_params["hold_id"]
        hold = self.holds.get(hold_id)
        if hold is None:
            return error(404, "not_found", f"no hold {hold_id!r}")
        return JSONResponse(hold.to_json())

    async def approve(self, request: Request) -> Response:
        return await self._decide(request, approve=True)

    async def deny(self, request: Request) -> Response:
        return await self._decide(request, approve=False)

    async def _decide(self, request: Request, *, approve: bool) -> Response:
        hold_id = request.path_params["hold_id"]
        body = await _json_body(request)
        reason = _optional_str(body, "reason")
        if not approve and not (reason and reason.strip()):
            return error(400, "reason_required", "a denial needs a reason, so the agent can adapt")
        by, channel = self._who(request)
        choice = None
        if approve and body.get("grant") is not None:
            current = self.holds.get(hold_id)
            try:
                choice = GrantRequest.from_json(body["grant"])
                if current is not None:
                    check_grantable(choice, current.rule, current.severity,
                                    current.settings.approvals, self.grants)  # fmt: skip
            except GrantError as exc:
                return error(400, "invalid_grant", str(exc))
        try:
            hold = await self.holds.decide(
                hold_id, approve=approve, by=by, channel=channel, reason=reason
            )
        except HoldAlreadyDecided as exc:
            current = self.holds.get(hold_id)
            facts = {"state": None, "decided_by": None, "channel": None}
            if current is not None:
                facts = {k: current.to_json()[k] for k in facts}
            return error(exc.status, "already_decided", str(exc), **facts)
        except HoldError as exc:
            code = {404: "not_found", 422: "already_voted"}.get(exc.status, "invalid_decision")
            return error(exc.status, code, str(exc))
        if hold.pending:
            needed = hold.settings.approvals
            body = {"votes": len(hold.votes), "needed": needed, "hold": hold.to_json()}
            return JSONResponse(body, 202)
        if hold.state is Outcome.ERROR:
            return error(503, "not_recorded", hold.decision_reason or "", hold=hold.to_json())
        answer = hold.to_json()
        if choice is not None and hold.state is Outcome.APPROVED:
            answer["grant"] = await self._create_grant(choice, hold, by, channel)
        return JSONResponse(answer)

    async def create_link(self, request: Request) -> Response:
        """Signed links for deciding one pending hold elsewhere, e.g. sent to a phone by hand."""
        hold_id = request.path_params["hold_id"]
        if self.links is None or not self.links.public_url:
            detail = ("signed links need the public listener: start the proxy with "
                      "--public-listen HOST:PORT (and --public-url URL)")  # fmt: skip
            return error(409, "no_public_url", detail)
        audience = (await _json_body(request)).get("for")
        if not isinstance(audience, str):
            return error(400, "bad_request", 'send {"for": NAME}: who decides through the link')
        try:
            check_audience(audience)
        except ValueError as exc:
            return error(400, "bad_request", str(exc))
        hold = self.holds.get(hold_id)
        if hold is None or not hold.announced:
            return error(404, "not_found", f"no hold {hold_id!r}")
        if not hold.pending:
            facts = {k: hold.to_json()[k] for k in ("state", "decided_by", "channel")}
            return error(409, "already_decided", f"hold {hold_id} was already decided", **facts)
        by, _ = self._who(request)
        maker: Operator = request.scope[OPERATOR_KEY]
        links = self.links.mint(hold.id, audience=audience, channel=manual_channel(maker.name),
                                expires_at=hold.deadline)  # fmt: skip
        r = hold.request
        await self.audit.append(
            AuditRecord(kind=Kind.LINK, request_id=r.request_id, agent=r.agent, method=r.method,
                        host=r.host, path=r.path, rule=hold.rule, decided_by=by,
                        channel=channel_label("link", manual_channel(maker.name)),
                        reason=f"signed link for {audience}", hold_id=hold.id,
                        detail={"audience": audience, "expires_at": math.floor(hold.deadline)})
        )  # fmt: skip
        log.info("hold %s: %s made a signed link for %s", hold.id, by, audience)
        answer = {"review": links.review, "approve": links.approve, "deny": links.deny}
        return JSONResponse(answer | {"expires_at": math.floor(hold.deadline)})

    async def _create_grant(
        self, choice: GrantRequest, hold: Hold, by: str, channel: str
    ) -> dict[str, Any]:
        assert self.grants is not None
        r = hold.request
        grant = self.grants.create(
            choice, rule=hold.rule, severity=hold.severity, approvals=hold.settings.approvals,
            agent=r.agent, method=r.method, scheme=r.scheme, host=r.host, port=r.port,
            path=r.path, key=hold.exact_key, created_by=by, hold_id=hold.id,
        )  # fmt: skip
        await self.audit.append(grant_record(grant, "created", by, channel))
        self.events.publish("grant.created", grant.to_json())
        return grant.to_json()

    async def list_grants(self, request: Request) -> Response:
        grants = self.grants.active() if self.grants is not None else []
        return JSONResponse({"grants": [g.to_json() for g in grants]})

    async def revoke_grant(self, request: Request) -> Response:
        grant_id = request.path_params["grant_id"]
        by, channel = self._who(request)
        if self.grants is None:
            return error(404, "not_found", f"no active grant {grant_id!r}")
        try:
            grant = self.grants.revoke(grant_id, by)
        except KeyError:
            return error(404, "not_found", f"no active grant {grant_id!r}")
        await self.audit.append(grant_record(grant, "revoked", by, channel))
        self.events.publish("grant.revoked", grant.to_json())
        return JSONResponse(grant.to_json())

    async def stream_events(self, request: Request) -> Response | EventStream:
        text = request.headers.get("last-event-id") or request.query_params.get("last_event_id")
        last_id = None
        if text:
            try:
                last_id = int(text)
            except ValueError:
                return error(400, "bad_request", f"Last-Event-ID {text!r} is not an event id")
        return EventStream(
            self.events, last_id, self.shutdown, self.settings.keepalive, self.event_id_base
        )

    async def list_requests(self, request: Request) -> Response:
        limit = _int_param(request, "limit", 100, 1, MAX_LIMIT)
        assert limit is not None
        rows = await self.audit.query(
            since=_time_param(request, "since"),
            until=_time_param(request, "until"),
            agent=request.query_params.get("agent") or None,
            host=request.query_params.get("host") or None,
            outcome=request.query_params.get("outcome") or None,
            rule=request.query_params.get("rule") or None,
            limit=min(limit + 1, MAX_LIMIT),  # one more row tells whether another page exists
            before_seq=_int_param(request, "before", None, 0, 2**63 - 1),
        )
        page = rows[:limit]
        more = len(rows) > limit or len(page) == MAX_LIMIT
        next_seq = page[-1]["seq"] if page and more else None
        return JSONResponse({"requests": page, "next": next_seq})

    async def request_trail(self, request: Request) -> Response:
        request_id = request.path_params["request_id"]
        trail = await self.audit.trail(request_id)
        if not trail:
            return error(404, "not_found", f"no audit records for request {request_id!r}")
        return JSONResponse({"request_id": request_id, "trail": trail})

    async def rule_stats(self, request: Request) -> Response:
        return JSONResponse(await self.audit.stats_for_rule(request.path_params["rule"]))

    async def reload(self, request: Request) -> Response:
        result = await self.reload_policy()
        if result.get("ok"):
            return JSONResponse(result)
        errors = result.get("errors", [])
        detail = f"the policy has {len(errors)} error(s); the running policy is unchanged"
        return JSONResponse(result | {"error": "invalid_policy", "detail": detail}, 422)

    async def get_lockdown(self, request: Request) -> Response:
        return JSONResponse(self.lockdown.to_json())

    async def set_lockdown(self, request: Request) -> Response:
        body = await _json_body(request)
        on = body.get("on")
        if not isinstance(on, bool):
            return error(400, "bad_request", 'send {"on": true} or {"on": false}')
        by, channel = self._who(request)
        await self.lockdown.set(on, by, channel, _optional_str(body, "reason"))
        return JSONResponse(self.lockdown.to_json())


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = {400: "bad_request", 404: "not_found", 405: "method_not_allowed"}.get(
        exc.status_code, "error"
    )
    return error(exc.status_code, code, str(exc.detail))


async def _audit_error(request: Request, exc: Exception) -> Response:
    return error(503, "audit_unavailable", str(exc))


async def _server_error(request: Request, exc: Exception) -> Response:
    return error(500, "internal", f"{type(exc).__name__}: {exc}")


def create_app(
    *,
    holds: HoldQueue,
    lockdown: Lockdown,
    events: EventBus,
    audit: AuditReader,
    tokens: OperatorTokens,
    reload_policy: Callable[[], Awaitable[dict[str, Any]]],
    settings: ApiSettings,
    grants: GrantStore | None = None,
    links: LinkSigner | None = None,
) -> Starlette:
    """The control API. Setting `app.state.shutdown` (`settings.shutdown`) ends event streams.

    `links` signs links to the public listener; without it (or its URL) minting one is 409.
    """
    shutdown = settings.shutdown or asyncio.Event()
    handlers = Handlers(
        holds, lockdown, events, audit, reload_policy, settings, shutdown, grants, links
    )
    routes = [
        # Rule names are namespaced with '/' (github/merge): the rule segment takes slashes.
        Route(path.replace("{rule}", "{rule:path}"), getattr(handlers, name), methods=[method])
        for method, path, name, *_ in ROUTES
    ]
    app = Starlette(
        routes=routes,
        middleware=[Middleware(ClientGate, tokens=tokens, allow=settings.allow)],
        exception_handlers={
            HTTPException: _http_error,
            AuditError: _audit_error,
            Exception: _server_error,
        },
    )
    app.state.shutdown = shutdown
    app.state.event_id_base = handlers.event_id_base
    return app
