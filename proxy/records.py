"""What one audit row holds. The gate fills it; the audit store persists it, append-only."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any


class Kind:
    """Row kinds. A request's history is its rows in order: `request` first, then maybe `vote`,
    `hold` (the final outcome of a hold) and `completion` (the upstream's answer)."""

    REQUEST = "request"
    VOTE = "vote"
    HOLD = "hold"
    COMPLETION = "completion"
    LOCKDOWN = "lockdown"
    GRANT = "grant"
    POLICY = "policy"
    CHANNEL = "channel"  # a remote channel told (or failed to tell) about a hold
    LINK = "link"  # an operator made a signed link for someone to decide a hold


@dataclass(frozen=True, slots=True)
class AuditRecord:
    kind: str
    request_id: str
    at: float = field(default_factory=time.time)
    agent: str | None = None
    client: str | None = None
    method: str | None = None
    scheme: str | None = None
    host: str | None = None
    port: int | None = None
    path: str | None = None
    query: str | None = None  # redacted
    headers: tuple[tuple[str, str], ...] = ()  # redacted
    body_size: int | None = None
    body_sha256: str | None = None
    body_preview: str | None = None  # redacted
    rule: str | None = None
    action: str | None = None
    outcome: str | None = None
    decided_by: str | None = None
    channel: str | None = None
    reason: str | None = None
    hold_id: str | None = None
    held_ms: int | None = None
    status: int | None = None
    response_size: int | None = None
    duration_ms: int | None = None
    policy_digest: str | None = None
    detail: dict[str, Any] | None = None
