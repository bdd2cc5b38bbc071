"""Domain types of the policy language: what the engine decides on and what it answers."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Action(StrEnum):
    ALLOW = "allow"
    DENY = "deny"
    HOLD = "hold"


class HostAction(StrEnum):
    """The answer at CONNECT time, before the request itself is known."""

    ALLOW = "allow"
    DENY = "deny"
    HOLD = "hold"
    NEEDS_REQUEST = "needs_request"


class Severity(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


ANONYMOUS = "anonymous"
DEFAULT_HOLD_TIMEOUT = 300.0
MAX_HOLD_TIMEOUT = 3600.0
DEFAULT_RESPOND_PENDING_AFTER = 25.0


@dataclass(frozen=True, slots=True)
class Escalation:
    after: float
    notify: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class HoldSettings:
    """How a hold waits and whom it asks; only meaningful for `hold` rules."""

    timeout: float = DEFAULT_HOLD_TIMEOUT
    respond_pending_after: float = DEFAULT_RESPOND_PENDING_AFTER
    reasons: tuple[str, ...] = ()
    notify: tuple[str, ...] = ()
    escalate: tuple[Escalation, ...] = ()
    approvals: int = 1


DEFAULT_HOLD = HoldSettings()


@dataclass(frozen=True, slots=True)
class RequestView:
    """The plain facts about one request that the engine decides on.

    `host` is already normalized (see `policies.normalize.normalize_host`); `body` is the decoded
    body, or None with `body_problem` saying why it could not be inspected.
    """

    method: str
    scheme: str
    host: str
    port: int
    path: str
    query: str = ""
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes | None = b""
    body_problem: str | None = None
    agent: str = ANONYMOUS

    def header(self, name: str) -> list[str]:
        """All values of a header, matched case-insensitively."""
        lowered = name.lower()
        return [value for key, value in self.headers if key.lower() == lowered]


@dataclass(frozen=True, slots=True)
class Decision:
    """The engine's answer: always an action with the rule that chose it and a reason."""

    action: Action
    rule: str | None
    reason: str
    severity: Severity = Severity.MEDIUM
    hold: HoldSettings | None = None

    @property
    def by_default(self) -> bool:
        return self.rule is None


@dataclass(frozen=True, slots=True)
class HostDecision:
    action: HostAction
    rule: str | None
    reason: str
    severity: Severity = Severity.MEDIUM
    hold: HoldSettings | None = None


@dataclass(frozen=True, slots=True)
class SecretRef:
    """A secret named by reference; the value is read by whoever uses the channel."""

    env: str | None = None
    file: str | None = None


@dataclass(frozen=True, slots=True)
class Channel:
    name: str
    type: str
    settings: dict[str, object] = field(default_factory=dict, hash=False, compare=False)


@dataclass(frozen=True, slots=True)
class Agent:
    name: str
    addresses: tuple[str, ...]
