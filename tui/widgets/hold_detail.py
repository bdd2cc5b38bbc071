"""The detail pane: everything about the one hold the keys act on."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

from rich.console import Group, RenderableType
from rich.highlighter import JSONHighlighter
from rich.table import Table
from rich.text import Span, Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static

from tui.models import HoldView
from tui.text import countdown

TRUNCATED_MARK = "…[truncated]"
MAX_BODY_LINES = 200


@dataclass(frozen=True, slots=True)
class DetailView:
    """What the pane shows: the hold, its rule's history, and any banner about its state."""

    hold: HoldView
    now: float
    history: str
    banner: str = ""
    banner_style: str = ""


def highlight_json(text: str, palette: Mapping[str, str]) -> Text:
    """JSON coloured from the theme's own colours, so it reads in dark and light themes."""
    colours = {
        "json.key": f"bold {palette['primary']}", "json.str": palette["success"],
        "json.number": palette["warning"], "json.bool_true": palette["accent"],
        "json.bool_false": palette["accent"], "json.null": palette["accent"],
    }  # fmt: skip
    highlighted = Text(text)
    JSONHighlighter().highlight(highlighted)
    highlighted.spans = [
        Span(span.start, span.end, colours[str(span.style)])
        for span in highlighted.spans
        if str(span.style) in colours
    ]
    return highlighted


def body_renderable(hold: HoldView, palette: Mapping[str, str]) -> RenderableType:
    """The body preview: JSON pretty-printed and highlighted; a note when it is cut short."""
    preview = hold.body_preview
    if hold.body_size == 0:
        return Text("(no body)", style="dim")
    if preview is None:
        return Text(f"({hold.body_size} bytes, binary or encoded: no preview)", style="dim")
    truncated = preview.endswith(TRUNCATED_MARK)
    text = preview.removesuffix(TRUNCATED_MARK) if truncated else preview
    parts: list[RenderableType] = []
    try:
        pretty = json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    except ValueError:
        parts.append(Text(_first_lines(text)))
    else:
        parts.append(highlight_json(_first_lines(pretty), palette))
    if truncated:
        parts.append(
            Text(
                f"(truncated: showing the first {len(text)} characters of {hold.body_size} bytes,"
                " redacted)",
                style="italic dim",
            )
        )
    return Group(*parts)


def _first_lines(text: str) -> str:
    lines = text.splitlines()
    if len(lines) <= MAX_BODY_LINES:
        return text
    return "\n".join([*lines[:MAX_BODY_LINES], f"… {len(lines) - MAX_BODY_LINES} more lines"])


def render_head(view: DetailView, palette: Mapping[str, str]) -> RenderableType:
    """What changes each second (the countdown) and the banner about the hold's state."""
    hold = view.hold
    left = hold.deadline - view.now
    facts = Text()
    facts.append(f"agent {hold.agent}", style="bold")
    if hold.client:
        facts.append(f" · from {hold.client}")
    facts.append(f" · {hold.id} · ")
    facts.append(f"{countdown(left)} left", style=palette["warning"] if left < 120 else "")
    if hold.client_gone:
        facts.append(" · client gone (it stopped waiting)", style=palette["error"])
    if hold.approvals_needed > 1:
        facts.append(f" · {hold.votes} of {hold.approvals_needed} approvals")
        if hold.voters:
            facts.append(f" ({', '.join(hold.voters)})")
    rule = Text()
    rule.append("rule ", style="dim")
    rule.append(hold.rule or "(host rule)", style="bold")
    rule.append(
        f" ({hold.severity})", style=palette["error"] if hold.severity == "critical" else ""
    )
    rule.append(f": {hold.reason}")
    parts: list[RenderableType] = [
        Text(f"{hold.method} {hold.url}", style="bold", overflow="fold"),
        facts,
        rule,
    ]
    if hold.channels:
        parts.append(channels_line(hold, palette))
    if view.history:
        parts.append(Text(view.history, style="italic"))
    if view.banner:
        parts.append(Text(view.banner, style=view.banner_style))
    return Group(*parts)


def channels_line(hold: HoldView, palette: Mapping[str, str]) -> Text:
    """Where the hold was sent: a channel that failed shows its error, so nobody waits on it."""
    line = Text()
    line.append("channels ", style="dim")
    styles = {"failed": palette["error"], "retrying": palette["warning"], "scheduled": "dim"}
    for i, (name, state, error) in enumerate(hold.channels):
        if i:
            line.append(" · ")
        line.append(f"{name} {state}", style=styles.get(state, ""))
        if error and state in ("failed", "retrying"):
            line.append(f" ({error})", style=styles[state])
    return line


def render_rest(view: DetailView, palette: Mapping[str, str]) -> RenderableType:
    """Headers and body: they do not change while the hold is shown."""
    hold = view.hold
    parts: list[RenderableType] = []
    parts.append(Text(f"body ({hold.body_size} bytes)", style=f"bold {palette['accent']}"))
    parts.append(body_renderable(hold, palette))
    if hold.headers:
        parts.append(Text("headers (redacted)", style=f"bold {palette['accent']}"))
        grid = Table.grid(padding=(0, 1))
        grid.add_column(style="dim", no_wrap=True)
        grid.add_column(overflow="fold")
        for name, value in hold.headers:
            grid.add_row(Text(name), Text(value))
        parts.append(grid)
    return Group(*parts)


EMPTY = "No request is waiting for you."


class HoldDetail(VerticalScroll):
    """Shows the `DetailView` it is given, or a hint when there is none."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._rest_of: tuple[str, tuple[str, ...]] | None = None  # (hold id, colours) drawn

    def compose(self) -> ComposeResult:
        yield Static(Text(EMPTY, style="dim"), id="detail-head")
        yield Static("", id="detail-rest")

    def show(self, view: DetailView | None, palette: Mapping[str, str]) -> None:
        """Redraw the head; headers and body only when another hold (or theme) is shown."""
        head = self.query_one("#detail-head", Static)
        rest = self.query_one("#detail-rest", Static)
        if view is None:
            head.update(Text(EMPTY, style="dim"))
            rest.update("")
            self._rest_of = None
            return
        head.update(render_head(view, palette))
        key = (view.hold.id, tuple(palette.values()))
        if self._rest_of != key:
            if self._rest_of is None or self._rest_of[0] != view.hold.id:
                self.scroll_home(animate=False)
            rest.update(render_rest(view, palette))
            self._rest_of = key
