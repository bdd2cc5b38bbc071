"""A typed httpx client of the control API, used by the CLI (and anything else that operates)."""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, NamedTuple, TypeVar
from urllib.parse import quote

import httpx

from proxy.datadir import DataDir, read_api_json, resolve_data_dir

T = TypeVar("T")

DEFAULT_TIMEOUT = 10.0


class ApiError(Exception):
    """The API answered with an error (`status` is its HTTP status), or could not be asked."""

    def __init__(self, status: int, message: str, body: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.body = body or {}


class ApiUnreachable(ApiError):
    """No answer at all: no address known, connection refused, TLS failure or timeout."""

    def __init__(self, message: str) -> None:
        super().__init__(0, message)


class ClientConfigError(ValueError):
    """The client cannot be set up: no address or token known."""


@dataclass(frozen=True, slots=True)
class DecisionResult:
    """What an approve or deny did: a final decision, or one vote of a quorum."""

    final: bool
    hold: dict[str, Any]
    votes: int
    needed: int


@dataclass(frozen=True, slots=True)
class RequestPage:
    requests: list[dict[str, Any]]
    next: int | None  # pass as `before` for the next (older) page


class ServerEvent(NamedTuple):
    id: str | None
    event: str
    data: Any


class ApiClient:
    """One operator's connection to the control API: `async with` it, or call `run_sync`."""

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        channel: str = "cli",
        timeout: float = DEFAULT_TIMEOUT,
        verify: ssl.SSLContext | bool = True,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.channel = channel
        self.timeout = timeout
        self.verify = verify
        self._http: httpx.AsyncClient | None = None

    @classmethod
    def from_data_dir(
        cls,
        data_dir: str | Path | None,
        api: str | None = None,
        token: str | None = None,
        *,
        channel: str = "cli",
    ) -> ApiClient:
        """A client for the proxy of `data_dir`; `api.json` and `operator.token` fill the gaps."""
        d = DataDir(resolve_data_dir(data_dir))
        if not api:
            info = read_api_json(d)
            api = info.get("url") if info else None
            if not isinstance(api, str) or not api:
                raise ClientConfigError(
                    f"no control API address: {d.api_json} is missing or unreadable "
                    "(is `interlock run` running with this data dir?); pass --api URL"
                )
        if not token:
            try:
                token = d.operator_token.read_text().strip()
            except OSError as exc:
                raise ClientConfigError(
                    f"no operator token: cannot read {d.operator_token} ({exc.strerror}); "
                    "pass --token"
                ) from None
            if not token:
                raise ClientConfigError(f"no operator token: {d.operator_token} is empty")
        return cls(api, token, channel=channel)

    # -- plumbing -------------------------------------------------------------------------------

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = httpx.AsyncClient(
                base_url=self.base_url,
                headers={
                    "Authorization": f"Bearer {self.token}",
                    "X-Interlock-Channel": self.channel,
                },
                timeout=self.timeout,
                verify=self.verify,
            )
        return self._http

    async def aclose(self) -> None:
        if self._http is not None:
            http, self._http = self._http, None
            await http.aclose()

    async def __aenter__(self) -> ApiClient:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    def run_sync(self, call: Callable[[ApiClient], Awaitable[T]]) -> T:
        """Run `call(self)` from synchronous code: `client.run_sync(lambda c: c.holds())`."""

        async def main() -> T:
            try:
                return await call(self)
            finally:
                await self.aclose()

        return asyncio.run(main())

    async def _request(
        self, method: str, path: str, *, json_body: Any = None, params: Any = None
    ) -> tuple[int, Any]:
        try:
            response = await self._client().request(method, path, json=json_body, params=params)
        except httpx.HTTPError as exc:
            raise ApiUnreachable(self._unreachable(exc)) from exc
        try:
            body = response.json()
        except ValueError:
            body = {"detail": response.text}
        if response.is_error:
            raise _api_error(response.status_code, body)
        return response.status_code, body

    def _unreachable(self, exc: Exception) -> str:
        why = str(exc) or type(exc).__name__
        return f"cannot reach the Interlock control API at {self.base_url}: {why}"

    # -- holds ----------------------------------------------------------------------------------

    async def holds(self) -> list[dict[str, Any]]:
        _, body = await self._request("GET", "/v1/holds")
        holds: list[dict[str, Any]] = body["holds"]
        return holds

    async def hold(self, hold_id: str) -> dict[str, Any]:
        _, body = await self._request("GET", f"/v1/holds/{quote(hold_id, safe='')}")
        hold: dict[str, Any] = body
        return hold

    async def approve(
        self, hold_id: str, reason: str | None = None, grant: dict[str, Any] | None = None
    ) -> DecisionResult:
        """Approve; with `grant` ({scope, duration, pattern?, all_agents?}) also remember it."""
        return await self._decide(hold_id, "approve", reason, grant)

    async def deny(self, hold_id: str, reason: str) -> DecisionResult:
        return await self._decide(hold_id, "deny", reason)

    async def _decide(
        self, hold_id: str, verb: str, reason: str | None, grant: dict[str, Any] | None = None
    ) -> DecisionResult:
        path = f"/v1/holds/{quote(hold_id, safe='')}/{verb}"
        body_in: dict[str, Any] = {"reason": reason} if reason is not None else {}
        if grant is not None:
            body_in["grant"] = grant
        status, body = await self._request("POST", path, json_body=body_in)
        if status == 202:
            return DecisionResult(False, body["hold"], body["votes"], body["needed"])
        votes = len(body.get("votes", []))
        return DecisionResult(True, body, votes, body.get("approvals_needed", 1))

    async def link(self, hold_id: str, audience: str) -> dict[str, Any]:
        """Signed links (review, approve, deny, expires_at) for `audience` to decide a hold."""
        path = f"/v1/holds/{quote(hold_id, safe='')}/link"
        _, body = await self._request("POST", path, json_body={"for": audience})
        links: dict[str, Any] = body
        return links

    # -- grants -------------------------------------------------------------------------------

    async def grants(self) -> list[dict[str, Any]]:
        _, body = await self._request("GET", "/v1/grants")
        grants: list[dict[str, Any]] = body["grants"]
        return grants

    async def revoke_grant(self, grant_id: str) -> dict[str, Any]:
        _, body = await self._request("DELETE", f"/v1/grants/{quote(grant_id, safe='')}")
        grant: dict[str, Any] = body
        return grant

    # -- lockdown, policy, health ---------------------------------------------------------------

    async def lockdown(self) -> dict[str, Any]:
        _, body = await self._request("GET", "/v1/lockdown")
        state: dict[str, Any] = body
        return state

    async def set_lockdown(self, on: bool, reason: str | None = None) -> dict[str, Any]:
        payload: dict[str, Any] = {"on": on} | ({"reason": reason} if reason else {})
        _, body = await self._request("POST", "/v1/lockdown", json_body=payload)
        state: dict[str, Any] = body
        return state

    async def reload_policy(self) -> dict[str, Any]:
        _, body = await self._request("POST", "/v1/policy/reload")
        result: dict[str, Any] = body
        return result

    async def health(self) -> dict[str, Any]:
        _, body = await self._request("GET", "/healthz")
        health: dict[str, Any] = body
        return health

    # -- audit log ------------------------------------------------------------------------------

    async def requests(
        self,
        *,
        since: str | float | None = None,
        until: str | float | None = None,
        agent: str | None = None,
        host: str | None = None,
        outcome: str | None = None,
        rule: str | None = None,
        limit: int | None = None,
        before: int | None = None,
    ) -> RequestPage:
        """One page of the audit log, newest first; `since`/`until` take epoch seconds or `2h`."""
        filters = {
            "since": since, "until": until, "agent": agent, "host": host,
            "outcome": outcome, "rule": rule, "limit": limit, "before": before,
        }  # fmt: skip
        params = {k: str(v) for k, v in filters.items() if v is not None}
        _, body = await self._request("GET", "/v1/requests", params=params)
        return RequestPage(body["requests"], body["next"])

    async def rule_stats(self, rule: str) -> dict[str, Any]:
        """How `rule`'s holds ended: approved, denied and expired counts, last decision time."""
        _, body = await self._request("GET", f"/v1/rules/{quote(rule, safe='')}/stats")
        stats: dict[str, Any] = body
        return stats

    async def trail(self, request_id: str) -> list[dict[str, Any]]:
        _, body = await self._request("GET", f"/v1/requests/{quote(request_id, safe='')}")
        trail: list[dict[str, Any]] = body["trail"]
        return trail

    # -- events ---------------------------------------------------------------------------------

    async def events(
        self, last_event_id: str | None = None, *, on_open: Callable[[], None] | None = None
    ) -> AsyncIterator[ServerEvent]:
        """Server-sent events until the server ends the stream; resume with the last id seen.

        `on_open` is called once the server has accepted the stream, before any event.
        """
        headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
        timeout = httpx.Timeout(self.timeout, read=None)
        try:
            async with self._client().stream(
                "GET", "/v1/events", headers=headers, timeout=timeout
            ) as response:
                if response.is_error:
                    await response.aread()
                    raise _api_error(response.status_code, _json_or_text(response.text))
                if on_open is not None:
                    on_open()
                async for event in _parse_sse(response.aiter_lines()):
                    yield event
        except httpx.HTTPError as exc:
            raise ApiUnreachable(self._unreachable(exc)) from exc


async def _parse_sse(lines: AsyncIterator[str]) -> AsyncIterator[ServerEvent]:
    event_id: str | None = None
    event_type, data = "message", list[str]()
    async for line in lines:
        if not line:
            if data:
                yield ServerEvent(event_id, event_type, _json_or_raw("\n".join(data)))
            event_type, data = "message", []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "id":
            event_id = value
        elif name == "event":
            event_type = value
        elif name == "data":
            data.append(value)


def _json_or_raw(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def _json_or_text(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return {"detail": text}


def _api_error(status: int, body: Any) -> ApiError:
    if not isinstance(body, dict):
        body = {"detail": str(body)}
    message = str(body.get("detail") or body.get("error") or f"HTTP {status}")
    return ApiError(status, message, body)
