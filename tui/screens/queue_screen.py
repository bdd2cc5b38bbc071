"""The queue: held requests, oldest first, and the one the keys act on (by id, never by row)."""

from __future__ import annotations

from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Container
from textual.widgets import DataTable, Footer, Input

from tui.client import ApiError
from tui.messages import RuleStatsLoaded
from tui.modals.deny_modal import DenyModal
from tui.modals.remember_modal import RememberModal
from tui.models import GrantChoice, HoldView, RuleStats
from tui.screens.base import DashboardScreen
from tui.text import history, person
from tui.widgets.hold_detail import DetailView, HoldDetail
from tui.widgets.hold_table import HoldRow, HoldTable, row_cells
from tui.widgets.keyed_table import Cells, KeyedTable
from tui.widgets.status_bar import StatusBar

STATS_TTL = 15.0


class QueueScreen(DashboardScreen):
    WATCHES = frozenset({"holds"})
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("a", "approve", "Approve", id="approve"),
        Binding("d", "deny", "Deny", id="deny"),
        Binding("r", "remember", "Remember", id="remember"),
        Binding("space", "select", "Select", id="select"),
        Binding("slash", "filter", "Filter", id="filter"),
        Binding("escape", "clear", "Clear", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.shown_id: str | None = None  # the hold in the detail pane: what the keys act on
        self.marked: set[str] = set()
        self.filter_text = ""
        self.stats: dict[str, tuple[RuleStats | None, float]] = {}
        self._stats_loading: set[str] = set()
        self._cells: dict[str, tuple[HoldView, tuple[object, ...], Cells]] = {}

    def compose(self) -> ComposeResult:
        yield StatusBar("queue")
        with Container(id="queue-body"):
            yield HoldTable(id="holds")
            yield HoldDetail(id="detail")
        yield Input(placeholder="filter: agent, host, path or rule", id="filter", compact=True)
        yield Footer(compact=True)

    def on_mount(self) -> None:
        super().on_mount()
        self.set_interval(1.0, self.tick)
        self.query_one(HoldTable).focus()

    def on_keyed_table_refitted(self, message: KeyedTable.Refitted) -> None:
        self._cells.clear()
        self.sync()

    # -- rendering ----------------------------------------------------------------------------

    def _matches(self, hold: HoldView) -> bool:
        if not self.filter_text:
            return True
        text = f"{hold.agent} {hold.method} {hold.host}{hold.path} {hold.rule or ''}".lower()
        return all(word in text for word in self.filter_text.lower().split())

    def _row(self, hold: HoldView, palette: dict[str, str]) -> HoldRow:
        book = self.dashboard.book
        if hold.id in book.sending:
            return HoldRow(hold, hold.id in self.marked, "sending…", "italic")
        failure = book.failed.get(hold.id)
        if failure is not None:
            return HoldRow(hold, hold.id in self.marked, "NOT SENT", f"bold {palette['error']}")
        if not hold.pending:
            return HoldRow(hold, False, hold.state, f"bold {palette['warning']}")
        if hold.approvals_needed > 1 and hold.votes:
            return HoldRow(hold, hold.id in self.marked, f"{hold.votes}/{hold.approvals_needed}")
        return HoldRow(hold, hold.id in self.marked)

    def _cells_for(
        self, hold: HoldView, now: float, table: HoldTable, palette: dict[str, str]
    ) -> Cells:
        """A row's cells, made again only when what they show changed (500 rows, 20 syncs/s)."""
        row = self._row(hold, palette)
        stamp = (row.marked, row.note, int(hold.deadline - now))
        cached = self._cells.get(hold.id)
        if cached is not None and cached[0] is hold and cached[1] == stamp:
            return cached[2]
        cells = row_cells(row, now, table.widths, palette)
        self._cells[hold.id] = (hold, stamp, cells)
        return cells

    def sync(self) -> None:
        super().sync()
        if not self.is_mounted:
            return
        book, now, palette = self.dashboard.book, self.dashboard.clock(), self.palette()
        table = self.query_one(HoldTable)
        holds = [h for h in book.pending() if self._matches(h)]
        shown = book.get(self.shown_id) if self.shown_id else None
        if shown is not None and book.decided_elsewhere(shown.id) and shown.id in table.row_keys():
            # Decided elsewhere while shown: its row stays until the cursor leaves it, so
            # nothing shifts under the operator and the keys still name this hold.
            holds = sorted([*holds, shown], key=lambda h: (h.created_at, h.id))
        self.marked &= {h.id for h in holds if h.pending}
        if len(self._cells) > 2 * len(holds) + 100:
            self._cells = {h.id: self._cells[h.id] for h in holds if h.id in self._cells}
        table.show_rows([(h.id, self._cells_for(h, now, table, palette)) for h in holds])
        if self.shown_id is not None and self.shown_id in table.row_keys():
            table.keep_cursor_on(self.shown_id)
        else:
            self.shown_id = table.cursor_key()
        self.show_detail()

    def tick(self) -> None:
        """Once a second: the countdowns on screen and in the detail pane."""
        book, now, palette = self.dashboard.book, self.dashboard.clock(), self.palette()
        table = self.query_one(HoldTable)
        for hold_id in table.visible_keys():
            hold = book.get(hold_id)
            if hold is not None:
                table.show_row(hold_id, self._cells_for(hold, now, table, palette))
        self.show_detail(fetch=False)

    def show_detail(self, fetch: bool = True) -> None:
        hold = self.dashboard.book.get(self.shown_id) if self.shown_id else None
        detail = self.query_one(HoldDetail)
        if hold is None:
            detail.show(None, self.palette())
            return
        now = self.dashboard.clock()
        detail.show(self._detail_view(hold, now), self.palette())
        if hold.rule and fetch:
            self._want_stats(hold.rule, now)

    def _detail_view(self, hold: HoldView, now: float) -> DetailView:
        palette, book = self.palette(), self.dashboard.book
        cached = self.stats.get(hold.rule or "")
        line = history(cached[0] if cached else None, now) if hold.rule else ""
        if cached and cached[0] is None:
            line = "history: unavailable"
        banner, style = "", ""
        failure = book.failed.get(hold.id)
        if not hold.pending:
            how = {"gone": "is no longer waiting (decided while disconnected)",
                   "decided": "was decided"}.get(hold.state, hold.state)  # fmt: skip
            by = f" by {person(hold.decided_by)}" if hold.decided_by else ""
            via = f" via {hold.channel}" if hold.channel else ""
            banner = f"This request {how}{by}{via}. Move the cursor to pick another."
            style = f"bold {palette['warning']}"
        elif failure is not None:
            banner = f"Your {failure.verb} was NOT sent: {failure.reason}. It is still waiting."
            style = f"bold {palette['error']}"
        elif self.marked:
            banner = f"{len(self.marked)} selected: a approves them, d denies them; esc clears."
            style = f"bold {palette['accent']}"
        return DetailView(hold, now, line, banner, style)

    def _want_stats(self, rule: str, now: float) -> None:
        cached = self.stats.get(rule)
        if (cached and now - cached[1] < STATS_TTL) or rule in self._stats_loading:
            return
        self._stats_loading.add(rule)
        self.run_worker(self._load_stats(rule), group="stats")

    async def _load_stats(self, rule: str) -> None:
        try:
            stats: RuleStats | None = await self.dashboard.backend.rule_stats(rule)
        except ApiError:
            stats = None
        self.post_message(RuleStatsLoaded(rule, stats))

    def on_rule_stats_loaded(self, message: RuleStatsLoaded) -> None:
        self._stats_loading.discard(message.rule)
        self.stats[message.rule] = (message.stats, self.dashboard.clock())
        shown = self.dashboard.book.get(self.shown_id) if self.shown_id else None
        if shown is not None and shown.rule == message.rule:
            self.show_detail()

    def repaint(self) -> None:
        self._cells.clear()
        self.query_one(HoldTable).repaint()
        self.sync()

    @on(DataTable.RowHighlighted, "#holds")
    def _cursor_moved(self) -> None:
        current = self.query_one(HoldTable).cursor_key()
        if current is None or current == self.shown_id:
            return
        previous = self.dashboard.book.get(self.shown_id) if self.shown_id else None
        self.shown_id = current
        if previous is not None and not previous.pending:
            self.sync()  # the operator moved on: the decided row may go now
        else:
            self.show_detail()

    # -- actions: all by hold id --------------------------------------------------------------

    def _targets(self) -> list[HoldView]:
        book = self.dashboard.book
        if self.marked:
            return [h for h in book.pending() if h.id in self.marked]
        hold = book.get(self.shown_id) if self.shown_id else None
        return [hold] if hold is not None else []

    def _still_waiting(self, holds: list[HoldView]) -> list[HoldView]:
        waiting = [h for h in holds if h.pending]
        for hold in holds:
            if not hold.pending:
                by = f" by {person(hold.decided_by)}" if hold.decided_by else ""
                self.notify(f"{hold.id} is already {hold.state}{by}.", severity="warning")
        if not holds:
            self.notify("No request is waiting.", severity="warning")
        return waiting

    def action_approve(self) -> None:
        holds = self._still_waiting(self._targets())
        if holds:
            self.dashboard.decide([h.id for h in holds], approve=True)
            self.marked.clear()
            self.sync()

    def action_deny(self) -> None:
        holds = self._still_waiting(self._targets())
        if not holds:
            return
        ids = [h.id for h in holds]
        reasons = list(dict.fromkeys(r for h in holds for r in h.reasons))
        what = f"{holds[0].method} {holds[0].url}" if len(holds) == 1 else f"{len(holds)} requests"

        def denied(reason: str | None) -> None:
            if reason:
                self.dashboard.decide(ids, approve=False, reason=reason)
                self.marked.difference_update(ids)
                self.sync()

        self.app.push_screen(DenyModal(what, reasons), denied)

    def action_remember(self) -> None:
        hold = self.dashboard.book.get(self.shown_id) if self.shown_id else None
        waiting = self._still_waiting([hold] if hold else [])
        if not waiting:
            return
        hold = waiting[0]
        if not hold.grantable:
            why = (
                f"rule {hold.rule} needs {hold.approvals_needed} approvals"
                if hold.rule
                else "only a hold by a rule can be remembered"
            )
            self.notify(f"Cannot remember this one: {why}. Approve or deny it.", severity="warning")
            return
        hold_id = hold.id

        def chosen(choice: GrantChoice | None) -> None:
            if choice is not None:
                self.dashboard.decide([hold_id], approve=True, grant=choice)
                self.sync()

        self.app.push_screen(RememberModal(hold), chosen)

    def action_select(self) -> None:
        hold = self.dashboard.book.get(self.shown_id) if self.shown_id else None
        if hold is None or not hold.pending:
            return
        self.marked.symmetric_difference_update({hold.id})
        self.sync()

    def action_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.add_class("-shown")
        box.focus()

    def action_clear(self) -> None:
        box = self.query_one("#filter", Input)
        if box.has_focus or self.filter_text:
            box.value = ""
            box.remove_class("-shown")
            self.filter_text = ""
            self.query_one(HoldTable).focus()
            self.sync()
        elif self.marked:
            self.marked.clear()
            self.sync()

    @on(Input.Changed, "#filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.filter_text = event.value.strip()
        self.sync()

    @on(Input.Submitted, "#filter")
    def _filter_done(self) -> None:
        if not self.filter_text:
            self.query_one("#filter", Input).remove_class("-shown")
        self.query_one(HoldTable).focus()
