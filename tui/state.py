"""The dashboard's state: held requests, grants, recent activity and the decisions in flight.

Plain Python, no Textual: App handlers change it, screens read it. Live events and snapshots
can arrive in either order, so every change is by id and idempotent.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, replace
from typing import Any

from tui.models import ActivityRow, Connection, GrantView, HoldView

FINISHED_KEPT = 2000
ACTIVITY_KEPT = 2000


@dataclass(frozen=True, slots=True)
class Failure:
    """A decision that was not taken; shown until the hold ends or the operator retries."""

    verb: str
    reason: str


class HoldBook:
    """Pending holds by id, the recently finished ones, and which decisions are in flight."""

    def __init__(self) -> None:
        self.version = 0
        self._pending: dict[str, HoldView] = {}
        self._touched: dict[str, int] = {}
        self._finished: OrderedDict[str, HoldView] = OrderedDict()
        self._ordered: list[HoldView] | None = []
        self.sending: dict[str, str] = {}  # hold id -> verb
        self.failed: dict[str, Failure] = {}
        self.decided_here: set[str] = set()

    def _bump(self, hold_id: str) -> None:
        self.version += 1
        self._touched[hold_id] = self.version
        self._ordered = None

    def pending(self) -> list[HoldView]:
        """Pending holds, oldest first."""
        if self._ordered is None:
            self._ordered = sorted(self._pending.values(), key=lambda h: (h.created_at, h.id))
        return self._ordered

    def get(self, hold_id: str) -> HoldView | None:
        return self._pending.get(hold_id) or self._finished.get(hold_id)

    def is_pending(self, hold_id: str) -> bool:
        return hold_id in self._pending

    def __len__(self) -> int:
        return len(self._pending)

    def upsert(self, hold: HoldView) -> bool:
        """Add or refresh a pending hold; True when it is new. A finished hold stays finished."""
        if not hold.pending:
            self.finish(hold)
            return False
        if hold.id in self._finished:
            return False
        new = hold.id not in self._pending
        self._pending[hold.id] = hold
        self._bump(hold.id)
        return new

    def finish(self, hold: HoldView) -> None:
        self._pending.pop(hold.id, None)
        self._finished[hold.id] = hold
        self._finished.move_to_end(hold.id)
        while len(self._finished) > FINISHED_KEPT:
            forgotten, _ = self._finished.popitem(last=False)
            self._touched.pop(forgotten, None)
            self.decided_here.discard(forgotten)
        self.sending.pop(hold.id, None)
        self.failed.pop(hold.id, None)
        self._bump(hold.id)

    def reset(self, holds: list[HoldView], since: int) -> None:
        """Take a snapshot read that began at version `since`; newer live changes win."""
        listed = {h.id for h in holds}
        for hold_id, hold in list(self._pending.items()):
            if hold_id not in listed and self._touched.get(hold_id, 0) <= since:
                self.finish(_gone(hold))
        for hold in holds:
            if self._touched.get(hold.id, 0) <= since:
                self.upsert(hold)

    def decided_elsewhere(self, hold_id: str) -> bool:
        """Finished by another channel (or by the deadline), not by this dashboard."""
        return hold_id in self._finished and hold_id not in self.decided_here

    # -- decisions in flight ----------------------------------------------------------------

    def start_decision(self, hold_id: str, verb: str) -> None:
        self.sending[hold_id] = verb
        self.failed.pop(hold_id, None)
        self.decided_here.add(hold_id)
        self._bump(hold_id)

    def decision_taken(self, hold_id: str, final: bool) -> None:
        self.sending.pop(hold_id, None)
        if final and hold_id in self._pending:
            hold = self._pending[hold_id]
            self.finish(_gone(hold, "decided"))
        else:
            self._bump(hold_id)

    def decision_failed(self, hold_id: str, verb: str, reason: str) -> None:
        self.sending.pop(hold_id, None)
        self.decided_here.discard(hold_id)
        if hold_id in self._pending:
            self.failed[hold_id] = Failure(verb, reason)
        self._bump(hold_id)


def _gone(hold: HoldView, state: str = "gone") -> HoldView:
    """A hold that left the pending list without its final event being seen."""
    return replace(hold, state=state)


class GrantBook:
    """Active grants by id."""

    def __init__(self) -> None:
        self._grants: dict[str, GrantView] = {}
        self.version = 0

    def all(self) -> list[GrantView]:
        return sorted(self._grants.values(), key=lambda g: (g.created_at, g.id))

    def get(self, grant_id: str) -> GrantView | None:
        return self._grants.get(grant_id)

    def put(self, grant: GrantView) -> None:
        self._grants[grant.id] = grant
        self.version += 1

    def drop(self, grant_id: str) -> None:
        self._grants.pop(grant_id, None)
        self.version += 1

    def reset(self, grants: list[GrantView]) -> None:
        self._grants = {g.id: g for g in grants}
        self.version += 1


class ActivityLog:
    """Recent requests by request id, in arrival order; a hold's row is updated in place."""

    def __init__(self, keep: int = ACTIVITY_KEPT) -> None:
        self._rows: OrderedDict[str, ActivityRow] = OrderedDict()
        self.keep = keep
        self.version = 0
        self.appended = 0  # rows ever added: screens append what is new since they last looked

    def rows(self) -> list[ActivityRow]:
        return list(self._rows.values())

    def get(self, request_id: str) -> ActivityRow | None:
        return self._rows.get(request_id)

    def put(self, row: ActivityRow) -> None:
        """Add a request, or update its outcome (it keeps its place and its arrival time)."""
        before = self._rows.get(row.request_id)
        if before is None:
            self.appended += 1
        else:
            row = replace(row, at=before.at)
        self._rows[row.request_id] = row
        while len(self._rows) > self.keep:
            self._rows.popitem(last=False)
        self.version += 1

    def merge_history(self, rows: list[ActivityRow]) -> None:
        """Older rows from the audit log: added where missing, then everything ordered by time."""
        for row in rows:
            self._rows.setdefault(row.request_id, row)
        ordered = sorted(self._rows.values(), key=lambda r: r.at)[-self.keep :]
        self._rows = OrderedDict((r.request_id, r) for r in ordered)
        self.version += 1


