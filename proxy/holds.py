"""The hold queue: requests waiting for a person, each ending in exactly one recorded outcome."""

from __future__ import annotations

import asyncio
import itertools
import logging
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from policies.model import Decision, HoldSettings
from proxy.events import EventBus
from proxy.grants import propose_pattern
from proxy.outcomes import FINAL, SYSTEM, Outcome
from proxy.records import AuditRecord, Kind

log = logging.getLogger(__name__)

REPLAY_WINDOW = 600.0  # an approved hold lets one identical retry through within 10 minutes


class AuditWriter(Protocol):
    async def append(self, record: AuditRecord) -> int: ...


class HoldError(Exception):
    """A decision that cannot be taken; `status` is the HTTP status the API answers with."""

    status = 400


class HoldNotFound(HoldError):
    status = 404


class HoldAlreadyDecided(HoldError):
    status = 409

    def __init__(self, message: str, hold: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.hold = hold  # the final outcome, so a channel can show who won


class AlreadyVoted(HoldError):
    """The same person approving again under a quorum: refused, the hold still pending (409 is
    kept for holds that already have their final outcome)."""

    status = 422


class TooManyHolds(HoldError):
    status = 429


@dataclass(frozen=True, slots=True)
class HeldRequest:
    """The redacted facts of a held request, as operators and channels see them."""

    request_id: str
    agent: str
    client: str
    method: str
    scheme: str
    host: str
    port: int
    path: str
    query: str
    headers: tuple[tuple[str, str], ...]
    body_size: int
    body_sha256: str
    body_preview: str | None

    @property
    def url(self) -> str:
        default = {"http": 80, "https": 443}.get(self.scheme)
        netloc = self.host if ":" not in self.host else f"[{self.host}]"
        if self.port != default:
            netloc += f":{self.port}"
        return f"{self.scheme}://{netloc}{self.path}" + (f"?{self.query}" if self.query else "")


@dataclass(frozen=True, slots=True)
class Vote:
    by: str
    channel: str
    at: float
    reason: str | None
    # Everyone this vote speaks for: `by`, plus the person behind it when a channel knows (a
    # Slack ID mapped to a name, whoever made a personal link). A quorum counts nobody twice.
    people: frozenset[str] = frozenset()


@dataclass(eq=False)
class Hold:
    id: str
    request: HeldRequest
    key: str
    rule: str | None
    reason: str
    severity: str
    settings: HoldSettings
    created_at: float
    deadline: float
    state: Outcome = Outcome.PENDING
    decided_by: str | None = None
    channel: str | None = None
    decision_reason: str | None = None
    decided_at: float | None = None
    client_gone: bool = False
    joined: int = 0
    votes: list[Vote] = field(default_factory=list)
    done: asyncio.Future[Outcome] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )
    forwarder_claimed: bool = False
    exact_key: str = ""  # method, URL and body hash, for an exact-request grant
    announced: bool = False  # its request row is committed: operators may see and decide it
    channels: dict[str, dict[str, Any]] = field(default_factory=dict)  # remote channel -> status
    shared_response: asyncio.Future[Any] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )
    _deciding: bool = False
    _timer: asyncio.TimerHandle | None = None

    @property
    def pending(self) -> bool:
        return self.state is Outcome.PENDING and not self._deciding

    def to_json(self) -> dict[str, Any]:
        r = self.request
        return {
            "id": self.id,
            "request_id": r.request_id,
            "state": self.state.value,
            "agent": r.agent,
            "client": r.client,
            "method": r.method,
            "url": r.url,
            "host": r.host,
            "path": r.path,
            "query": r.query,
            "headers": [list(h) for h in r.headers],
            "body_size": r.body_size,
            "body_sha256": r.body_sha256,
            "body_preview": r.body_preview,
            "rule": self.rule,
            "reason": self.reason,
            "severity": self.severity,
            "reasons": list(self.settings.reasons),
            "approvals_needed": self.settings.approvals,
            "votes": [{"by": v.by, "channel": v.channel, "at": v.at} for v in self.votes],
            "created_at": self.created_at,
            "deadline": self.deadline,
            "decided_by": self.decided_by,
            "channel": self.channel,
            "decision_reason": self.decision_reason,
            "decided_at": self.decided_at,
            "client_gone": self.client_gone,
            "joined": self.joined,
            "channels": {name: dict(status) for name, status in self.channels.items()},
            "proposed_pattern": propose_pattern(r.path),
            "grantable": self.rule is not None and self.settings.approvals == 1,
            "host_grant_allowed": self.severity != "critical",
        }


_ids = itertools.count(1)


def new_hold_id() -> str:
    return f"h_{secrets.token_hex(6)}"


