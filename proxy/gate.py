"""The gate's core: decide one request, record the decision, hold it if needed, answer the agent.

No mitmproxy here: `addons/gate.py` turns flows into `Incoming` requests and applies `Verdict`s.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import logging
import secrets
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TextIO

from policies.engine import Policy
from policies.model import Action, Decision, HostAction
from policies.request import make_request
from proxy.audit import AuditStore
from proxy.decisionlog import DecisionLog
from proxy.events import EventBus
from proxy.grants import GrantStore, exact_key
from proxy.holds import HeldRequest, Hold, HoldError, HoldQueue
from proxy.lockdown import Lockdown
from proxy.outcomes import POLICY, SYSTEM, Outcome
from proxy.records import AuditRecord, Kind
from proxy.redact import Redactor

log = logging.getLogger(__name__)

DECISION_HEADER = "X-Interlock-Decision"
REQUEST_ID_HEADER = "X-Interlock-Request-Id"
DEFAULT_MAX_BODY = 10 * 1024 * 1024
SHARED_RESPONSE_TIMEOUT = 300.0


_ID_PREFIX = secrets.token_hex(4)
_ID_COUNTER = itertools.count(1)


def new_request_id() -> str:
    """Unique per process run and cheap: a random prefix per start, then a counter (no syscall
    per request; ids need to be unique, not secret)."""
    return f"r_{_ID_PREFIX}{next(_ID_COUNTER):08x}"


@dataclass(frozen=True, slots=True)
class Incoming:
    """One request as the proxy received it, before any decision."""

    request_id: str
    agent: str
    client: str
    method: str
    scheme: str
    host: str
    port: int
    target: str  # path with query, as sent
    headers: tuple[tuple[str, str], ...]
    body: bytes  # as sent, still content-encoded
    content_type: str | None = None
    # SHA-256 of `body`, once: the audit row, the hold key and the grant key all use it, and a
    # body may be megabytes.
    body_digest: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "body_digest", hashlib.sha256(self.body).digest())


@dataclass
class Verdict:
    """What to do with a request: forward it, or answer with `status` and a JSON `body`."""

    outcome: Outcome
    request_id: str
    status: int | None = None
    body: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    hold: Hold | None = None
    follower: bool = False  # a coalesced request: copy the leader's response, do not forward
    grant_id: str | None = None
    granted_by: str | None = None

    @property
    def forward(self) -> bool:
        return self.status is None


@dataclass
class PolicyHolder:
    """The policy in force; reload swaps it atomically (one attribute assignment)."""

    policy: Policy
    source: str


class Gate:
    def __init__(
        self,
        policy: PolicyHolder,
        holds: HoldQueue,
        lockdown: Lockdown,
        audit: AuditStore,
        redactor: Redactor,
        *,
        grants: GrantStore | None = None,
        max_body: int = DEFAULT_MAX_BODY,
        protected: Callable[[str, int], bool] = lambda host, port: False,
        decision_log: TextIO | None = None,
        clock: Callable[[], float] = time.time,
        events: EventBus | None = None,
    ) -> None:
        self.policy = policy
        self.holds = holds
        self.lockdown = lockdown
        self.audit = audit
        self.redactor = redactor
        self.grants = grants
        self.max_body = max_body
        self.protected = protected
        # One line per answer, flushed in bursts; `decision_log.flush()` at shutdown.
        self.decision_log = DecisionLog(decision_log if decision_log is not None else sys.stdout)
        self.clock = clock
        self.events = events  # each answered request is published as `request.decided`

    # -- host level (CONNECT) -----------------------------------------------------------------

    async def check_connect(
        self, request_id: str, agent: str, client: str, host: str, port: int
    ) -> Verdict:
        """Refuse or hold a CONNECT before any TLS, when a host-level rule says so."""
        try:
            return await self._check_connect(request_id, agent, client, host, port)
        except Exception as exc:
            log.exception("gate failure on CONNECT %s", request_id)
            verdict = self.failure(request_id, exc)
            connect = Incoming(
                request_id, agent, client, "CONNECT", "https", host, port, "/", (), b""
            )
            self._log_line(connect, verdict)
            return verdict

    async def _check_connect(
        self, request_id: str, agent: str, client: str, host: str, port: int
    ) -> Verdict:
        incoming = Incoming(request_id, agent, client, "CONNECT", "https", host, port, "/", (), b"")
        early = self._early_refusal(incoming)
        if early is not None:
            return await self._refuse(incoming, *early)
        decision = self.policy.policy.decide_host(host, port, agent)
        if decision.action is HostAction.DENY:
            plain = Decision(Action.DENY, decision.rule, decision.reason, decision.severity)
            return await self._refuse(incoming, Outcome.DENIED, plain, POLICY, "request_denied")
        if decision.action is HostAction.HOLD and decision.rule is not None:
            plain = Decision(
                Action.HOLD, decision.rule, decision.reason, decision.severity, decision.hold
            )
            return await self._hold(incoming, plain, None, None)
        return Verdict(Outcome.ALLOWED, request_id)

    # -- request level ------------------------------------------------------------------------

    def check_size(self, request_id: str, content_length: str | None) -> Verdict | None:
        """At `requestheaders`: a declared body over the limit is refused before it is read."""
        if content_length is None:
            return None
        try:
            size = int(content_length)
        except ValueError:
            return self.answer(
                Outcome.DENIED,
                request_id,
                400,
                "malformed_request",
                None,
                "the Content-Length header is not a number",
                SYSTEM,
            )
        if size > self.max_body:
            return self.too_large(request_id, size)
        return None

    def too_large(self, request_id: str, size: int | None) -> Verdict:
        shown = f"{size} bytes" if size is not None else "the body"
        return self.answer(
            Outcome.DENIED,
            request_id,
            413,
            "body_too_large",
            None,
            f"{shown} is over the gate's request body limit of {self.max_body} bytes",
            SYSTEM,
        )

    async def record_refusal(self, incoming: Incoming, verdict: Verdict) -> Verdict:
        """Record a refusal decided before the policy ran (size, auth, fronting)."""
        try:
            await self.audit.append(self._record(incoming, verdict, None, None))
        except Exception as exc:
            log.error("could not record refusal of %s: %s", incoming.request_id, exc)
        self._log_line(incoming, verdict)
        return verdict

    def record_refusal_nowait(self, incoming: Incoming, verdict: Verdict) -> None:
        """Record a refusal answered from a synchronous hook; nothing is forwarded, so no wait."""
        try:
            self.audit.append_nowait(self._record(incoming, verdict, None, None))
        except Exception as exc:
            log.error("could not record refusal of %s: %s", incoming.request_id, exc)
        self._log_line(incoming, verdict)

    async def check_request(
        self, incoming: Incoming, gone: asyncio.Event | None = None, tunnel: Hold | None = None
    ) -> Verdict:
        """The whole decision for one request; never raises (fail closed).

        `tunnel` is the approved host-level hold of the CONNECT the request came through, if any.
        """
        try:
            return await self._check_request(incoming, gone, tunnel)
        except Exception as exc:
            log.exception("gate failure on %s", incoming.request_id)
            verdict = self.failure(incoming.request_id, exc)
            self._log_line(incoming, verdict)
            return verdict

    async def _check_request(
        self, incoming: Incoming, gone: asyncio.Event | None, tunnel: Hold | None
    ) -> Verdict:
        early = self._early_refusal(incoming)
        if early is not None:
            return await self._refuse(incoming, *early)
        if len(incoming.body) > self.max_body:
            return await self.record_refusal(
                incoming, self.too_large(incoming.request_id, len(incoming.body))
            )
        view = make_request(
            incoming.method,
            incoming.scheme,
            incoming.host,
            incoming.port,
            incoming.target,
            incoming.headers,
            incoming.body,
            incoming.agent,
        )
        decision = self.policy.policy.decide(view)
        if decision.action is Action.ALLOW:
            verdict = Verdict(Outcome.ALLOWED, incoming.request_id)
            await self.audit.append(self._record(incoming, verdict, decision, None))
            self._log_line(incoming, verdict, decision)
            return verdict
        if decision.action is Action.DENY:
            return await self._refuse(incoming, Outcome.DENIED, decision, POLICY, "request_denied")
        if (
            tunnel is not None
            and tunnel.rule == decision.rule
            and tunnel.request.agent == incoming.agent
        ):  # a person approved this host at CONNECT: its rule's hold is decided for the tunnel
            verdict = Verdict(Outcome.APPROVED, incoming.request_id, hold=tunnel)
            await self.audit.append(self._record(incoming, verdict, decision, tunnel))
            self._log_line(incoming, verdict, decision)
            return verdict
        return await self._hold(incoming, decision, view.body, gone)

    def _early_refusal(self, incoming: Incoming) -> tuple[Outcome, Decision, str, str] | None:
        if self.protected(incoming.host, incoming.port):
            reason = "the gate does not proxy requests to its own control API or listen addresses"
            return Outcome.DENIED, Decision(Action.DENY, None, reason), SYSTEM, "request_denied"
        if self.lockdown.on:
            reason = "Interlock is in lockdown: every request is refused until an operator lifts it"
            if self.lockdown.reason:
                reason += f" ({self.lockdown.reason})"
            return Outcome.DENIED, Decision(Action.DENY, None, reason), SYSTEM, "lockdown"
        return None

    async def _refuse(
        self, incoming: Incoming, outcome: Outcome, decision: Decision, by: str, error: str
    ) -> Verdict:
        verdict = self.answer(
            outcome, incoming.request_id, 403, error, decision.rule, decision.reason, by
        )
        await self.audit.append(self._record(incoming, verdict, decision, None))
        self._log_line(incoming, verdict, decision)
        return verdict

    # -- holds --------------------------------------------------------------------------------

    def hold_key(self, incoming: Incoming) -> str:
        digest = hashlib.sha256()
        for part in (
            incoming.agent,
            incoming.method,
            incoming.scheme,
            incoming.host,
            str(incoming.port),
            incoming.target,
        ):
            digest.update(part.encode() + b"\0")
        digest.update(incoming.body_digest)
        return digest.hexdigest()

    async def _hold(
        self,
        incoming: Incoming,
        decision: Decision,
        decoded: bytes | None,
        gone: asyncio.Event | None,
    ) -> Verdict:
        granted = self._granted(incoming, decision)
        if granted is not None:
            await self.audit.append(self._record(incoming, granted, decision, None))
            self._log_line(incoming, granted, decision)
            return granted
        key = self.hold_key(incoming)
        replay = self.holds.take_replay(key)
        if replay is not None:
            verdict = Verdict(Outcome.APPROVED, incoming.request_id, hold=replay)
            record = self._record(incoming, verdict, decision, replay)
            await self.audit.append(record)
            self._log_line(incoming, verdict, decision)
            return verdict
        try:
            hold, joined = self.holds.open(self._held(incoming, decoded), decision, key)
        except HoldError as exc:
            return await self._refuse(
                incoming,
                Outcome.DENIED,
                Decision(Action.DENY, decision.rule, str(exc)),
                SYSTEM,
                "too_many_holds",
            )
        if not joined:
            hold.exact_key = _exact_key(incoming)
        pending = Verdict(Outcome.PENDING, incoming.request_id, hold=hold)
        try:
            await self.audit.append(self._record(incoming, pending, decision, hold))
        except Exception as exc:
            if not joined:  # an unrecorded hold must not linger, nor be approvable
                self.holds.abandon(hold, f"the hold could not be recorded ({exc})")
            raise
        if not joined:
            self.holds.announce(hold)
        return await self.await_hold(incoming, hold, decision, gone)

    def _granted(self, incoming: Incoming, decision: Decision) -> Verdict | None:
        """A grant turns this hold into an allow: recorded `granted` with the grant's id."""
        if self.grants is None or incoming.method == "CONNECT":
            return None
        path, _, _ = incoming.target.partition("?")
        grant = self.grants.match(
            rule=decision.rule, agent=incoming.agent, method=incoming.method,
            scheme=incoming.scheme, host=incoming.host, port=incoming.port, path=path,
            key=_exact_key(incoming),
        )  # fmt: skip
        if grant is None:
            return None
        return Verdict(Outcome.GRANTED, incoming.request_id, grant_id=grant.id,
                       granted_by=grant.created_by)  # fmt: skip

    async def await_hold(
        self, incoming: Incoming, hold: Hold, decision: Decision, gone: asyncio.Event | None = None
    ) -> Verdict:
        """Wait for the person, the deadline, the client giving up, or `respond_pending_after`."""
        remaining = hold.deadline - self.clock()
        patience = hold.settings.respond_pending_after
        if patience >= remaining:
            patience = remaining + 2.0  # the deadline comes first: wait for the expiry itself
        patience = max(0.0, patience)
        waiters: set[asyncio.Future[Any]] = {asyncio.ensure_future(self.holds.wait(hold, patience))}
        if gone is not None:
            waiters.add(asyncio.ensure_future(gone.wait()))
        _, rest = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        for task in rest:
            task.cancel()
        outcome = hold.state if hold.state is not Outcome.PENDING else Outcome.PENDING
        if outcome is Outcome.APPROVED:
            verdict = Verdict(Outcome.APPROVED, incoming.request_id, hold=hold)
            verdict.follower = not self.holds.claim_forwarding(hold)
            self._log_line(incoming, verdict, decision)
            return verdict
        if outcome is Outcome.PENDING:
            if gone is not None and gone.is_set():
                self.holds.mark_client_gone(hold)
            verdict = self._pending_answer(incoming.request_id, hold)
            self._log_line(incoming, verdict, decision)
            return verdict
        error = {Outcome.DENIED: "request_denied", Outcome.EXPIRED: "hold_expired"}.get(
            outcome, "gate_error"
        )
        reason = hold.decision_reason or hold.reason
        verdict = self.answer(
            outcome,
            incoming.request_id,
            403,
            error,
            hold.rule,
            reason,
            hold.decided_by or SYSTEM,
            hold,
        )
        self._log_line(incoming, verdict, decision)
        return verdict

    def _pending_answer(self, request_id: str, hold: Hold) -> Verdict:
        retry_after = max(1, min(30, int(hold.deadline - self.clock())))
        verdict = self.answer(
            Outcome.PENDING, request_id, 429, "request_held", hold.rule, hold.reason, SYSTEM, hold
        )
        verdict.headers["Retry-After"] = str(retry_after)
        assert verdict.body is not None
        verdict.body["deadline"] = hold.deadline
        verdict.body["retry_after"] = retry_after
        return verdict

    def _held(self, incoming: Incoming, decoded: bytes | None) -> HeldRequest:
        path, _, query = incoming.target.partition("?")
        return HeldRequest(
            request_id=incoming.request_id,
            agent=incoming.agent,
            client=incoming.client,
            method=incoming.method,
            scheme=incoming.scheme,
            host=incoming.host,
            port=incoming.port,
            path=path,
            query=self.redactor.query(query),
            headers=self.redactor.headers(incoming.headers),
            body_size=len(incoming.body),
            body_sha256=incoming.body_digest.hex(),
            body_preview=self.redactor.body_preview(decoded, incoming.content_type),
        )

    # -- answers ------------------------------------------------------------------------------

    def failure(self, request_id: str, exc: BaseException) -> Verdict:
        reason = f"the gate could not evaluate this request safely ({type(exc).__name__}: {exc})"
        return self.answer(
            Outcome.ERROR,
            request_id,
            403,
            "gate_error",
            None,
            self.redactor.redact_text(reason),
            SYSTEM,
        )

    def answer(
        self,
        outcome: Outcome,
        request_id: str,
        status: int,
        error: str,
        rule: str | None,
        reason: str,
        by: str,
        hold: Hold | None = None,
    ) -> Verdict:
        body: dict[str, Any] = {
            "error": error,
            "outcome": outcome.value,
            "rule": rule,
            "reason": reason,
            "request_id": request_id,
            "decided_by": by,
            "hold_id": hold.id if hold else None,
            "message": _message(outcome, error, rule, reason, by, hold),
        }
        headers = {DECISION_HEADER: outcome.value, REQUEST_ID_HEADER: request_id}
        return Verdict(outcome, request_id, status, body, headers, hold)

    # -- records ------------------------------------------------------------------------------

    def _record(
        self, incoming: Incoming, verdict: Verdict, decision: Decision | None, hold: Hold | None
    ) -> AuditRecord:
        facts = self._held(incoming, _plain(incoming))  # the same redacted facts a hold shows
        body = verdict.body or {}
        decided_by, channel, detail = body.get("decided_by"), None, None
        if verdict.outcome is Outcome.ALLOWED:
            decided_by = POLICY
        elif verdict.outcome is Outcome.GRANTED:
            decided_by, channel = verdict.granted_by, "grant"
            detail = {"grant_id": verdict.grant_id}
        elif verdict.outcome is Outcome.APPROVED and hold is not None:
            decided_by, channel = hold.decided_by, hold.channel
            detail = {"replay_of": hold.request.request_id}
        return AuditRecord(
            kind=Kind.REQUEST,
            request_id=incoming.request_id,
            agent=incoming.agent,
            client=incoming.client,
            method=incoming.method,
            scheme=incoming.scheme,
            host=incoming.host,
            port=incoming.port,
            path=facts.path,
            query=facts.query,
            headers=facts.headers,
            body_size=facts.body_size,
            body_sha256=facts.body_sha256,
            body_preview=facts.body_preview,
            rule=decision.rule if decision else body.get("rule"),
            action=decision.action.value if decision else None,
            outcome=verdict.outcome.value,
            decided_by=decided_by,
            channel=channel,
            reason=body.get("reason") or (decision.reason if decision else None),
            hold_id=hold.id if hold else None,
            status=verdict.status,
            policy_digest=self.policy.policy.digest,
            detail=detail,
        )

    def _log_line(
        self, incoming: Incoming, verdict: Verdict, decision: Decision | None = None
    ) -> None:
        """One JSON decision line per answer, for the container log."""
        path, _, query = incoming.target.partition("?")
        body = verdict.body or {}
        line = {
            "ts": self.clock(),
            "request_id": incoming.request_id,
            "agent": incoming.agent,
            "client": incoming.client,
            "method": incoming.method,
            "url": f"{incoming.scheme}://{incoming.host}:{incoming.port}{path}"
            + (f"?{self.redactor.query(query)}" if query else ""),
            "rule": body.get("rule", decision.rule if decision else None),
            "outcome": verdict.outcome.value,
            "decided_by": body.get("decided_by")
            or verdict.granted_by
            or (verdict.hold.decided_by if verdict.hold else POLICY),
            "grant_id": verdict.grant_id,
            "reason": body.get("reason") or (decision.reason if decision else None),
            "hold_id": verdict.hold.id if verdict.hold else None,
        }
        if self.events is not None:
            self.events.publish("request.decided", line)
        self.decision_log.write(line)


