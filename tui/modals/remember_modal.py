"""Approve and remember: choose the grant's scope, who it covers and how long it lasts."""

from __future__ import annotations

from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, RadioButton, RadioSet

from tui.models import GrantChoice, HoldView

DURATIONS = (("15m", "15 min"), ("1h", "1 hour"), ("8h", "8 hours"), ("never", "until revoked"))
DEFAULT_DURATION = "1h"


class RememberModal(ModalScreen[GrantChoice | None]):
    """Returns the operator's `GrantChoice`, or None when cancelled."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, hold: HoldView) -> None:
        super().__init__()
        self.hold = hold

    def compose(self) -> ComposeResult:
        hold = self.hold
        with VerticalScroll(classes="dialog", id="remember"):
            yield Label(
                Content.from_markup("[b]Approve and remember[/b] $m $u", m=hold.method, u=hold.url),
                classes="title",
            )
            yield Label(
                Content.from_markup(
                    "Later requests held by rule [b]$rule[/b] that match go through:",
                    rule=hold.rule or "?",
                ),
                classes="hint",
            )
            with RadioSet(id="scope"):
                yield RadioButton(Content("this exact request (method, URL, body)"), id="exact")
                yield RadioButton(
                    Content(f"this endpoint: {hold.method} + path pattern"),
                    value=True,
                    id="endpoint",
                )
                if hold.host_grant_allowed:
                    yield RadioButton(Content(f"this host: any request to {hold.host}"), id="host")
            if not hold.host_grant_allowed:
                yield Label(
                    "(a whole-host grant is not offered for critical rules)", classes="hint"
                )
            yield Input(value=hold.proposed_pattern, id="pattern", compact=True)
            with RadioSet(id="who", classes="inline"):
                yield RadioButton(Content(f"only {hold.agent}"), value=True, id="agent")
                yield RadioButton(Content("all agents"), id="all")
            with RadioSet(id="duration", classes="inline"):
                for key, title in DURATIONS:
                    yield RadioButton(title, value=key == DEFAULT_DURATION, id=f"for-{key}")
            yield Label("tab: next choice · enter on the pattern or the button: approve",
                        classes="hint")  # fmt: skip
            yield Label("", id="error", classes="error -empty")
            with Horizontal(classes="buttons"):
                yield Button("Approve & remember", variant="success", id="ok", compact=True)
                yield Button("Cancel", id="cancel", compact=True)

    def on_mount(self) -> None:
        self.query_one("#scope", RadioSet).focus()

    def _pressed(self, radio_set: str) -> str:
        button = self.query_one(f"#{radio_set}", RadioSet).pressed_button
        return (button.id or "") if button is not None else ""

    @on(RadioSet.Changed, "#scope")
    def _scope_changed(self) -> None:
        self.query_one("#pattern", Input).disabled = self._pressed("scope") != "endpoint"

    def choice(self) -> GrantChoice | str:
        """The choice, or why it cannot be made."""
        scope = self._pressed("scope") or "endpoint"
        pattern = self.query_one("#pattern", Input).value.strip()
        if scope == "endpoint" and not pattern.startswith("/"):
            return "The path pattern must start with / (e.g. /repos/acme/*/pulls)."
        duration = self._pressed("duration").removeprefix("for-") or DEFAULT_DURATION
        return GrantChoice(
            scope=scope,
            duration=duration,
            all_agents=self._pressed("who") == "all",
            pattern=pattern if scope == "endpoint" else None,
        )

    @on(Button.Pressed, "#ok")
    @on(Input.Submitted, "#pattern")
    def submit(self) -> None:
        choice = self.choice()
        if isinstance(choice, str):
            error = self.query_one("#error", Label)
            error.update(choice)
            error.remove_class("-empty")
            return
        self.dismiss(choice)

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)
