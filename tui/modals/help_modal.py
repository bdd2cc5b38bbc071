"""The keys, as they are bound now (after any remapping)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Label, Static


class HelpModal(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,question_mark,q", "close", "Close")]

    def __init__(self, keys: Sequence[tuple[str, str, str]], note: str) -> None:
        """`keys`: (where, keys, what) rows."""
        super().__init__()
        self.keys, self.note = list(keys), note

    def compose(self) -> ComposeResult:
        table = Table.grid(padding=(0, 2))
        table.add_column(style="dim")
        table.add_column(style="bold", no_wrap=True)
        table.add_column()
        for where, keys, what in self.keys:
            table.add_row(Text(where), Text(keys), Text(what))
        with VerticalScroll(classes="dialog"):
            yield Label("[b]Keys[/b]", classes="title")
            yield Static(table)
            yield Label(self.note, classes="hint")

    def action_close(self) -> None:
        self.dismiss(None)
