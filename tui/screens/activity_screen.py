"""Activity: every request as it is decided, filterable; Enter opens its full audit record."""

from __future__ import annotations

from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import DataTable, Footer, Input

from tui.client import ApiError
from tui.messages import ActionFailed, ActivityLoaded, TrailLoaded
from tui.modals.record_modal import RecordModal
from tui.models import ActivityFilter, ActivityRow
from tui.screens.base import DashboardScreen
from tui.widgets.activity_table import ActivityTable, activity_cells
from tui.widgets.keyed_table import Cells, KeyedTable
from tui.widgets.status_bar import StatusBar

MAX_ROWS = 500  # on screen (up to MAX_ROWS + TRIM_EVERY); the App keeps more for filtering
TRIM_EVERY = 25  # rows dropped from the top at once (each removal shifts every row below)
HISTORY_ROWS = 200


class ActivityScreen(DashboardScreen):
    WATCHES = frozenset({"activity"})
    SYNC_DELAY = 0.25  # a live stream at four frames a second; each redraw costs the table
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "open", "Open record", id="open"),
        Binding("slash", "filter", "Filter", id="filter"),
        Binding("escape", "clear", "Clear", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.where = ActivityFilter()
        self._cells: dict[str, tuple[ActivityRow, Cells]] = {}

    def compose(self) -> ComposeResult:
        yield StatusBar("activity")
        yield ActivityTable(id="activity")
        yield Input(
            placeholder="filter: agent:NAME host:HOST outcome:denied rule:RULE words",
            id="activity-filter",
            compact=True,
        )
        yield Footer(compact=True)

    def on_mount(self) -> None:
        super().on_mount()
        self.query_one(ActivityTable).focus()

    def _cells_for(self, row: ActivityRow) -> Cells:
        cached = self._cells.get(row.request_id)
        if cached is not None and cached[0] is row:
            return cached[1]
        cells = activity_cells(row, self.palette(), self.query_one(ActivityTable).widths)
        self._cells[row.request_id] = (row, cells)
        return cells

    def sync(self) -> None:
        super().sync()
        if not self.is_mounted:
            return
        table = self.query_one(ActivityTable)
        following = table.row_count == 0 or table.cursor_row >= table.row_count - 1
        at = table.cursor_key()
        rows = [r for r in self.dashboard.activity.rows() if self.where.matches(r)]
        rows = rows[self._first_shown(rows, table) :]
        if len(rows) > MAX_ROWS + TRIM_EVERY:
            rows = rows[-MAX_ROWS:]
        table.show_rows([(r.request_id, self._cells_for(r)) for r in rows])
        if len(self._cells) > MAX_ROWS + TRIM_EVERY + 200:  # cells only for rows on screen
            self._cells = {r.request_id: self._cells[r.request_id] for r in rows}
        if following and table.row_count:
            table.move_cursor(row=table.row_count - 1, animate=False)
        elif at is not None:
            table.keep_cursor_on(at)

    def on_keyed_table_refitted(self, message: KeyedTable.Refitted) -> None:
        self._cells.clear()
        self.sync()

    @staticmethod
    def _first_shown(rows: list[ActivityRow], table: ActivityTable) -> int:
        """Where the table's top row is in `rows`: rows above it stay off (trimmed in batches)."""
        top = table.row_keys()[:1]
        if top:
            for index, row in enumerate(rows):
                if row.request_id == top[0]:
                    return index
        return max(0, len(rows) - MAX_ROWS)

    def repaint(self) -> None:
        self._cells.clear()
        self.query_one(ActivityTable).repaint()
        self.sync()

    # -- actions ------------------------------------------------------------------------------

    @on(DataTable.RowSelected, "#activity")
    def _row_chosen(self) -> None:
        self.action_open()  # Enter on the table: the table's own binding takes it first

    def action_open(self) -> None:
        request_id = self.query_one(ActivityTable).cursor_key()
        if request_id is not None:
            self.run_worker(self._load_trail(request_id), group="trail", exclusive=True)

    async def _load_trail(self, request_id: str) -> None:
        try:
            trail = await self.dashboard.backend.trail(request_id)
        except ApiError as exc:
            self.post_message(ActionFailed(f"read the audit record of {request_id}", exc.message))
            return
        self.post_message(TrailLoaded(request_id, trail))

    def on_trail_loaded(self, message: TrailLoaded) -> None:
        self.app.push_screen(RecordModal(message.request_id, message.trail))

    def on_action_failed(self, message: ActionFailed) -> None:
        self.notify(f"Could not {message.what}: {message.reason}", severity="error")

    def action_filter(self) -> None:
        box = self.query_one("#activity-filter", Input)
        box.add_class("-shown")
        box.focus()

    def action_clear(self) -> None:
        box = self.query_one("#activity-filter", Input)
        box.value = ""
        box.remove_class("-shown")
        self.where = ActivityFilter()
        self.query_one(ActivityTable).focus()
        self.sync()

    @on(Input.Changed, "#activity-filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.where = ActivityFilter.parse(event.value)
        self.sync()

    @on(Input.Submitted, "#activity-filter")
    def _filter_done(self) -> None:
        self.query_one(ActivityTable).focus()
        if self.where != ActivityFilter():
            self.run_worker(self._load_history(self.where), group="history", exclusive=True)

    async def _load_history(self, where: ActivityFilter) -> None:
        """Older matching requests from the audit log (it filters on exact values)."""
        try:
            rows = await self.dashboard.backend.activity(where, HISTORY_ROWS)
        except ApiError as exc:
            self.post_message(ActionFailed("read the audit log", exc.message))
            return
        self.post_message(ActivityLoaded(rows))

    def on_activity_loaded(self, message: ActivityLoaded) -> None:
        self.dashboard.activity.merge_history(message.rows)
        self.sync()
