"""Following the control API's events: reconnect with back-off, resume with Last-Event-ID."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from textual.message import Message

from tui.client import ApiError, Backend
from tui.messages import ServerEventReceived, StreamLost, StreamOpened

RETRY_DELAYS = (0.2, 0.5, 1.0, 2.0, 5.0)
OFFLINE_AFTER = 3  # failed attempts in a row before "reconnecting" becomes "offline"


async def follow_events(
    backend: Backend,
    post: Callable[[Message], object],
    retry_delays: Sequence[float] = RETRY_DELAYS,
) -> None:
    """Post a message per event, forever; the worker running this is cancelled on exit."""
    last_id: str | None = None
    failures = 0

    while True:

        def opened(resumed: bool = last_id is not None) -> None:
            nonlocal failures
            failures = 0
            post(StreamOpened(resumed))

        try:
            async for event in backend.events(last_id, opened):
                if event.id is not None:
                    last_id = event.id
                post(ServerEventReceived(event.event, event.data))
            reason = "the server closed the event stream"
        except ApiError as exc:
            reason = exc.message
        except Exception as exc:  # a malformed stream must not end the dashboard's updates
            reason = f"{type(exc).__name__}: {exc}"
        failures += 1
        delay = retry_delays[min(failures, len(retry_delays)) - 1]
        post(StreamLost(reason, offline=failures > OFFLINE_AFTER, retry_in=delay))
        await asyncio.sleep(delay)
