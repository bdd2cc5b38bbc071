"""The Slack channel: each hold becomes a message with Approve and Deny; an approver decides.

Only slack-sdk's async clients are used (the Web API over aiohttp, Socket Mode over aiohttp), so
nothing blocks the event loop, and every network step is bounded by `timeout`.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.socket_mode.aiohttp import SocketModeClient
from slack_sdk.socket_mode.async_client import AsyncBaseSocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from policies.model import Channel
from proxy.channels import slack_blocks as kit
from proxy.channels.base import (
    HOLD_CREATED,
    ChannelError,
    Decide,
    Notice,
    channel_label,
    decided_by,
    resolve_secret,
)
from proxy.channels.slack_errors import slack_failure
from proxy.holds import HoldAlreadyDecided, HoldError, HoldNotFound
from proxy.outcomes import person

log = logging.getLogger(__name__)

DEFAULT_API_URL = "https://slack.com/api/"
TIMEOUT = 10.0  # seconds for one Web API call, the Socket Mode connection, or its hello
MAX_TRACKED = 10_000  # holds whose message is remembered; the oldest is forgotten past this
NOT_APPROVER = "You are not an approver for this Interlock channel, so nothing was decided."
GONE = (
    "This request is no longer waiting for a decision (decided, expired, or the proxy restarted)."
)
FollowUp = Callable[[], Awaitable[None]]  # an interaction's slow part, run after the ack
_live: set[SlackNotifier] = set()  # started notifiers: one app's connections share interactions


@dataclass
class _Posted:
    """A hold's message: where it is, and what it shows (never replaced by older news)."""

    channel: str
    ts: str
    shown: dict[str, Any]
    escalated: bool = False
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class SlackNotifier:
    """One `type: slack` channel of the policy."""

    def __init__(
        self,
        channel: Channel,
        *,
        decide: Decide,
        environ: Mapping[str, str] = os.environ,
        timeout: float = TIMEOUT,
    ) -> None:
        self.channel, self.decide, self.environ, self.timeout = channel, decide, environ, timeout
        settings = channel.settings
        self.mode = str(settings.get("mode") or "socket")
        self.api_url = str(settings.get("api_url") or DEFAULT_API_URL)
        approvers = settings.get("approvers")
        self.approvers = frozenset(
            map(str, approvers if isinstance(approvers, tuple | list) else ())
        )
        names = settings.get("approver_names")
        # Slack user -> the person's name elsewhere (their operator token), so a quorum counts
        # someone who approves in the dashboard and again in Slack only once.
        self.people = {str(k): str(v) for k, v in names.items()} if isinstance(names, dict) else {}
        self.signing_secret: str | None = None  # http mode, once started
        self._target = str(settings.get("channel") or "")
        self._channel_id = self._target if self._target[:1] in ("C", "G") else ""
        self._app_token = ""
        self._session: aiohttp.ClientSession | None = None
        self._web: AsyncWebClient | None = None
        self._socket: SocketModeClient | None = None
        self._posted: dict[str, _Posted] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def name(self) -> str:
        return self.channel.name

    @property
    def wants_links(self) -> bool:
        return False  # Slack has its own buttons

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Check the tokens with Slack and, in socket mode, connect; ChannelError if they fail."""
        if not self._target or not self.approvers:
            raise ChannelError(
                f"slack channel {self.name}: needs `channel` and `approvers`", retryable=False
            )
        bot_token = self._secret("bot_token")
        if self.mode == "socket":
            self._app_token = self._secret("app_token")
        else:
            self.signing_secret = self._secret("signing_secret")
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))
        self._web = AsyncWebClient(
            token=bot_token, base_url=self.api_url, session=self._session, retry_handlers=[]
        )
        try:
            await self._call("auth.test", self._web.auth_test())
            if self.mode == "socket":
                await self._connect(self._web)
        except BaseException:
            await self.close()
            raise
        _live.add(self)

    def _secret(self, key: str) -> str:
        try:
            return resolve_secret(self.channel.settings.get(key), self.environ)
        except ChannelError as exc:
            raise ChannelError(f"slack channel {self.name}: {key}: {exc}", retryable=False) from exc

    async def _connect(self, web: AsyncWebClient) -> None:
        client = SocketModeClient(app_token=self._app_token, web_client=web)
        self._socket = client
        hello = asyncio.Event()

        async def on_message(_: Any, message: dict[str, Any], raw: str | None) -> None:
            if message.get("type") == "hello":
                hello.set()

        client.message_listeners.append(on_message)
        client.socket_mode_request_listeners.append(self._on_envelope)
        opened = await self._call(
            "apps.connections.open", web.apps_connections_open(app_token=self._app_token)
        )
        client.wss_uri = str(opened["url"])
        try:
            await asyncio.wait_for(client.connect(), self.timeout)  # type: ignore[no-untyped-call]
            await asyncio.wait_for(hello.wait(), self.timeout)
        except TimeoutError:
            raise ChannelError(
                f"slack channel {self.name}: Socket Mode did not connect within {self.timeout:g} s"
            ) from None

    async def close(self) -> None:
        _live.discard(self)
        if self._tasks:  # decisions under way get a moment to be recorded and answered
            await asyncio.wait(list(self._tasks), timeout=1.0)
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
        client, self._socket = self._socket, None
        if client is not None:
            await client.close()  # type: ignore[no-untyped-call]
            loops = [
                client.message_processor,
                client.current_session_monitor,
                client.message_receiver,
            ]
            await asyncio.gather(*(f for f in loops if f is not None), return_exceptions=True)
        session, self._session, self._web = self._session, None, None
        if session is not None:
            await session.close()

    # -- notices ------------------------------------------------------------------------------

    async def send(self, notice: Notice) -> None:
        """One attempt: post the hold's message, or update it; ChannelError on failure.

        A vote or outcome for a hold whose message was never posted changes nothing: this
        channel never showed that hold, so there is nothing to correct.
        """
        web = self._started()
        posted = self._posted.get(notice.hold_id)
        if notice.event == HOLD_CREATED and posted is None:
            message = kit.hold_message(notice.hold, escalated=notice.escalated)
            answer = await self._call(
                "chat.postMessage",
                web.chat_postMessage(
                    channel=self._target,
                    text=message.text,
                    blocks=message.blocks,
                    unfurl_links=False,
                    unfurl_media=False,
                ),
            )
            self._channel_id = str(answer["channel"])
            shown = dict(notice.hold)
            posted = _Posted(self._channel_id, str(answer["ts"]), shown, notice.escalated)
            self._remember(notice.hold_id, posted)
            return
        if posted is not None and notice.escalated:
            posted.escalated = True
        await self._show(notice.hold_id, notice.hold)

    async def _show(self, hold_id: str, hold: Mapping[str, Any]) -> None:
        """Update the message to `hold`, unless it already shows something later."""
        posted = self._posted.get(hold_id)
        if posted is None:
            return
        async with posted.lock:
            if _progress(hold) < _progress(posted.shown):
                return
            message = kit.hold_message(hold, escalated=posted.escalated)
            await self._call(
                "chat.update",
                self._started().chat_update(
                    channel=posted.channel, ts=posted.ts, text=message.text, blocks=message.blocks
                ),
            )
            posted.shown = dict(hold)
            if hold.get("state") != "pending":
                self._posted.pop(hold_id, None)

    def _remember(self, hold_id: str, posted: _Posted) -> None:
        self._posted[hold_id] = posted
        while len(self._posted) > MAX_TRACKED:
            del self._posted[next(iter(self._posted))]

    def _started(self) -> AsyncWebClient:
        if self._web is None:
            raise ChannelError(f"slack channel {self.name} is not started")
        return self._web

    async def _call(self, method: str, call: Awaitable[AsyncSlackResponse]) -> AsyncSlackResponse:
        try:
            return await asyncio.wait_for(call, self.timeout)
        except SlackApiError as exc:
            raise slack_failure(self.name, method, exc) from exc
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            detail = str(exc) or type(exc).__name__
            raise ChannelError(f"slack channel {self.name}: {method} failed: {detail}") from exc

    # -- interactions -------------------------------------------------------------------------

    async def _on_envelope(
        self, client: AsyncBaseSocketModeClient, request: SocketModeRequest
    ) -> None:
        """Acknowledge at once (Slack allows 3 s), then do the slow part in the background."""
        owner, ack, follow_up = None, None, None
        if request.type == "interactive":
            owner = route(request.payload, [n for n in _live if n._app_token == self._app_token])
            if owner is not None:
                ack, follow_up = owner.accept(request.payload)
        try:
            await client.send_socket_mode_response(SocketModeResponse(request.envelope_id, ack))
        except Exception as exc:  # unacknowledged, Slack delivers it again: do not act twice
            log.warning(
                "interlock: slack %s: could not acknowledge an interaction: %r", self.name, exc
            )
            return
        if owner is not None and follow_up is not None:
            owner.spawn(follow_up)

    def claims(self, payload: Mapping[str, Any]) -> int:
        """How surely an interaction belongs here: 2 for this channel's hold, 1 for its channel."""
        if payload.get("type") == "view_submission":
            return 2 if kit.metadata(payload).get("notifier") == self.name else 0
        action = kit.clicked(payload)
        channel, _ = kit.message_ref(payload)
        if action is not None and str(action.get("value")) in self._posted:
            return 2
        return 1 if channel and channel in (self._channel_id, self._target) else 0

    def accept(self, payload: Mapping[str, Any]) -> tuple[dict[str, Any] | None, FollowUp | None]:
        """The acknowledgement's payload (a modal's errors) and the work to do after it."""
        user = str((payload.get("user") or {}).get("id") or "")
        if payload.get("type") == "view_submission":
            meta = kit.metadata(payload)
            if (payload.get("view") or {}).get("callback_id") != kit.DENY_CALLBACK or not meta:
                return None, None
            if user not in self.approvers:
                return kit.reason_error(NOT_APPROVER), None
            reason = kit.deny_reason(payload["view"])
            if not reason:
                return kit.reason_error("Say why, so the agent knows what to do instead."), None
            return None, partial(
                self._decide_as, meta.get("hold", ""), user, meta.get("channel", ""), False, reason
            )
        action = kit.clicked(payload)
        if payload.get("type") != "block_actions" or action is None:
            return None, None
        hold_id, (channel, ts) = str(action.get("value") or ""), kit.message_ref(payload)
        if user not in self.approvers:
            return None, partial(self._ephemeral, channel, user, NOT_APPROVER)
        if action.get("action_id") == kit.APPROVE_ACTION:
            return None, partial(self._decide_as, hold_id, user, channel, True, None)
        trigger = str(payload.get("trigger_id") or "")
        return None, partial(self._ask_reason, trigger, hold_id, user, channel, ts)

    def interaction(self, payload: Mapping[str, Any]) -> dict[str, Any] | None:
        """Accept an interaction and start its follow-up; the acknowledgement's payload."""
        ack, follow_up = self.accept(payload)
        if follow_up is not None:
            self.spawn(follow_up)
        return ack

    def spawn(self, follow_up: FollowUp) -> None:
        async def run() -> None:
            try:
                await follow_up()
            except Exception:
                log.exception("interlock: slack %s: an interaction failed", self.name)

        task = asyncio.create_task(run(), name=f"interlock: slack {self.name} interaction")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _ask_reason(
        self, trigger: str, hold_id: str, user: str, channel: str, ts: str
    ) -> None:
        posted = self._posted.get(hold_id)
        meta = {"notifier": self.name, "hold": hold_id, "channel": channel, "ts": ts}
        view = kit.deny_modal(posted.shown if posted else None, meta)
        try:
            await self._call(
                "views.open", self._started().views_open(trigger_id=trigger, view=view)
            )
        except ChannelError as exc:
            log.warning("interlock: %s", exc)
            await self._ephemeral(
                channel, user, "Slack did not open the Deny form in time; click Deny again."
            )

    async def _decide_as(
        self, hold_id: str, user: str, channel: str, approve: bool, reason: str | None
    ) -> None:
        try:
            by, label = decided_by("slack", user), channel_label("slack", self.name)
            people = [person(self.people[user])] if user in self.people else []
            result = await self.decide(
                hold_id, approve=approve, by=by, channel=label, reason=reason, people=people
            )
        except HoldAlreadyDecided as exc:
            await self._ephemeral(channel, user, f"Not recorded: {exc}.")
            earlier = getattr(exc, "hold", None)  # the outcome, when the queue attaches it
            if isinstance(earlier, dict):
                await self._show_quietly(hold_id, earlier)
            return
        except HoldNotFound:
            await self._ephemeral(channel, user, GONE)
            return
        except HoldError as exc:
            await self._ephemeral(channel, user, f"Not recorded: {exc}")
            return
        except Exception:
            log.exception("interlock: slack %s: deciding hold %s failed", self.name, hold_id)
            await self._ephemeral(
                channel,
                user,
                "Interlock could not record this decision; try again, or use the dashboard.",
            )
            return
        to_json = getattr(result, "to_json", None)
        if callable(to_json):
            await self._show_quietly(hold_id, to_json())

    async def _show_quietly(self, hold_id: str, hold: Mapping[str, Any]) -> None:
        try:
            await self._show(hold_id, hold)
        except ChannelError as exc:  # the hub's own notice of this change updates it again
            log.warning("interlock: %s", exc)

    async def _ephemeral(self, channel: str, user: str, text: str) -> None:
        """A message only `user` sees, in the channel they clicked in."""
        if not channel or not user or self._web is None:
            return
        try:
            call = self._web.chat_postEphemeral(channel=channel, user=user, text=text)
            await self._call("chat.postEphemeral", call)
        except ChannelError as exc:
            log.warning("interlock: %s", exc)


def route(payload: Mapping[str, Any], notifiers: Iterable[SlackNotifier]) -> SlackNotifier | None:
    """The notifier an interaction belongs to, so its approvers (not another channel's) decide."""
    best, score = None, 0
    for notifier in notifiers:
        claim = notifier.claims(payload)
        if claim > score:
            best, score = notifier, claim
    return best


def _progress(hold: Mapping[str, Any]) -> tuple[bool, int]:
    return hold.get("state", "pending") != "pending", len(hold.get("votes") or ())
