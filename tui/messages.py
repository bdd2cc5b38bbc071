"""Messages that workers post; App and Screen handlers act on them."""

from __future__ import annotations

from typing import Any

from textual.message import Message

from tui.models import ActivityRow, Decided, GrantView, HoldView, RuleStats


class StreamOpened(Message):
    """The events stream is connected; `resumed` when it continued after a Last-Event-ID."""

    def __init__(self, resumed: bool) -> None:
        super().__init__()
        self.resumed = resumed


class StreamLost(Message):
    """The events stream ended or could not be opened; a reconnect is scheduled."""

    def __init__(self, reason: str, offline: bool, retry_in: float) -> None:
        super().__init__()
        self.reason, self.offline, self.retry_in = reason, offline, retry_in


class ServerEventReceived(Message):
    """One server-sent event (`hold.created`, `grant.revoked`, `request.decided`, `resync`...)."""

    def __init__(self, kind: str, data: Any) -> None:
        super().__init__()
        self.kind, self.data = kind, data


class SnapshotLoaded(Message):
    """Holds, grants and lockdown as read after a (re)connect; `since` is the book's version
    when the read began, so later live changes win over this older picture."""

    def __init__(
        self,
        holds: list[HoldView],
        grants: list[GrantView],
        lockdown: bool,
        activity: list[ActivityRow] | None,
        since: int,
    ) -> None:
        super().__init__()
        self.holds, self.grants, self.lockdown = holds, grants, lockdown
        self.activity, self.since = activity, since


class SnapshotFailed(Message):
    def __init__(self, reason: str) -> None:
        super().__init__()
        self.reason = reason


class DecisionSent(Message):
    """The API took a decision on `hold_id` (a final one, or one vote of a quorum)."""

    def __init__(self, hold_id: str, verb: str, result: Decided) -> None:
        super().__init__()
        self.hold_id, self.verb, self.result = hold_id, verb, result


class DecisionFailed(Message):
    """A decision on `hold_id` was not taken: unreachable, refused, or someone decided first."""

    def __init__(
        self, hold_id: str, verb: str, reason: str, status: int, body: dict[str, Any]
    ) -> None:
        super().__init__()
        self.hold_id, self.verb, self.reason = hold_id, verb, reason
        self.status, self.body = status, body


class LockdownSet(Message):
    def __init__(self, on: bool) -> None:
        super().__init__()
        self.on = on


class GrantRevoked(Message):
    def __init__(self, grant: GrantView) -> None:
        super().__init__()
        self.grant = grant


class GrantsLoaded(Message):
    def __init__(self, grants: list[GrantView]) -> None:
        super().__init__()
        self.grants = grants


class ActivityLoaded(Message):
    """Older requests matching a filter, read from the audit log."""

    def __init__(self, rows: list[ActivityRow]) -> None:
        super().__init__()
        self.rows = rows


class RuleStatsLoaded(Message):
    """A rule's decision history; `stats` is None when it could not be read."""

    def __init__(self, rule: str, stats: RuleStats | None) -> None:
        super().__init__()
        self.rule, self.stats = rule, stats


class TrailLoaded(Message):
    """Every audit row of one request, to show in full."""

    def __init__(self, request_id: str, trail: list[dict[str, Any]]) -> None:
        super().__init__()
        self.request_id, self.trail = request_id, trail


class ActionFailed(Message):
    """A worker's call failed; shown as an error notification, never a crash."""

    def __init__(self, what: str, reason: str) -> None:
        super().__init__()
        self.what, self.reason = what, reason


class StoreChanged(Message):
    """Sent by the App to the screens on show after its state changed; they re-render from it.

    `parts`: which of holds, grants, activity and status changed.
    """

    def __init__(self, parts: frozenset[str]) -> None:
        super().__init__()
        self.parts = parts
