"""The top line of every screen: where you are, the connection, lockdown and counts."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.content import Content
from textual.widgets import Label

from tui.models import Connection
from tui.state import Status

SCREENS = (("queue", "1", "Queue"), ("activity", "2", "Activity"), ("grants", "3", "Grants"))
_CONNECTION_STYLE = {
    Connection.CONNECTED: "$success",
    Connection.CONNECTING: "$warning",
    Connection.RECONNECTING: "$warning",
    Connection.OFFLINE: "$error",
}


class StatusBar(Horizontal):
    """Renders a `Status`; the connection is always spelled out, never colour alone."""

    def __init__(self, current: str) -> None:
        super().__init__()
        self.current = current
        self._shown: Status | None = None

    def compose(self) -> ComposeResult:
        yield Label(self._tabs(), id="tabs")
        yield Label("", id="state")

    def _tabs(self) -> Content:
        parts = [Content.from_markup("[b]Interlock[/b] ")]
        for name, key, title in SCREENS:
            if name == self.current:
                parts.append(
                    Content.from_markup(" [reverse b]$key $title[/] ", key=key, title=title)
                )
            else:
                parts.append(Content.from_markup(" [dim]$key[/] $title ", key=key, title=title))
        return Content("").join(parts)

    def show(self, status: Status) -> None:
        if status == self._shown:
            return
        self._shown = status
        style = _CONNECTION_STYLE[status.connection]
        words = [Content.from_markup(f"[{style}]●[/] $state", state=status.connection.value)]
        if status.lockdown:
            words.append(Content.from_markup("[reverse b $error] LOCKDOWN [/]"))
        words.append(Content(f"{status.held} held"))
        if status.failed:
            words.append(Content.from_markup("[b $error]$n not sent[/]", n=str(status.failed)))
        self.query_one("#state", Label).update(Content("  ").join(words))
        self.query_one("#state", Label).tooltip = status.detail or None
