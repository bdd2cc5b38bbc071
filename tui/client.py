"""What the dashboard asks of the control API, as typed values; `ApiBackend` asks over HTTP.

The only part of `proxy` the dashboard uses is its httpx client (`proxy.client`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol

from proxy.client import ApiClient, ApiError, ApiUnreachable, ServerEvent
from tui.models import (
    ActivityFilter,
    ActivityRow,
    Decided,
    GrantChoice,
    GrantView,
    HoldView,
    RuleStats,
)

__all__ = ["ApiBackend", "ApiError", "ApiUnreachable", "Backend", "ServerEvent"]


class Backend(Protocol):
    """The control API as the dashboard sees it. Failures raise `ApiError` (or `ApiUnreachable`)."""

    @property
    def address(self) -> str: ...

    async def holds(self) -> list[HoldView]: ...

    async def grants(self) -> list[GrantView]: ...

    async def lockdown(self) -> bool: ...

    async def set_lockdown(self, on: bool, reason: str | None) -> bool: ...

    async def approve(
        self, hold_id: str, reason: str | None = None, grant: GrantChoice | None = None
    ) -> Decided: ...

    async def deny(self, hold_id: str, reason: str) -> Decided: ...

    async def revoke_grant(self, grant_id: str) -> GrantView: ...

    async def rule_stats(self, rule: str) -> RuleStats: ...

    async def activity(self, where: ActivityFilter, limit: int) -> list[ActivityRow]: ...

    async def trail(self, request_id: str) -> list[dict[str, Any]]: ...

    def events(
        self, last_event_id: str | None, on_open: Callable[[], None]
    ) -> AsyncIterator[ServerEvent]: ...

    async def aclose(self) -> None: ...


class ApiBackend:
    """`Backend` over HTTP, through the typed `ApiClient`."""

    def __init__(self, client: ApiClient) -> None:
        self.client = client

    @property
    def address(self) -> str:
        return self.client.base_url

    async def holds(self) -> list[HoldView]:
        return [HoldView.from_json(h) for h in await self.client.holds()]

    async def grants(self) -> list[GrantView]:
        return [GrantView.from_json(g) for g in await self.client.grants()]

    async def lockdown(self) -> bool:
        return bool((await self.client.lockdown()).get("on"))

    async def set_lockdown(self, on: bool, reason: str | None) -> bool:
        return bool((await self.client.set_lockdown(on, reason)).get("on"))

    async def approve(
        self, hold_id: str, reason: str | None = None, grant: GrantChoice | None = None
    ) -> Decided:
        result = await self.client.approve(hold_id, reason, grant.to_json() if grant else None)
        made = result.hold.get("grant")
        return Decided(
            result.final,
            result.votes,
            result.needed,
            GrantView.from_json(made) if isinstance(made, dict) else None,
        )

    async def deny(self, hold_id: str, reason: str) -> Decided:
        result = await self.client.deny(hold_id, reason)
        return Decided(result.final, result.votes, result.needed)

    async def revoke_grant(self, grant_id: str) -> GrantView:
        return GrantView.from_json(await self.client.revoke_grant(grant_id))

    async def rule_stats(self, rule: str) -> RuleStats:
        return RuleStats.from_json(await self.client.rule_stats(rule))

    async def activity(self, where: ActivityFilter, limit: int) -> list[ActivityRow]:
        """Recent requests, oldest first; the server filters on exact agent/host/outcome/rule."""
        outcome = "pending" if where.outcome == "held" else where.outcome
        page = await self.client.requests(
            agent=where.agent, host=where.host, outcome=outcome, rule=where.rule, limit=limit
        )
        return [ActivityRow.from_audit(row) for row in reversed(page.requests)]

    async def trail(self, request_id: str) -> list[dict[str, Any]]:
        return await self.client.trail(request_id)

    def events(
        self, last_event_id: str | None, on_open: Callable[[], None]
    ) -> AsyncIterator[ServerEvent]:
        return self.client.events(last_event_id, on_open=on_open)

    async def aclose(self) -> None:
        await self.client.aclose()
