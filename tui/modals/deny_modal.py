"""Deny with a reason: the rule's offered reasons, or free text. A reason is required."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, OptionList
from textual.widgets.option_list import Option

REQUIRED = "A reason is required: the agent is told it, so it can adapt."


class DenyModal(ModalScreen[str | None]):
    """Returns the reason, or None when cancelled."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel"),
        Binding("down", "to_reasons", "Reasons", show=False),
    ]

    def __init__(self, what: str, reasons: Sequence[str]) -> None:
        super().__init__()
        self.what = what
        self.reasons = list(reasons)

    def compose(self) -> ComposeResult:
        with VerticalScroll(classes="dialog"):
            yield Label(Content.from_markup("[b]Deny[/b] $what", what=self.what), classes="title")
            yield Label("The agent is told this reason.", classes="hint")
            yield Input(placeholder="type a reason, then Enter", id="reason")
            if self.reasons:
                yield Label("or pick one of the rule's reasons (↓, Enter):", classes="hint")
                yield OptionList(
                    *[Option(Content(r), id=str(i)) for i, r in enumerate(self.reasons)],
                    id="reasons",
                )
            yield Label("", id="error", classes="error -empty")
            with Horizontal(classes="buttons"):
                yield Button("Deny", variant="error", id="deny", compact=True)
                yield Button("Cancel", id="cancel", compact=True)

    def on_mount(self) -> None:
        self.query_one("#reason", Input).focus()

    def _submit(self, text: str) -> None:
        reason = text.strip()
        if not reason:
            error = self.query_one("#error", Label)
            error.update(REQUIRED)
            error.remove_class("-empty")
            self.query_one("#reason", Input).focus()
            return
        self.dismiss(reason)

    @on(Input.Submitted, "#reason")
    def _typed(self, event: Input.Submitted) -> None:
        self._submit(event.value)

    @on(OptionList.OptionSelected, "#reasons")
    def _picked(self, event: OptionList.OptionSelected) -> None:
        self._submit(self.reasons[int(event.option.id or 0)])

    @on(Button.Pressed, "#deny")
    def _deny_pressed(self) -> None:
        self._submit(self.query_one("#reason", Input).value)

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)

    def action_to_reasons(self) -> None:
        if self.reasons and self.query_one("#reason", Input).has_focus:
            self.query_one("#reasons", OptionList).focus()
