"""Waiting on the dashboard: on its workers, or on a condition the real proxy brings about."""

from __future__ import annotations

import time
from collections.abc import Callable

from textual.pilot import Pilot

from proxy.client import ApiClient
from tests.e2e.conftest import Running
from tui.app import InterlockApp
from tui.client import ApiBackend
from tui.screens.queue_screen import QueueScreen
from tui.widgets.hold_table import HoldTable

FAST_RETRY = (0.05, 0.1, 0.2, 0.4)


def live_app(running: Running) -> InterlockApp:
    client = ApiClient(running.api_url, running.operator_token, channel="tui")
    return InterlockApp(ApiBackend(client), retry_delays=FAST_RETRY)


def queue(app: InterlockApp) -> QueueScreen:
    screen = app.get_screen("queue")
    assert isinstance(screen, QueueScreen)
    return screen


def rows(app: InterlockApp) -> list[str]:
    return queue(app).query_one(HoldTable).row_keys()


async def until(
    pilot: Pilot[None], condition: Callable[[], object], what: str, timeout: float = 10
) -> None:
    """Let the app run until `condition()` holds (the proxy, not a timer, makes it true)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause(0.02)


async def decisions_sent(pilot: Pilot[None]) -> None:
    """Wait for the decision workers, then for their messages to be handled."""
    running = [w for w in pilot.app.workers if w.group == "decide"]
    if running:  # (an empty list would mean every worker, the events stream too)
        await pilot.app.workers.wait_for_complete(running)
    await pilot.pause()


async def type_text(pilot: Pilot[None], text: str) -> None:
    await pilot.press(*["space" if c == " " else c for c in text])
