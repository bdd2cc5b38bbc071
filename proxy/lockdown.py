"""The kill switch: while on, the gate refuses every new request at once."""

from __future__ import annotations

import secrets
import time
from typing import Any

from proxy.events import EventBus
from proxy.holds import AuditWriter
from proxy.records import AuditRecord, Kind


class Lockdown:
    def __init__(self, audit: AuditWriter, events: EventBus) -> None:
        self.audit = audit
        self.events = events
        self.on = False
        self.changed_by: str | None = None
        self.changed_at: float | None = None
        self.reason: str | None = None

    async def set(self, on: bool, by: str, channel: str, reason: str | None = None) -> None:
        """Switch lockdown; the change is in the audit log before it takes effect."""
        await self.audit.append(
            AuditRecord(
                kind=Kind.LOCKDOWN,
                request_id=f"lockdown_{secrets.token_hex(6)}",
                action="lockdown" if on else "release",
                outcome="on" if on else "off",
                decided_by=by,
                channel=channel,
                reason=reason,
            )
        )
        self.on, self.changed_by, self.changed_at, self.reason = on, by, time.time(), reason
        self.events.publish("lockdown", self.to_json())

    def to_json(self) -> dict[str, Any]:
        return {"on": self.on, "by": self.changed_by, "at": self.changed_at, "reason": self.reason}