def _exact_key(incoming: Incoming) -> str:
    """What an exact-request grant is keyed on: method, URL and body."""
    return exact_key(incoming.method, incoming.scheme, incoming.host, incoming.port,
                     incoming.target, incoming.body_digest)  # fmt: skip


def _plain(incoming: Incoming) -> bytes | None:
    """The body for the redacted preview; encoded bodies are previewed only when identity."""
    encoded = any(
        k.lower() == "content-encoding" and v.strip().lower() not in ("", "identity")
        for k, v in incoming.headers
    )
    return None if encoded else incoming.body


def _message(
    outcome: Outcome, error: str, rule: str | None, reason: str, by: str, hold: Hold | None
) -> str:
    """A refusal an LLM agent can act on: what happened, and what to do instead."""
    gate = "Interlock, the approval gate between you and the network,"
    if outcome is Outcome.PENDING and hold is not None:
        return (
            f"{gate} is holding this request for a person's approval (hold {hold.id}): "
            f"{reason}. It was NOT sent. Retry the identical request after the Retry-After "
            "delay; once a person approves it, the identical retry goes through once. "
            "Meanwhile, continue with other work."
        )
    if outcome is Outcome.EXPIRED:
        return (
            f"{gate} held this request but nobody approved it in time ({reason}). It was "
            "NOT sent. Do not retry in a loop; ask the operator, or find another approach."
        )
    if outcome is Outcome.ERROR:
        return (
            f"{gate} refused this request because it could not check it safely ({reason}). "
            "It was NOT sent. This is not a network fault; report it to the operator."
        )
    if error == "lockdown":
        return f"{gate} is in lockdown and refuses every request. Stop and tell the operator."
    if error == "body_too_large":
        return f"{gate} refused this request: {reason}. Send a smaller body."
    if by.startswith("person:"):
        source = f"a person ({by.removeprefix('person:')})"
    elif rule is not None:
        source = f"policy rule {rule}"
    else:
        source = "the policy's default" if by == POLICY else "the gate itself"
    return (
        f"{gate} refused this request by {source}: {reason}. It was NOT sent and retrying "
        "it unchanged will not help; choose another approach or ask the operator."
    )
