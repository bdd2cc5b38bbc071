"""A decision that could not be sent is shown as not sent, never silently dropped."""

from __future__ import annotations

from proxy.client import ApiUnreachable
from tests.tui.fakes import FROZEN, FakeBackend, three_holds
from tests.tui.helpers import decisions_sent, queue, rows, until
from tui.app import InterlockApp
from tui.widgets.hold_table import HoldTable


async def test_an_unsent_decision_says_so_and_can_be_retried() -> None:
    backend = FakeBackend(three_holds())
    app = InterlockApp(backend, clock=lambda: FROZEN)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: len(rows(app)) == 3, "the holds")
        shown = queue(app).shown_id
        assert shown == rows(app)[0]
        backend.fail_decisions = ApiUnreachable("cannot reach the Interlock control API")
        await pilot.press("a")
        await decisions_sent(pilot)
        assert app.book.failed[shown].verb == "approve"
        assert app.status.failed == 1
        await until(pilot, lambda: "NOT SENT" in _note(app, shown), "the row's mark")
        assert any(n.severity == "error" and "NOT sent" in n.message for n in app._notifications)
        assert rows(app)[0] == shown and queue(app).shown_id == shown  # still waiting, still shown
        backend.fail_decisions = None
        await pilot.press("a")
        await decisions_sent(pilot)
        assert backend.decisions == [(shown, "approve", None, None)]
        assert shown not in app.book.failed
        await until(pilot, lambda: shown not in rows(app), "the decided row to go")


def _note(app: InterlockApp, hold_id: str) -> str:
    return str(queue(app).query_one(HoldTable).get_cell(hold_id, "note"))
