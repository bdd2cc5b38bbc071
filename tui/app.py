"""`interlock tui`: wiring the screens, the events stream and the API calls to the state."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any, ClassVar

from textual import events
from textual.app import App, SystemCommand
from textual.binding import Binding, BindingType
from textual.screen import ModalScreen, Screen
from textual.timer import Timer

from tui import jobs
from tui.client import Backend
from tui.commands import SCREEN_BINDINGS, help_rows, palette_commands
from tui.messages import (
    ActionFailed,
    DecisionFailed,
    DecisionSent,
    LockdownSet,
    ServerEventReceived,
    SnapshotFailed,
    SnapshotLoaded,
    StoreChanged,
    StreamLost,
    StreamOpened,
)
from tui.modals.confirm_modal import ConfirmModal
from tui.modals.help_modal import HelpModal
from tui.models import Connection, GrantChoice, HoldView
from tui.screens.activity_screen import ActivityScreen
from tui.screens.base import DashboardScreen
from tui.screens.grants_screen import GrantsScreen
from tui.screens.queue_screen import QueueScreen
from tui.state import ActivityLog, GrantBook, HoldBook, Status, apply_event
from tui.stream import RETRY_DELAYS, follow_events
from tui.text import person, time_left

ANNOUNCE_EVERY = 2.0  # at most one bell and toast for new holds per this many seconds


class InterlockApp(App[None]):
    """The operator's dashboard. Holds the state; screens render it; workers do the I/O."""

    CSS_PATH = "app.tcss"
    TITLE = "Interlock"
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (140, "-wide")]  # noqa: RUF012
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("1", "show('queue')", "Queue", id="queue", show=False),
        Binding("2", "show('activity')", "Activity", id="activity", show=False),
        Binding("3", "show('grants')", "Grants", id="grants", show=False),
        Binding("l", "lockdown", "Lockdown", id="lockdown"),
        Binding("question_mark", "help", "Help", id="help"),
        Binding("q", "quit", "Quit", id="quit", show=False),
    ]

    def __init__(
        self,
        backend: Backend,
        *,
        keymap: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.time,
        retry_delays: Sequence[float] = RETRY_DELAYS,
    ) -> None:
        super().__init__()
        self.backend, self.clock, self.retry_delays = backend, clock, retry_delays
        self.book, self.grant_book, self.activity = HoldBook(), GrantBook(), ActivityLog()
        self.status = Status()
        self._told: Status | None = None  # the status the screens last heard of
        self.keymap = dict(keymap or {})
        self.set_keymap(self.keymap)
        self._activity_loaded = False
        self.last_key = 0.0  # time.monotonic() of the operator's last key press
        self.snapshots = 0  # how many times the holds were (re-)read
        self._new_holds: list[HoldView] = []
        self._announce_timer: Timer | None = None

    def on_mount(self) -> None:
        self.install_screen(QueueScreen(), "queue")
        self.install_screen(ActivityScreen(), "activity")
        self.install_screen(GrantsScreen(), "grants")
        self.push_screen("queue")
        follow = follow_events(self.backend, self.post_message, self.retry_delays)
        self.run_worker(follow, name="events", group="events", exclusive=True)

    async def on_event(self, event: events.Event) -> None:
        if isinstance(event, events.Key):
            self.last_key = time.monotonic()
        await super().on_event(event)

    async def on_unmount(self) -> None:
        await self.backend.aclose()

    def changed(self, *parts: str) -> None:
        """Parts of the state changed (holds, grants, activity): the screens on show re-render."""
        self.status = replace(
            self.status, held=len(self.book), failed=len(self.book.failed),
            grants=len(self.grant_book.all()),
        )  # fmt: skip
        changed = frozenset(parts) | ({"status"} if self.status != self._told else set())
        self._told = self.status
        if changed:
            for screen in self.screen_stack:
                if isinstance(screen, DashboardScreen):
                    screen.post_message(StoreChanged(changed))

    # -- the events stream --------------------------------------------------------------------

    def on_stream_opened(self, message: StreamOpened) -> None:
        was = self.status.connection
        detail = f"following events from {self.backend.address}"
        self.status = replace(self.status, connection=Connection.CONNECTED, detail=detail)
        if was in (Connection.RECONNECTING, Connection.OFFLINE):
            self.notify("Reconnected to the control API.")
        if not message.resumed:
            self._snapshot()
        self.changed()

    def on_stream_lost(self, message: StreamLost) -> None:
        if self.status.connection is Connection.CONNECTED:
            self.notify(f"Lost the control API ({message.reason}); reconnecting.",
                        severity="warning", markup=False)  # fmt: skip
        state = Connection.OFFLINE if message.offline else Connection.RECONNECTING
        detail = f"{message.reason}; next try in {message.retry_in:g} s"
        self.status = replace(self.status, connection=state, detail=detail)
        self.changed()

    def _snapshot(self) -> None:
        load = jobs.load_snapshot(
            self.backend, self.post_message, self.book.version, not self._activity_loaded
        )
        self.run_worker(load, group="snapshot", exclusive=True)

    def on_snapshot_loaded(self, message: SnapshotLoaded) -> None:
        self.snapshots += 1
        self.book.reset(message.holds, message.since)
        self.grant_book.reset(message.grants)
        self.status = replace(self.status, lockdown=message.lockdown)
        if message.activity is not None:
            self.activity.merge_history(message.activity)
            self._activity_loaded = True
        self.changed("holds", "grants", "activity")

    def on_snapshot_failed(self, message: SnapshotFailed) -> None:
        self.notify(f"Could not read the holds: {message.reason}", severity="error", markup=False)

    def on_server_event_received(self, message: ServerEventReceived) -> None:
        data = message.data if isinstance(message.data, dict) else {}
        applied = apply_event(self.book, self.grant_book, self.activity, message.kind, data)
        if applied.new_hold is not None:
            self._announce(applied.new_hold)
        if applied.lockdown is not None:
            self.status = replace(self.status, lockdown=applied.lockdown)
        if applied.resync:
            self._snapshot()
        if applied.notice:
            self.notify(
                applied.notice,
                severity="error" if applied.error else "information",
                markup=False,
            )
        self.changed(*applied.parts)

    def _announce(self, hold: HoldView) -> None:
        """Bell and toast for new holds, at most one every ANNOUNCE_EVERY seconds."""
        self._new_holds.append(hold)
        if self._announce_timer is None:
            self._flush_announcements()

    def _flush_announcements(self) -> None:
        self._announce_timer = None
        if not self._new_holds:
            return
        holds, self._new_holds = self._new_holds, []
        latest = holds[-1]
        text = f"{latest.method} {latest.host}{latest.path} ({latest.agent}, {latest.rule})"
        if len(holds) > 1:
            text = f"{len(holds)} new requests wait; latest {text}"
        self.bell()
        self.notify(text, title="Waiting for you", markup=False)
        self._announce_timer = self.set_timer(ANNOUNCE_EVERY, self._flush_announcements)

    # -- decisions ----------------------------------------------------------------------------

    def decide(
        self,
        hold_ids: Iterable[str],
        *,
        approve: bool,
        reason: str | None = None,
        grant: GrantChoice | None = None,
    ) -> None:
        """Send a decision per hold id; each answer (or failure) comes back as a message."""
        for hold_id in hold_ids:
            self.book.start_decision(hold_id, "approve" if approve else "deny")
            send = jobs.send_decision(
                self.backend, self.post_message, hold_id, approve, reason, grant
            )
            self.run_worker(send, group="decide")
        self.changed("holds")

    def on_decision_sent(self, message: DecisionSent) -> None:
        result = message.result
        self.book.decision_taken(message.hold_id, result.final)
        if not result.final:
            self.notify(f"Approval recorded for {message.hold_id}: {result.votes} of "
                        f"{result.needed} needed.")  # fmt: skip
        if result.grant is not None:
            grant = result.grant
            self.grant_book.put(grant)
            left = time_left(grant.expires_at, self.clock())
            self.notify(f"Grant {grant.id}: {grant.target}, for {grant.who}, {left}.",
                        title="Remembered", markup=False)  # fmt: skip
        self.changed("holds", "grants")

    def on_decision_failed(self, message: DecisionFailed) -> None:
        self.book.decision_failed(message.hold_id, message.verb, message.reason)
        body = message.body
        if message.status == 409 and body.get("state"):
            by = f" by {person(body.get('decided_by'))}" if body.get("decided_by") else ""
            self.notify(f"{message.hold_id} was not {message.verb}d here: it was already "
                        f"{body['state']}{by}.", severity="warning", markup=False)  # fmt: skip
        else:
            self.notify(
                f"Could not {message.verb} {message.hold_id}: {message.reason}. "
                "The decision was NOT sent; the request is still waiting.",
                title="Not sent", severity="error", timeout=30, markup=False,
            )  # fmt: skip
        self.changed("holds")

    # -- app-wide actions ---------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Screen switching, lockdown and help wait until the open dialog is answered."""
        modal = isinstance(self.screen, ModalScreen)
        return not (modal and action in ("show", "lockdown", "help"))

    def action_show(self, name: str) -> None:
        if self.screen is not self.get_screen(name):
            self.switch_screen(name)

    def action_lockdown(self) -> None:
        on = not self.status.lockdown
        if on:
            question, detail, yes = ("Turn lockdown ON?",
                "Every new request from every agent is refused until lockdown is lifted.",
                "Lock down")  # fmt: skip
        else:
            question, detail, yes = "Lift lockdown?", "The policy decides requests again.", "Lift"

        def answered(confirmed: bool | None) -> None:
            if confirmed:
                self.run_worker(jobs.set_lockdown(self.backend, self.post_message, on))

        self.push_screen(ConfirmModal(question, detail, yes), answered)

    def on_lockdown_set(self, message: LockdownSet) -> None:
        self.status = replace(self.status, lockdown=message.on)
        self.notify("Lockdown is ON." if message.on else "Lockdown lifted.")
        self.changed()

    def on_action_failed(self, message: ActionFailed) -> None:
        self.notify(f"Could not {message.what}: {message.reason}", severity="error", markup=False)

    def help_rows(self) -> list[tuple[str, str, str]]:
        return help_rows(self.keymap, [*SCREEN_BINDINGS, ("anywhere", self.BINDINGS)])

    def action_help(self) -> None:
        note = 'Remap keys with tui-keys.json in the data directory, e.g. {"approve": "y"}.'
        self.push_screen(HelpModal(self.help_rows(), note))

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        yield from palette_commands(self, screen)
