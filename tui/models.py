"""Plain, frozen values the dashboard shows: parsed once from the control API's JSON."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit


class Connection(StrEnum):
    CONNECTING = "connecting"
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"
    OFFLINE = "offline"


def _text(data: dict[str, Any], key: str, default: str = "") -> str:
    value = data.get(key)
    return default if value is None else str(value)


def _number(data: dict[str, Any], key: str, default: float = 0.0) -> float:
    value = data.get(key)
    return float(value) if isinstance(value, int | float) else default


def _optional_number(data: dict[str, Any], key: str) -> float | None:
    value = data.get(key)
    return float(value) if isinstance(value, int | float) else None


def _channels(value: Any) -> tuple[tuple[str, str, str], ...]:
    if not isinstance(value, dict):
        return ()
    out = []
    for name, status in sorted(value.items()):
        if isinstance(status, dict):
            out.append((str(name), str(status.get("state", "?")), str(status.get("error") or "")))
    return tuple(out)


@dataclass(frozen=True, slots=True)
class HoldView:
    """One held request, as `GET /v1/holds` and the hold events describe it (already redacted)."""

    id: str
    request_id: str
    state: str
    agent: str
    client: str
    method: str
    url: str
    host: str
    path: str
    query: str
    headers: tuple[tuple[str, str], ...]
    body_size: int
    body_preview: str | None
    rule: str | None
    reason: str
    severity: str
    reasons: tuple[str, ...]
    approvals_needed: int
    votes: int
    created_at: float
    deadline: float
    decided_by: str | None
    channel: str | None
    decision_reason: str | None
    client_gone: bool
    proposed_pattern: str
    grantable: bool
    host_grant_allowed: bool
    # Remote channels told about it: (name, state, error); delivered/retrying/failed/scheduled.
    channels: tuple[tuple[str, str, str], ...] = ()
    voters: tuple[str, ...] = ()  # who approved so far, under a quorum

    @property
    def pending(self) -> bool:
        return self.state == "pending"

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> HoldView:
        headers = tuple(
            (str(pair[0]), str(pair[1]))
            for pair in data.get("headers") or ()
            if isinstance(pair, list | tuple) and len(pair) == 2
        )
        rule = data.get("rule")
        return cls(
            id=_text(data, "id"),
            request_id=_text(data, "request_id"),
            state=_text(data, "state", "pending"),
            agent=_text(data, "agent", "?"),
            client=_text(data, "client"),
            method=_text(data, "method"),
            url=_text(data, "url"),
            host=_text(data, "host"),
            path=_text(data, "path", "/"),
            query=_text(data, "query"),
            headers=headers,
            body_size=int(_number(data, "body_size")),
            body_preview=data.get("body_preview")
            if isinstance(data.get("body_preview"), str)
            else None,
            rule=str(rule) if rule is not None else None,
            reason=_text(data, "reason"),
            severity=_text(data, "severity", "medium"),
            reasons=tuple(str(r) for r in data.get("reasons") or ()),
            approvals_needed=int(_number(data, "approvals_needed", 1)),
            votes=len(data.get("votes") or ()),
            created_at=_number(data, "created_at"),
            deadline=_number(data, "deadline"),
            decided_by=data.get("decided_by"),
            channel=data.get("channel"),
            decision_reason=data.get("decision_reason"),
            client_gone=bool(data.get("client_gone")),
            proposed_pattern=_text(data, "proposed_pattern", _text(data, "path", "/")),
            grantable=bool(data.get("grantable", False)),
            host_grant_allowed=bool(data.get("host_grant_allowed", False)),
            channels=_channels(data.get("channels")),
            voters=tuple(str(v.get("by")) for v in data.get("votes") or () if isinstance(v, dict)),
        )


@dataclass(frozen=True, slots=True)
class GrantView:
    """An active grant: what it lets through, for whom, made by whom, until when."""

    id: str
    rule: str
    scope: str
    method: str
    host: str
    port: int
    pattern: str | None
    agents: tuple[str, ...] | None  # None: every agent
    created_by: str
    created_at: float
    expires_at: float | None  # None: until revoked
    uses: int

    @property
    def target(self) -> str:
        if self.scope == "host":
            return f"any request to {self.host}"
        suffix = " (exact)" if self.scope == "exact" else ""
        return f"{self.method} {self.host}{self.pattern or ''}{suffix}"

    @property
    def who(self) -> str:
        return "all agents" if self.agents is None else ", ".join(self.agents)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> GrantView:
        agents = data.get("agents")
        pattern = data.get("pattern")
        return cls(
            id=_text(data, "id"),
            rule=_text(data, "rule"),
            scope=_text(data, "scope"),
            method=_text(data, "method"),
            host=_text(data, "host"),
            port=int(_number(data, "port")),
            pattern=str(pattern) if pattern is not None else None,
            agents=tuple(str(a) for a in agents) if isinstance(agents, list) else None,
            created_by=_text(data, "created_by"),
            created_at=_number(data, "created_at"),
            expires_at=_optional_number(data, "expires_at"),
            uses=int(_number(data, "uses")),
        )


@dataclass(frozen=True, slots=True)
class ActivityRow:
    """One request on the activity screen: from the audit log or a `request.decided` event.

    `outcome` is the audit vocabulary, except that a request still waiting reads `held`.
    """

    request_id: str
    at: float
    agent: str
    method: str
    host: str
    path: str
    rule: str | None
    outcome: str
    decided_by: str | None
    reason: str | None

    @classmethod
    def from_audit(cls, row: dict[str, Any]) -> ActivityRow:
        outcome = row.get("final_outcome") or row.get("outcome") or "?"
        return cls(
            request_id=_text(row, "request_id"),
            at=_number(row, "at"),
            agent=_text(row, "agent", "?"),
            method=_text(row, "method"),
            host=_text(row, "host"),
            path=_text(row, "path", "/"),
            rule=row.get("rule"),
            outcome=_held(str(outcome)),
            decided_by=row.get("decided_by"),
            reason=row.get("reason"),
        )

    @classmethod
    def from_event(cls, data: dict[str, Any]) -> ActivityRow:
        """From `request.decided` (the gate's decision line: `ts`, `url`, `outcome`, ...)."""
        url = urlsplit(_text(data, "url"))
        return cls(
            request_id=_text(data, "request_id"),
            at=_number(data, "ts"),
            agent=_text(data, "agent", "?"),
            method=_text(data, "method"),
            host=url.hostname or "",
            path=url.path or "/",
            rule=data.get("rule"),
            outcome=_held(_text(data, "outcome", "?")),
            decided_by=data.get("decided_by"),
            reason=data.get("reason"),
        )

    @classmethod
    def from_hold(cls, hold: HoldView) -> ActivityRow:
        return cls(
            request_id=hold.request_id, at=hold.created_at, agent=hold.agent,
            method=hold.method, host=hold.host, path=hold.path, rule=hold.rule,
            outcome="held" if hold.pending else hold.state,
            decided_by=hold.decided_by, reason=hold.decision_reason or hold.reason,
        )  # fmt: skip


def _held(outcome: str) -> str:
    return "held" if outcome == "pending" else outcome


@dataclass(frozen=True, slots=True)
class RuleStats:
    """How a rule's holds ended before."""

    rule: str
    approved: int
    denied: int
    expired: int
    last_decision_at: float | None

    @property
    def decisions(self) -> int:
        return self.approved + self.denied + self.expired

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RuleStats:
        return cls(
            rule=_text(data, "rule"),
            approved=int(_number(data, "approved")),
            denied=int(_number(data, "denied")),
            expired=int(_number(data, "expired")),
            last_decision_at=_optional_number(data, "last_decision_at"),
        )


@dataclass(frozen=True, slots=True)
class GrantChoice:
    """What the operator chose in the approve-and-remember dialog."""

    scope: str  # exact | endpoint | host
    duration: str  # 15m | 1h | 8h | never
    all_agents: bool = False
    pattern: str | None = None  # endpoint scope only

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "scope": self.scope,
            "duration": self.duration,
            "all_agents": self.all_agents,
        }
        if self.scope == "endpoint" and self.pattern:
            body["pattern"] = self.pattern
        return body


