"""The queue against a real `interlock run`: an agent's request is held, the operator decides."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from tests.e2e.conftest import Running, Tls, policy_text, start_interlock
from tests.e2e.upstream import Upstream
from tests.e2e.webhooks import closed_port
from tests.tui.helpers import decisions_sent, live_app, queue, rows, type_text, until
from tui.modals.deny_modal import DenyModal
from tui.modals.remember_modal import RememberModal
from tui.screens.grants_screen import GrantsScreen
from tui.widgets.grant_table import GrantTable
from tui.widgets.hold_table import HoldTable


def held(agent: httpx.AsyncClient, running: Running, path: str) -> asyncio.Task[httpx.Response]:
    return asyncio.create_task(agent.post(running.url(path), content=b'{"ref":"main"}'))


async def test_the_held_request_appears_and_a_releases_it(gate: Running) -> None:
    app = live_app(gate)
    rang: list[bool] = []
    app.bell = lambda: rang.append(True)  # type: ignore[method-assign]
    async with app.run_test(size=(100, 30)) as pilot, gate.client() as agent:
        call = held(agent, gate, "/deploy/1")
        await until(pilot, lambda: len(rows(app)) == 1, "the held request's row")
        hold = app.book.pending()[0]
        assert queue(app).shown_id == hold.id  # empty -> one: that hold is selected
        assert rang and any(n.title == "Waiting for you" for n in app._notifications)
        assert hold.path == "/deploy/1" and hold.rule == "hold-deploy"
        await pilot.press("a")
        await decisions_sent(pilot)
        response = await call
        await until(pilot, lambda: rows(app) == [], "the row to go")
    assert response.status_code == 200
    assert "/deploy/1" in gate.upstream.paths()


async def test_d_refuses_with_the_reason_the_agent_is_told(gate: Running) -> None:
    app = live_app(gate)
    async with app.run_test(size=(100, 30)) as pilot, gate.client() as agent:
        typed = held(agent, gate, "/deploy/typed")
        await until(pilot, lambda: len(rows(app)) == 1, "the first hold")
        offered = held(agent, gate, "/deploy/offered")
        await until(pilot, lambda: len(rows(app)) == 2, "the second hold")
        await pilot.press("d")
        assert isinstance(app.screen, DenyModal)
        await pilot.press("enter")  # no reason: refused by the dialog, which stays open
        assert isinstance(app.screen, DenyModal)
        await type_text(pilot, "use staging first")
        await pilot.press("enter")
        await decisions_sent(pilot)
        first = await typed
        await until(pilot, lambda: len(rows(app)) == 1, "the denied row to go")
        await pilot.press("d", "down", "enter")  # the rule's first offered reason
        await decisions_sent(pilot)
        second = await offered
    assert first.status_code == 403 and second.status_code == 403
    assert first.json()["reason"] == "use staging first"
    assert first.json()["decided_by"] == "person:admin"
    assert second.json()["reason"] == "Not now"
    assert not any(p.startswith("/deploy/") for p in gate.upstream.paths())


async def test_r_makes_a_grant_and_the_next_matching_request_flows(gate: Running) -> None:
    app = live_app(gate)
    async with app.run_test(size=(100, 30)) as pilot, gate.client() as agent:
        call = held(agent, gate, "/deploy/7")
        await until(pilot, lambda: len(rows(app)) == 1, "the hold")
        await pilot.press("r")
        assert isinstance(app.screen, RememberModal)
        assert app.screen.query_one("#pattern").value == "/deploy/*"  # type: ignore[attr-defined]
        await pilot.click("#ok")
        await decisions_sent(pilot)
        assert (await call).status_code == 200
        following = await agent.post(gate.url("/deploy/8"), content=b"{}")
        assert following.status_code == 200
        assert following.headers["X-Interlock-Decision"] == "granted"
        await pilot.press("3")  # the grants screen shows it; x revokes it
        assert isinstance(app.screen, GrantsScreen)
        table = app.screen.query_one(GrantTable)
        await until(pilot, lambda: table.row_count == 1, "the grant's row")
        (grant,) = app.grant_book.all()
        assert grant.pattern == "/deploy/*" and grant.agents == ("anonymous",)
        await pilot.press("x", "y")
        await until(pilot, lambda: table.row_count == 0, "the revoked grant to go")
    async with gate.api() as api:
        assert (await api.get("/v1/grants")).json()["grants"] == []


async def test_keys_act_on_the_hold_shown_by_id_when_rows_shift(gate: Running) -> None:
    app = live_app(gate)
    async with app.run_test(size=(100, 30)) as pilot, gate.client() as agent:
        calls = []
        for n, name in enumerate("abc", start=1):
            calls.append(held(agent, gate, f"/deploy/{name}"))
            await until(pilot, lambda n=n: len(rows(app)) == n, f"hold {name}")
        first, second, third = rows(app)
        assert queue(app).shown_id == first  # new holds did not move the cursor
        assert app.focused is queue(app).query_one(HoldTable)
        await pilot.press("down")
        assert queue(app).shown_id == second
        async with gate.api() as api:  # another channel decides the row above the cursor
            answer = await api.post(f"/v1/holds/{first}/deny", json={"reason": "cli says no"})
            assert answer.status_code == 200
        await until(pilot, lambda: rows(app) == [second, third], "the row above to go")
        assert queue(app).shown_id == second
        await pilot.press("a")
        await decisions_sent(pilot)
        assert (await calls[1]).status_code == 200
        assert (await calls[0]).status_code == 403
        assert not calls[2].done()
        # The hold shown now is decided elsewhere: its row stays, and `a` sends nothing.
        await until(pilot, lambda: queue(app).shown_id == third, "the cursor on the next row")
        async with gate.api() as api:
            await api.post(f"/v1/holds/{third}/approve", json={})
        await until(pilot, lambda: not app.book.is_pending(third), "the approval elsewhere")
        table = queue(app).query_one(HoldTable)
        await until(pilot, lambda: "approved" in str(table.get_cell(third, "note")), "the mark")
        assert rows(app) == [third] and queue(app).shown_id == third
        sent_before = len([w for w in app.workers if w.group == "decide"])
        await pilot.press("a")
        assert len([w for w in app.workers if w.group == "decide"]) == sent_before
        assert (await calls[2]).status_code == 200
    paths = gate.upstream.paths()
    assert "/deploy/b" in paths and "/deploy/c" in paths and "/deploy/a" not in paths


async def test_a_channel_that_cannot_be_reached_shows_under_the_hold(
    tmp_path: Path, tls: Tls, upstream: Upstream
) -> None:
    secret = tmp_path / "hook.secret"
    secret.write_text("whsec-tui-0123456789")
    dead = closed_port()
    channels = f"""channels:
  pager: {{type: webhook, url: "http://127.0.0.1:{dead}/hook", secret: {{file: {secret}}}}}
"""
    policy = policy_text().replace("rules:", channels + "rules:", 1)
    policy = policy.replace("    match: {method: POST, path: /deploy/**}",
                            "    notify: [pager]\n    match: {method: POST, path: /deploy/**}")  # fmt: skip
    running = await start_interlock(tmp_path, tls, upstream, policy)
    app = live_app(running)
    try:
        async with app.run_test(size=(120, 30)) as pilot, running.client() as agent:
            call = held(agent, running, "/deploy/9")
            await until(pilot, lambda: len(rows(app)) == 1, "the held request's row")
            await until(
                pilot,
                lambda: any("Channel pager failed, retrying" in str(n.message)
                            for n in app._notifications),
                "the channel failure notice",
            )  # fmt: skip
            hold = app.book.pending()[0]
            await until(pilot, lambda: app.book.get(hold.id).channels, "the hold's channel status")  # type: ignore[union-attr]
            ((name, state, error),) = app.book.get(hold.id).channels  # type: ignore[union-attr]
            assert (name, state) == ("pager", "retrying") and f"127.0.0.1:{dead}" in error
            await pilot.press("a")  # the dead channel holds nothing up
            await decisions_sent(pilot)
            assert (await call).status_code == 200
    finally:
        await running.interlock.stop()
