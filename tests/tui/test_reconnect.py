"""The connection: Interlock restarts, the dashboard resumes and re-reads what it missed."""

from __future__ import annotations

import asyncio
from pathlib import Path

from textual.message import Message

from tests.e2e.conftest import Tls, policy_text, start_interlock
from tests.e2e.upstream import Upstream
from tests.tui.helpers import decisions_sent, live_app, queue, rows, until
from tui.messages import ServerEventReceived
from tui.models import Connection


async def test_a_restart_is_survived_and_holds_made_in_the_gap_appear(
    tmp_path: Path, tls: Tls, upstream: Upstream
) -> None:
    running = await start_interlock(tmp_path, tls, upstream, policy_text())
    assert running.interlock.proxy_address and running.interlock.api_address
    ports = {"listen": ("127.0.0.1", running.interlock.proxy_address[1]),
             "api_listen": ("127.0.0.1", running.interlock.api_address[1])}  # fmt: skip
    seen: list[str] = []

    def hook(message: Message) -> None:
        if isinstance(message, ServerEventReceived):
            seen.append(message.kind)

    app = live_app(running)
    restarted = None
    try:
        async with app.run_test(size=(100, 30), message_hook=hook) as pilot:
            async with running.client() as agent:
                before = asyncio.create_task(agent.post(running.url("/deploy/old"), content=b"{}"))
                await until(pilot, lambda: len(rows(app)) == 1, "the first hold")
                (stale,) = rows(app)
                await running.interlock.stop()  # the hold ends with the process
                assert (await before).status_code == 403
            await until(pilot, lambda: app.status.connection is not Connection.CONNECTED,
                        "the dashboard to notice")  # fmt: skip
            assert app.status.connection in (Connection.RECONNECTING, Connection.OFFLINE)
            restarted = await start_interlock(tmp_path, tls, upstream, policy_text(), **ports)
            async with restarted.client() as agent:
                after = asyncio.create_task(agent.post(restarted.url("/deploy/new"), content=b"{}"))
                await until(pilot, lambda: app.status.connection is Connection.CONNECTED,
                            "the reconnect")  # fmt: skip
                await until(pilot, lambda: len(app.book.pending()) == 1, "the new hold")
                assert "resync" in seen  # the old Last-Event-ID is from before the restart
                (new,) = app.book.pending()
                assert new.path == "/deploy/new" and not app.book.is_pending(stale)
                # The stale hold was shown: it stays, marked, until the cursor leaves it.
                await until(pilot, lambda: rows(app) == [stale, new.id], "both rows")
                assert queue(app).shown_id == stale
                assert app.book.get(stale).state in ("gone", "expired")  # type: ignore[union-attr]
                await pilot.press("a")  # acts on the stale hold by id: nothing is sent
                assert not [w for w in app.workers if w.group == "decide"]
                await pilot.press("down")
                await until(pilot, lambda: rows(app) == [new.id], "the stale row to go")
                assert queue(app).shown_id == new.id
                await pilot.press("a")
                await decisions_sent(pilot)
                assert (await after).status_code == 200
    finally:
        if restarted is not None:
            await restarted.interlock.stop()
