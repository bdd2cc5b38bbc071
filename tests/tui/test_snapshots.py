"""How the dashboard looks at 80x24, from fixed data and a frozen clock (no server)."""

from __future__ import annotations

from collections.abc import Callable

from textual.pilot import Pilot

from tests.tui.fakes import FROZEN, FakeBackend, three_holds, two_grants
from tests.tui.helpers import queue, rows, until
from tui.app import InterlockApp

SnapCompare = Callable[..., bool]


def fake_app(backend: FakeBackend) -> InterlockApp:
    return InterlockApp(backend, clock=lambda: FROZEN)


def settled(count: int) -> Callable[[Pilot[None]], object]:
    """Before the picture: the holds read, the rows drawn and the rule's history loaded."""

    async def run_before(pilot: Pilot[None]) -> None:
        app = pilot.app
        assert isinstance(app, InterlockApp)
        await until(pilot, lambda: app.snapshots == 1 and len(rows(app)) == count, "the rows")
        if count:
            await until(pilot, lambda: bool(queue(app).stats), "the rule's history")
        await pilot.pause()

    return run_before


def test_empty_queue(snap_compare: SnapCompare) -> None:
    assert snap_compare(fake_app(FakeBackend()), run_before=settled(0))


def test_three_holds(snap_compare: SnapCompare) -> None:
    assert snap_compare(fake_app(FakeBackend(three_holds())), run_before=settled(3))


def test_deny_dialog(snap_compare: SnapCompare) -> None:
    app = fake_app(FakeBackend(three_holds()))
    assert snap_compare(app, press=["d"], run_before=settled(3))


def test_grants_screen(snap_compare: SnapCompare) -> None:
    app = fake_app(FakeBackend(three_holds(), two_grants()))
    assert snap_compare(app, press=["3"], run_before=settled(3))


def test_three_holds_in_the_light_theme(snap_compare: SnapCompare) -> None:
    app = fake_app(FakeBackend(three_holds()))
    settle = settled(3)

    async def light(pilot: Pilot[None]) -> None:
        pilot.app.theme = "textual-light"
        await settle(pilot)

    assert snap_compare(app, run_before=light)
