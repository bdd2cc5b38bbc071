"""One request's full audit record: every row written for it, in order."""

from __future__ import annotations

import json
import time
from typing import Any, ClassVar

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Label, Static

SKIP = {"seq", "request_id", "headers", "body_preview", "detail", "final_outcome"}


def render_trail(trail: list[dict[str, Any]]) -> RenderableType:
    parts: list[RenderableType] = []
    for row in trail:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(row.get("at") or 0)))
        parts.append(Text(f"{row.get('kind', '?')} · {when}", style="bold reverse"))
        grid = Table.grid(padding=(0, 1))
        grid.add_column(style="dim", no_wrap=True)
        grid.add_column(overflow="fold")
        for key, value in row.items():
            if key in SKIP or key == "at" or value in (None, "", [], {}):
                continue
            grid.add_row(Text(key), Text(str(value)))
        for key in ("detail", "headers"):
            value = row.get(key)
            if value:
                shown = value if isinstance(value, str) else json.dumps(value, indent=1)
                grid.add_row(Text(key), Text(shown))
        if row.get("body_preview"):
            grid.add_row(Text("body"), Text(str(row["body_preview"])))
        parts.append(grid)
    return Group(*parts)


class RecordModal(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,q,enter", "close", "Close")]

    def __init__(self, request_id: str, trail: list[dict[str, Any]]) -> None:
        super().__init__()
        self.request_id, self.trail = request_id, trail

    def compose(self) -> ComposeResult:
        with VerticalScroll(classes="dialog wide"):
            yield Label(
                Content.from_markup("[b]Audit record[/b] $id", id=self.request_id), classes="title"
            )
            yield Static(render_trail(self.trail))

    def action_close(self) -> None:
        self.dismiss(None)