@dataclass(frozen=True, slots=True)
class Decided:
    """The API's answer to a decision: final, or one vote of a quorum."""

    final: bool
    votes: int
    needed: int
    grant: GrantView | None = None


@dataclass(frozen=True, slots=True)
class ActivityFilter:
    """`agent:x host:y outcome:z rule:r free words`; each part narrows the stream."""

    agent: str | None = None
    host: str | None = None
    outcome: str | None = None
    rule: str | None = None
    words: tuple[str, ...] = field(default_factory=tuple)

    @classmethod
    def parse(cls, text: str) -> ActivityFilter:
        fields: dict[str, str] = {}
        words: list[str] = []
        for token in text.split():
            name, sep, value = token.partition(":")
            if sep and name.lower() in ("agent", "host", "outcome", "rule") and value:
                fields[name.lower()] = value
            else:
                words.append(token.lower())
        return cls(**fields, words=tuple(words))

    def matches(self, row: ActivityRow) -> bool:
        checks = (
            (self.agent, row.agent), (self.host, row.host),
            (self.outcome, row.outcome), (self.rule, row.rule or ""),
        )  # fmt: skip
        if any(want is not None and want.lower() not in have.lower() for want, have in checks):
            return False
        text = f"{row.agent} {row.method} {row.host}{row.path} {row.rule or ''} {row.outcome}"
        return all(word in text.lower() for word in self.words)