@dataclass(frozen=True, slots=True)
class Status:
    """What the status bar shows on every screen."""

    connection: Connection = Connection.CONNECTING
    detail: str = ""
    lockdown: bool = False
    held: int = 0
    failed: int = 0
    grants: int = 0


@dataclass(frozen=True, slots=True)
class Applied:
    """What one server event changed, and what the App should do about it."""

    parts: tuple[str, ...] = ()  # holds, grants, activity: the screens showing them re-render
    new_hold: HoldView | None = None  # ring the bell for it
    lockdown: bool | None = None
    resync: bool = False  # events were missed: re-read the holds
    notice: str = ""
    error: bool = False


_PARTS = {"hold": ("holds", "activity"), "grant": ("grants",), "request": ("activity",)}


def apply_event(
    book: HoldBook, grants: GrantBook, activity: ActivityLog, kind: str, data: dict[str, Any]
) -> Applied:
    """Apply one server-sent event to the state."""
    parts = _PARTS.get(kind.partition(".")[0], ())
    if kind in ("hold.created", "hold.updated", "hold.vote"):
        hold = HoldView.from_json(data)
        new = book.upsert(hold) and kind == "hold.created"
        if activity.get(hold.request_id) is None or kind == "hold.created":
            activity.put(ActivityRow.from_hold(hold))
        return Applied(parts, new_hold=hold if new else None)
    if kind in ("hold.decided", "hold.expired"):
        hold = HoldView.from_json(data)
        book.finish(hold)
        activity.put(ActivityRow.from_hold(hold))
    elif kind == "request.decided":
        activity.put(ActivityRow.from_event(data))
    elif kind == "grant.created":
        grants.put(GrantView.from_json(data))
    elif kind in ("grant.revoked", "grant.expired"):
        grants.drop(str(data.get("id")))
    elif kind == "lockdown":
        return Applied(lockdown=bool(data.get("on")))
    elif kind == "resync":
        return Applied(resync=True)
    elif kind == "channel.failed" and (data.get("final") or data.get("attempt") == 1):
        what = "could not be reached" if data.get("final") else "failed, retrying"
        notice = f"Channel {data.get('channel')} {what}: {data.get('error')}"
        return Applied(notice=notice, error=True)
    elif kind == "policy.reloaded":
        return Applied(notice=f"Policy reloaded: {data.get('rules', '?')} rules.")
    elif kind == "policy.rejected":
        notice = "A policy change was refused; the running policy is unchanged."
        return Applied(notice=notice, error=True)
    return Applied(parts)