class HoldQueue:
    """Holds pending requests, takes decisions (first final one wins) and expires them on time.

    Every final outcome is committed to the audit log before the waiting request is released,
    so nothing is forwarded on a decision that was not recorded.
    """

    def __init__(
        self,
        audit: AuditWriter,
        events: EventBus,
        *,
        max_pending_per_agent: int = 20,
        replay_window: float = REPLAY_WINDOW,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.audit = audit
        self.events = events
        self.max_pending_per_agent = max_pending_per_agent
        self.replay_window = replay_window
        self.clock = clock
        self._holds: dict[str, Hold] = {}
        self._by_key: dict[str, Hold] = {}
        self._approved: dict[str, tuple[Hold, float]] = {}

    # -- reading ------------------------------------------------------------------------------

    def pending(self) -> list[Hold]:
        """Pending holds operators can see (their request row is recorded), oldest first."""
        holds = (h for h in self._holds.values() if h.pending and h.announced)
        return sorted(holds, key=lambda h: h.created_at)

    def get(self, hold_id: str) -> Hold | None:
        return self._holds.get(hold_id)

    # -- the gate's side ----------------------------------------------------------------------

    def open(self, request: HeldRequest, decision: Decision, key: str) -> tuple[Hold, bool]:
        """The pending hold for `key`, joined if one exists (True), else a new one (False)."""
        existing = self._by_key.get(key)
        if existing is not None and existing.pending:
            existing.joined += 1
            self.events.publish("hold.updated", existing.to_json())
            return existing, True
        agent_pending = sum(
            1 for h in self._holds.values() if h.pending and h.request.agent == request.agent
        )
        if agent_pending >= self.max_pending_per_agent:
            raise TooManyHolds(
                f"agent {request.agent!r} already has {agent_pending} requests waiting for a "
                f"person (the limit is {self.max_pending_per_agent})"
            )
        settings = decision.hold or HoldSettings()
        now = self.clock()
        hold = Hold(
            id=new_hold_id(),
            request=request,
            key=key,
            rule=decision.rule,
            reason=decision.reason,
            severity=decision.severity.value,
            settings=settings,
            created_at=now,
            deadline=now + settings.timeout,
        )
        self._holds[hold.id] = hold
        self._by_key[key] = hold
        loop = asyncio.get_running_loop()
        hold._timer = loop.call_later(settings.timeout, self._expire_soon, hold)
        return hold, False

    def announce(self, hold: Hold) -> None:
        """Tell operators about a hold, once its request row is in the audit log."""
        hold.announced = True
        self.events.publish("hold.created", hold.to_json())

    async def wait(self, hold: Hold, timeout: float) -> Outcome:
        """The hold's final outcome, or PENDING if it is still undecided after `timeout`."""
        try:
            return await asyncio.wait_for(asyncio.shield(hold.done), timeout)
        except TimeoutError:
            return Outcome.PENDING

    def take_replay(self, key: str) -> Hold | None:
        """An approved hold for this exact request, usable once within the replay window."""
        entry = self._approved.get(key)
        if entry is None:
            return None
        hold, approved_at = entry
        del self._approved[key]
        if self.clock() - approved_at > self.replay_window:
            return None
        return hold

    def claim_forwarding(self, hold: Hold) -> bool:
        """True for the one waiter that sends an approved request upstream; the others copy its
        response. Once sent, the approval cannot also be replayed by a retry."""
        if hold.forwarder_claimed:
            return False
        hold.forwarder_claimed = True
        entry = self._approved.get(hold.key)
        if entry is not None and entry[0] is hold:
            del self._approved[hold.key]
        return True

    def abandon(self, hold: Hold, reason: str) -> None:
        """End a hold whose own request row could not be written: `error`, nothing to record it
        in, and never announced, so no one can approve a request the log does not know."""
        if not hold.pending:
            return
        if hold._timer is not None:
            hold._timer.cancel()
        hold.state, hold.decided_by, hold.channel = Outcome.ERROR, SYSTEM, "system"
        hold.decision_reason, hold.decided_at = reason, self.clock()
        if self._by_key.get(hold.key) is hold:
            del self._by_key[hold.key]
        self._holds.pop(hold.id, None)
        hold.done.set_result(Outcome.ERROR)

    def mark_client_gone(self, hold: Hold) -> None:
        if hold.pending and not hold.client_gone:
            hold.client_gone = True
            self.events.publish("hold.updated", hold.to_json())

    # -- decisions ----------------------------------------------------------------------------

    async def decide(
        self,
        hold_id: str,
        *,
        approve: bool,
        by: str,
        channel: str,
        reason: str | None = None,
        people: Iterable[str] = (),
    ) -> Hold:
        """Approve or deny. The first final decision wins; later ones raise HoldAlreadyDecided.

        With `approvals: N`, an approval is a vote until N distinct people agree; one deny ends
        it. `people` names who else the decision speaks for (see `Vote.people`).
        """
        hold = self._holds.get(hold_id)
        if hold is None or not hold.announced:
            raise HoldNotFound(f"no hold {hold_id!r}")
        if not hold.pending:
            raise HoldAlreadyDecided(
                f"hold {hold_id} was already decided: {hold.state.value} by {hold.decided_by}",
                hold.to_json() if hold.state is not Outcome.PENDING else None,
            )
        if not approve and not (reason and reason.strip()):
            raise HoldError("a denial needs a reason, so the agent knows what to do instead")
        if approve and hold.settings.approvals > 1:
            speaks_for = frozenset({by, *people})
            for vote in hold.votes:
                if twice := sorted(vote.people & speaks_for):
                    raise AlreadyVoted(
                        f"{twice[0]} already approved hold {hold_id}"
                        + (f" (as {vote.by})" if vote.by != twice[0] else "")
                        + "; the same person cannot count twice"
                    )
            if len(hold.votes) + 1 < hold.settings.approvals:
                return await self._vote(hold, by, channel, reason, speaks_for)
        outcome = Outcome.APPROVED if approve else Outcome.DENIED
        await self._finish(hold, outcome, by, channel, reason, frozenset(people))
        return hold

    async def _vote(
        self, hold: Hold, by: str, channel: str, reason: str | None, people: frozenset[str]
    ) -> Hold:
        vote = Vote(by, channel, self.clock(), reason, people)
        record = self._record(hold, Kind.VOTE, Outcome.PENDING, by, channel, reason, people)
        await self.audit.append(record)
        hold.votes.append(vote)
        self.events.publish("hold.vote", hold.to_json())
        return hold

    async def expire(self, hold: Hold, reason: str) -> None:
        if hold.pending:
            await self._finish(hold, Outcome.EXPIRED, SYSTEM, "system", reason)

    async def expire_all(self, reason: str) -> None:
        await asyncio.gather(*(self.expire(h, reason) for h in self.pending()))

    def _expire_soon(self, hold: Hold) -> None:
        task = asyncio.ensure_future(self.expire(hold, "nobody decided before the deadline"))
        _background.add(task)
        task.add_done_callback(_background.discard)

    async def _finish(
        self,
        hold: Hold,
        outcome: Outcome,
        by: str,
        channel: str,
        reason: str | None,
        people: frozenset[str] = frozenset(),
    ) -> None:
        assert outcome in FINAL
        hold._deciding = True  # from here on, any other decision gets 409
        if hold._timer is not None:
            hold._timer.cancel()
        record = self._record(hold, Kind.HOLD, outcome, by, channel, reason, people)
        try:
            await self.audit.append(record)
        except Exception as exc:  # fail closed: an unrecorded approval must not release anything
            log.error("could not record the outcome of hold %s: %s", hold.id, exc)
            outcome, by, channel = Outcome.ERROR, SYSTEM, "system"
            reason = f"the decision could not be recorded in the audit log ({exc})"
        now = self.clock()
        hold.state, hold.decided_by, hold.channel = outcome, by, channel
        hold.decision_reason, hold.decided_at = reason, now
        if self._by_key.get(hold.key) is hold:
            del self._by_key[hold.key]
        if outcome is Outcome.APPROVED:
            self._approved[hold.key] = (hold, now)
        hold.done.set_result(outcome)
        kind = "hold.expired" if outcome is Outcome.EXPIRED else "hold.decided"
        self.events.publish(kind, hold.to_json())
        self._forget_later(hold)

    def _forget_later(self, hold: Hold) -> None:
        """Decided holds stay readable for a while (API, late retries), then are dropped."""
        loop = asyncio.get_running_loop()
        loop.call_later(self.replay_window, self._holds.pop, hold.id, None)

    def _record(
        self,
        hold: Hold,
        kind: str,
        outcome: Outcome,
        by: str,
        channel: str,
        reason: str | None,
        people: frozenset[str] = frozenset(),
    ) -> AuditRecord:
        r = hold.request
        detail: dict[str, Any] = {}
        if hold.votes:
            detail["votes"] = [v.by for v in hold.votes]
        if behind := sorted(people - {by}):  # who else the decision speaks for
            detail["people"] = behind
        return AuditRecord(
            kind=kind,
            request_id=r.request_id,
            agent=r.agent,
            client=r.client,
            method=r.method,
            scheme=r.scheme,
            host=r.host,
            port=r.port,
            path=r.path,
            rule=hold.rule,
            action="hold",
            outcome=outcome.value,
            decided_by=by,
            channel=channel,
            reason=reason,
            hold_id=hold.id,
            held_ms=int((self.clock() - hold.created_at) * 1000),
            detail=detail or None,
        )


_background: set[asyncio.Future[None]] = set()
