"""A fixed, in-memory control API for snapshot and failure tests (no server, frozen clock)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

from proxy.client import ApiError, ServerEvent
from tui.models import (
    ActivityFilter,
    ActivityRow,
    Decided,
    GrantChoice,
    GrantView,
    HoldView,
    RuleStats,
)

FROZEN = 1_767_268_800.0  # 2026-01-01 12:00:00 UTC


def hold(n: int, **overrides: Any) -> HoldView:
    data: dict[str, Any] = {
        "id": f"h_00000000000{n}", "request_id": f"r_000000000000000{n}", "state": "pending",
        "agent": "coder", "client": "10.0.0.7:51234", "method": "POST",
        "url": f"https://api.github.com/repos/acme/web/pulls/{n}/merge",
        "host": "api.github.com", "path": f"/repos/acme/web/pulls/{n}/merge", "query": "",
        "headers": [["Accept", "application/vnd.github+json"], ["Authorization", "[REDACTED]"],
                    ["Content-Type", "application/json"]],
        "body_size": 64, "body_preview": '{"merge_method":"squash","commit_title":"Ship it"}',
        "rule": "github-merge", "reason": "Merging to main needs a person.", "severity": "high",
        "reasons": ["Not now", "Wrong branch", "Open a PR instead"], "approvals_needed": 1,
        "votes": [], "created_at": FROZEN - 60 * (4 - n), "deadline": FROZEN + 240 + 60 * n,
        "decided_by": None, "channel": None, "decision_reason": None, "client_gone": False,
        "proposed_pattern": "/repos/acme/web/pulls/*/merge", "grantable": True,
        "host_grant_allowed": True,
    }  # fmt: skip
    data.update(overrides)
    return HoldView.from_json(data)


def three_holds() -> list[HoldView]:
    return [
        hold(1),
        hold(2, agent="researcher", method="DELETE", host="api.stripe.com",
             url="https://api.stripe.com/v1/customers/cus_9f8e7d", path="/v1/customers/cus_9f8e7d",
             rule="stripe-delete", severity="critical", body_size=0, body_preview=None,
             client_gone=True, approvals_needed=2, grantable=False, host_grant_allowed=False,
             reasons=[]),
        hold(3, method="PUT", path="/repos/acme/web/contents/README.md",
             url="https://api.github.com/repos/acme/web/contents/README.md", rule="github-write",
             severity="medium", body_size=9000, body_preview='{"message":"docs"' + "…[truncated]"),
    ]  # fmt: skip


def two_grants() -> list[GrantView]:
    base: dict[str, Any] = {
        "rule": "github-merge", "method": "POST", "host": "api.github.com", "port": 443,
        "created_by": "person:alice", "created_at": FROZEN - 3600, "uses": 3, "scope": "endpoint",
        "pattern": "/repos/acme/web/pulls/*/merge", "agents": ["coder"],
        "expires_at": FROZEN + 1800,
    }  # fmt: skip
    return [
        GrantView.from_json(base | {"id": "g_0000000000a1"}),
        GrantView.from_json(base | {"id": "g_0000000000b2", "scope": "host", "pattern": None,
                                    "agents": None, "expires_at": None, "uses": 41,
                                    "rule": "docs-read", "created_by": "person:bob"}),
    ]  # fmt: skip


class FakeBackend:
    """Answers from fixed data; `fail_decisions` makes approve/deny raise like a dead API."""

    address = "http://fake-interlock:8081"

    def __init__(
        self,
        holds: list[HoldView] | None = None,
        grants: list[GrantView] | None = None,
        stats: RuleStats | None = None,
    ) -> None:
        self._holds = list(holds or [])
        self._grants = list(grants or [])
        self.stats = stats or RuleStats("github-merge", 12, 1, 0, FROZEN - 2 * 3600)
        self.fail_decisions: ApiError | None = None
        self.decisions: list[tuple[str, str, str | None, GrantChoice | None]] = []
        self._forever = asyncio.Event()

    async def holds(self) -> list[HoldView]:
        return list(self._holds)

    async def grants(self) -> list[GrantView]:
        return list(self._grants)

    async def lockdown(self) -> bool:
        return False

    async def set_lockdown(self, on: bool, reason: str | None) -> bool:
        return on

    async def approve(
        self, hold_id: str, reason: str | None = None, grant: GrantChoice | None = None
    ) -> Decided:
        return self._decide(hold_id, "approve", reason, grant)

    async def deny(self, hold_id: str, reason: str) -> Decided:
        return self._decide(hold_id, "deny", reason, None)

    def _decide(
        self, hold_id: str, verb: str, reason: str | None, grant: GrantChoice | None
    ) -> Decided:
        if self.fail_decisions is not None:
            raise self.fail_decisions
        self.decisions.append((hold_id, verb, reason, grant))
        return Decided(True, 1, 1)

    async def revoke_grant(self, grant_id: str) -> GrantView:
        (grant,) = [g for g in self._grants if g.id == grant_id]
        return grant

    async def rule_stats(self, rule: str) -> RuleStats:
        return self.stats

    async def activity(self, where: ActivityFilter, limit: int) -> list[ActivityRow]:
        return []

    async def trail(self, request_id: str) -> list[dict[str, Any]]:
        return []

    async def events(
        self, last_event_id: str | None, on_open: Callable[[], None]
    ) -> AsyncIterator[ServerEvent]:
        on_open()
        await self._forever.wait()
        return
        yield  # an async generator that never yields

    async def aclose(self) -> None:
        pass
