"""What every dashboard screen shares: the status bar, and re-rendering from the App's state."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, ClassVar, cast

from textual.screen import Screen
from textual.timer import Timer

from tui.messages import StoreChanged
from tui.widgets.status_bar import StatusBar

if TYPE_CHECKING:
    from tui.app import InterlockApp

PALETTE_KEYS = ("error", "warning", "success", "accent", "primary")


class DashboardScreen(Screen[None]):
    """A screen that renders the App's state: fully on show, then after each change.

    Changes are coalesced (`SYNC_DELAY`), so a burst of events costs one render.
    """

    SYNC_DELAY = 0.05
    TYPING_GRACE = 0.3  # while the operator presses keys, re-renders wait (up to MAX_WAIT)
    MAX_WAIT = 1.0
    WATCHES: ClassVar[frozenset[str]] = frozenset()  # the parts of the state this screen shows
    _sync_timer: Timer | None = None
    _pending: frozenset[str] = frozenset()
    _pending_since = 0.0

    @property
    def dashboard(self) -> InterlockApp:
        return cast("InterlockApp", self.app)

    def palette(self) -> dict[str, str]:
        variables = self.app.theme_variables
        return {key: variables.get(key, "") for key in PALETTE_KEYS}

    def on_mount(self) -> None:
        self.app.theme_changed_signal.subscribe(self, lambda _theme: self.repaint())

    def on_screen_resume(self) -> None:
        self.sync()

    def on_store_changed(self, message: StoreChanged) -> None:
        self._pending |= message.parts
        if self._sync_timer is None and self._pending & (self.WATCHES | {"status"}):
            self._pending_since = time.monotonic()
            self._sync_timer = self.set_timer(self.SYNC_DELAY, self._scheduled_sync)

    def _scheduled_sync(self) -> None:
        now = time.monotonic()
        typing = now - self.dashboard.last_key < self.TYPING_GRACE
        if typing and now - self._pending_since < self.MAX_WAIT:
            self._sync_timer = self.set_timer(self.SYNC_DELAY, self._scheduled_sync)
            return  # keys first: a redraw of the table must not delay the next key
        pending, self._pending, self._sync_timer = self._pending, frozenset(), None
        if pending & self.WATCHES:
            self.sync()
        elif self.is_mounted:
            self.query_one(StatusBar).show(self.dashboard.status)

    def sync(self) -> None:
        """Render from the App's state; subclasses extend this."""
        if self.is_mounted:
            self.query_one(StatusBar).show(self.dashboard.status)

    def repaint(self) -> None:
        """The theme changed: redraw whatever holds colours."""
        self.sync()
