"""The channel hub: tells remote channels about holds, retries what fails, and reports it.

A channel that is down never blocks a hold or the proxy: deliveries run in their own tasks, each
failure is an event (`channel.failed`), an audit row and a status on the hold, and the hold stays
pending on the other channels until someone decides or the deadline passes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from policies.model import Channel
from proxy.channels.base import (
    HOLD_CREATED,
    HOLD_DECIDED,
    HOLD_EXPIRED,
    HOLD_VOTE,
    ChannelError,
    Links,
    Notice,
    Notifier,
)
from proxy.events import Event, EventBus
from proxy.holds import AuditWriter, Hold, HoldQueue
from proxy.records import AuditRecord, Kind

log = logging.getLogger(__name__)

BACKOFF = (1.0, 2.0, 4.0, 8.0, 16.0, 32.0)  # seconds before each retry of a failed delivery
MAX_RETRY_AFTER = 300.0  # a service asking for a longer pause is retried after this
SEND_TIMEOUT = 15.0  # one attempt, including starting the channel
STOP_GRACE = 3.0  # at shutdown, time left for the last notices (holds expired by the shutdown)
FOLLOWED = (HOLD_CREATED, HOLD_VOTE, HOLD_DECIDED, HOLD_EXPIRED)


class LinkMinter(Protocol):
    def mint(self, hold_id: str, *, audience: str, channel: str, expires_at: float) -> Links: ...


BuildNotifier = Callable[[Channel], Notifier]


@dataclass
class _Running:
    channel: Channel
    notifier: Notifier
    started: bool = False
    start_lock: asyncio.Lock | None = None


class ChannelHub:
    """Follows hold events: `notify` channels at creation, `escalate` ones after their delay,
    and every later event (vote, decided, expired) to each channel that was told."""

    def __init__(
        self,
        holds: HoldQueue,
        events: EventBus,
        audit: AuditWriter,
        *,
        build: BuildNotifier,
        links: LinkMinter | None = None,
        backoff: Sequence[float] = BACKOFF,
        send_timeout: float = SEND_TIMEOUT,
    ) -> None:
        self.holds, self.events, self.audit = holds, events, audit
        self.build, self.links = build, links
        self.backoff, self.send_timeout = tuple(backoff), send_timeout
        self._running: dict[str, _Running] = {}
        self._told: dict[str, set[str]] = {}  # hold id -> channels told about it
        self._timers: dict[str, list[asyncio.TimerHandle]] = {}
        self._chains: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._follow: asyncio.Task[None] | None = None

    # -- lifecycle ----------------------------------------------------------------------------

    def notifiers(self) -> list[Notifier]:
        return [running.notifier for running in self._running.values()]

    async def configure(self, channels: Mapping[str, Channel]) -> None:
        """Match the running channels to the policy's; unchanged ones keep their connections.

        Channels start on first use (and are retried like any delivery), so a channel that is
        down at start or reload delays nothing.
        """
        for name, running in list(self._running.items()):
            wanted = channels.get(name)
            if wanted is None or _identity(wanted) != _identity(running.channel):
                del self._running[name]
                await self._close(running)
        for name, channel in channels.items():
            if name not in self._running:
                try:
                    notifier = self.build(channel)
                except Exception as exc:  # a channel that cannot even be built is reported
                    log.error("interlock: channel %s cannot be set up: %s", name, exc)
                    self.events.publish("channel.failed", {"channel": name, "error": str(exc)})
                    continue
                self._running[name] = _Running(channel, notifier, start_lock=asyncio.Lock())
                # Started now, not on first use: Slack must listen for clicks on messages posted
                # before a restart or reload. A failure here is reported; delivery retries it.
                self._spawn(self._start_early(name), f"channel {name} start")

    def start(self) -> None:
        """Follow the event bus (call once, before holds can be created)."""
        self._follow = asyncio.create_task(
            self._follow_events(self.events.last_id), name="interlock: channels"
        )

    async def stop(self, grace: float = STOP_GRACE) -> None:
        """Give in-flight notices (the holds the shutdown expired) a moment, then close channels."""
        await asyncio.sleep(0)  # let the follower pick up events published just before
        for timers in self._timers.values():
            for timer in timers:
                timer.cancel()
        self._timers.clear()
        pending = [t for t in self._tasks if not t.done()]
        if pending:
            await asyncio.wait(pending, timeout=grace)
        for task in [*self._tasks, *([self._follow] if self._follow else [])]:
            task.cancel()
        self._follow = None
        for running in list(self._running.values()):
            await self._close(running)
        self._running.clear()

    async def _close(self, running: _Running) -> None:
        if running.started:
            try:
                await asyncio.wait_for(running.notifier.close(), 5)
            except Exception as exc:
                log.warning(
                    "interlock: channel %s did not close cleanly: %r", running.channel.name, exc
                )

    # -- following holds ----------------------------------------------------------------------

    async def _follow_events(self, last_id: int) -> None:
        while True:
            with self.events.subscribe() as queue:
                for missed in self.events.since(last_id) or []:  # what came while away
                    self._on_event(missed)
                    last_id = missed.id
                while (event := await queue.get()) is not None:
                    if event.id > last_id:
                        self._on_event(event)
                        last_id = event.id
            log.warning("interlock: the channel hub fell behind the event stream; resuming")

    def _on_event(self, event: Event) -> None:
        if event.type not in FOLLOWED:
            return
        try:
            hold_id = str(event.data["id"])
            if event.type == HOLD_CREATED:
                self._created(hold_id, event.data)
            else:
                self._later(hold_id, event.type, event.data)
        except Exception as exc:  # one bad event must not stop the follower
            log.error("interlock: channel hub could not handle %s: %r", event.type, exc)

    def _created(self, hold_id: str, data: dict[str, Any]) -> None:
        hold = self.holds.get(hold_id)
        if hold is None:
            return
        settings = hold.settings
        for name in settings.notify:
            self._tell(name, hold, Notice(HOLD_CREATED, data))
        loop = asyncio.get_running_loop()
        timers = []
        for escalation in settings.escalate:
            at = hold.created_at + escalation.after
            for name in escalation.notify:
                hold.channels.setdefault(name, {"state": "scheduled", "at": at})
            timers.append(
                loop.call_later(escalation.after, self._escalate, hold_id, escalation.notify)
            )
        if timers:
            self._timers[hold_id] = timers

    def _escalate(self, hold_id: str, names: tuple[str, ...]) -> None:
        hold = self.holds.get(hold_id)
        if hold is None or not hold.pending:
            return
        data = hold.to_json()
        for name in names:
            if name not in self._told.get(hold_id, ()):
                self._tell(name, hold, Notice(HOLD_CREATED, data, escalated=True))

    def _later(self, hold_id: str, event_type: str, data: dict[str, Any]) -> None:
        final = event_type in (HOLD_DECIDED, HOLD_EXPIRED)
        if final:
            for timer in self._timers.pop(hold_id, []):
                timer.cancel()
        hold = self.holds.get(hold_id)
        names = self._told.pop(hold_id, set()) if final else self._told.get(hold_id, set())
        for name in sorted(names):
            self._tell(name, hold, Notice(event_type, data))

    def _tell(self, name: str, hold: Hold | None, notice: Notice) -> None:
        """Queue one notice for one channel, after that channel's earlier notices of this hold."""
        if notice.event == HOLD_CREATED:
            self._told.setdefault(notice.hold_id, set()).add(name)
            notice = self._with_links(name, notice)
        key = (name, notice.hold_id)
        previous = self._chains.get(key)
        task = self._spawn(self._deliver(previous, name, hold, notice), f"channel {name}")
        self._chains[key] = task
        task.add_done_callback(
            lambda t: self._chains.pop(key, None) if self._chains.get(key) is t else None
        )

    def _with_links(self, name: str, notice: Notice) -> Notice:
        running = self._running.get(name)
        if self.links is None or running is None or not running.notifier.wants_links:
            return notice
        try:
            links = self.links.mint(notice.hold_id, audience=name, channel=name,
                                    expires_at=float(notice.hold["deadline"]))  # fmt: skip
        except Exception as exc:  # the channel is still told, without links
            log.error("interlock: no signed links for %s on hold %s: %s", name, notice.hold_id, exc)
            return notice
        return Notice(notice.event, notice.hold, links, notice.escalated)

    # -- delivering ---------------------------------------------------------------------------

    async def _deliver(
        self,
        previous: asyncio.Task[None] | None,
        name: str,
        hold: Hold | None,
        notice: Notice,
    ) -> None:
        if previous is not None:
            await asyncio.wait([previous])
        attempts = len(self.backoff) + 1
        for attempt in range(1, attempts + 1):
            if not notice.final and (hold is None or not hold.pending):
                return  # decided meanwhile: the final notice follows, this one no longer matters
            try:
                await asyncio.wait_for(self._send(name, notice), self.send_timeout)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                retryable = getattr(exc, "retryable", True)
                if isinstance(exc, TimeoutError):
                    exc = ChannelError(f"no answer within {self.send_timeout:g} s")
                last = not retryable or attempt == attempts
                await self._failed(name, hold, notice, exc, attempt, last)
                if last:
                    return
                retry_after = getattr(exc, "retry_after", None)
                delay = self.backoff[attempt - 1]
                if retry_after is not None:
                    delay = min(max(float(retry_after), 0.0), MAX_RETRY_AFTER)
                await asyncio.sleep(delay)
            else:
                await self._delivered(name, hold, notice, attempt)
                return

    async def _send(self, name: str, notice: Notice) -> None:
        running = await self._started(name)
        await running.notifier.send(notice)

    async def _started(self, name: str) -> _Running:
        running = self._running.get(name)
        if running is None:
            raise ChannelError(f"channel {name!r} is not configured in the policy in force",
                               retryable=False)  # fmt: skip
        if not running.started:
            assert running.start_lock is not None
            async with running.start_lock:
                if not running.started:
                    await running.notifier.start()
                    running.started = True
        return running

    async def _start_early(self, name: str) -> None:
        try:
            await asyncio.wait_for(self._started(name), self.send_timeout)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            error = str(exc) or type(exc).__name__
            log.warning("interlock: channel %s could not start: %s", name, error)
            self.events.publish(
                "channel.failed",
                {"channel": name, "hold_id": None, "event": "start", "error": error,
                 "attempt": 1, "final": not getattr(exc, "retryable", True)},
            )  # fmt: skip

    async def _delivered(self, name: str, hold: Hold | None, notice: Notice, attempt: int) -> None:
        status = {"state": "delivered", "event": notice.event, "at": time.time()}
        self._set_status(hold, name, status)
        self.events.publish(
            "channel.delivered",
            {"channel": name, "hold_id": notice.hold_id, "event": notice.event, "attempt": attempt},
        )
        await self._record(name, notice, "delivered", f"{notice.event} delivered", attempt)

    async def _failed(
        self,
        name: str,
        hold: Hold | None,
        notice: Notice,
        exc: BaseException,
        attempt: int,
        last: bool,
    ) -> None:
        error = str(exc) or type(exc).__name__
        state = "failed" if last else "retrying"
        log.warning("interlock: channel %s: %s of hold %s %s: %s", name, notice.event,
                    notice.hold_id, state, error)  # fmt: skip
        self._set_status(
            hold, name, {"state": state, "event": notice.event, "error": error, "at": time.time()}
        )
        self.events.publish(
            "channel.failed",
            {
                "channel": name,
                "hold_id": notice.hold_id,
                "event": notice.event,
                "error": error,
                "attempt": attempt,
                "final": last,
            },
        )
        await self._record(name, notice, state, error, attempt)

    def _set_status(self, hold: Hold | None, name: str, status: dict[str, Any]) -> None:
        if hold is None:
            return
        hold.channels[name] = status
        if hold.pending:
            self.events.publish("hold.updated", hold.to_json())

    async def _record(
        self, name: str, notice: Notice, status: str, reason: str, attempt: int
    ) -> None:
        data = notice.hold
        record = AuditRecord(
            kind=Kind.CHANNEL,
            request_id=str(data.get("request_id") or ""),
            agent=data.get("agent"),
            host=data.get("host"),
            method=data.get("method"),
            rule=data.get("rule"),
            channel=name,
            reason=reason,
            hold_id=notice.hold_id,
            detail={
                "event": notice.event,
                "status": status,
                "attempt": attempt,
                "escalated": notice.escalated,
            },
        )
        try:
            await self.audit.append(record)
        except Exception as exc:
            log.error("interlock: could not record a channel delivery of %s: %s", name, exc)

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        task = asyncio.create_task(coro, name=f"interlock: {name}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task


def _identity(channel: Channel) -> tuple[str, str]:
    """What makes a channel the same across a policy reload: its type and settings."""
    return channel.type, repr(sorted(channel.settings.items()))
