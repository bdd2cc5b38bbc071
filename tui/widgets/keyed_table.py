"""A DataTable whose rows are keyed by id and updated in place, so the cursor stays on its row."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from rich.text import Text
from textual import events
from textual.cache import LRUCache
from textual.message import Message
from textual.widgets import DataTable
from textual.widgets.data_table import RowDoesNotExist

Cells = tuple[Text, ...]
REBUILD_AFTER = 50  # removing more rows than this at once: clear and refill instead


class KeyedTable(DataTable[Text]):
    """Shows the (key, cells) rows it is given; the screen decides which and where the cursor is."""

    COLUMNS: tuple[tuple[str, str], ...] = ()  # (key, title)
    FIXED: ClassVar[dict[str, int]] = {}  # columns of a set width
    SHARES: ClassVar[dict[str, float]] = {}  # the others share what is left
    MINIMUM: ClassVar[dict[str, int]] = {}

    class Refitted(Message):
        """The column widths changed with the table's size: render the cells again."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=False)
        # DataTable's render caches keep entries past every update (their keys include an update
        # counter), so at their default sizes a live table holds ~250k objects and each full
        # garbage collection pauses the app 100-200 ms. A screenful is a few hundred cells.
        self._cell_render_cache = LRUCache(1000)
        self._row_render_cache = LRUCache(200)
        self._row_renderable_cache = LRUCache(200)
        self._line_cache = LRUCache(200)
        self._shown: dict[str, Cells] = {}
        self._repaint = False
        self.widths = self.widths_for(80)

    @classmethod
    def widths_for(cls, total: int) -> dict[str, int]:
        """Column widths for a table `total` cells wide (each column also has 2 of padding)."""
        rest = max(0, total - 2 * len(cls.COLUMNS) - sum(cls.FIXED.values()))
        widths = dict(cls.FIXED)
        for key, share in cls.SHARES.items():
            widths[key] = max(cls.MINIMUM.get(key, 4), int(rest * share))
        return widths

    def on_resize(self, event: events.Resize) -> None:
        widths = self.widths_for(max(40, event.size.width - 1))
        if widths != self.widths:
            self.widths = widths
            self.clear(columns=True)
            self._shown.clear()
            self._add_columns()
            self.post_message(self.Refitted())

    def repaint(self) -> None:
        """Redraw every row on the next `show_rows` (the theme's colours changed)."""
        self._repaint = True

    def on_mount(self) -> None:
        self._add_columns()

    def _add_columns(self) -> None:
        for key, title in self.COLUMNS:
            self.add_column(title, key=key, width=self.widths.get(key))

    def row_keys(self) -> list[str]:
        return [str(row.key.value) for row in self.ordered_rows]

    def cursor_key(self) -> str | None:
        """The key under the cursor, read from the table as it is now."""
        if self.row_count == 0:
            return None
        row = min(max(self.cursor_row, 0), self.row_count - 1)
        return str(self.ordered_rows[row].key.value)

    def show_rows(self, rows: Sequence[tuple[str, Cells]]) -> None:
        """Make the table show `rows` in order, changing as little as possible: rows that stay
        keep their place; new rows may only come after them (else the table is rebuilt)."""
        wanted = {key for key, _ in rows}
        current = self.row_keys()
        kept = [key for key in current if key in wanted]
        many_gone = len(current) - len(kept) > REBUILD_AFTER  # each removal costs O(rows)
        if self._repaint or many_gone or kept != [key for key, _ in rows[: len(kept)]]:
            self._repaint = False
            self.clear()
            self._shown.clear()
            current = []
        for key in current:
            if key not in wanted:
                self.remove_row(key)
                self._shown.pop(key, None)
        for key, cells in rows:
            self.show_row(key, cells)

    def show_row(self, key: str, cells: Cells) -> None:
        """Add the row, or update the cells of it that changed."""
        before = self._shown.get(key)
        if before is None:
            self.add_row(*cells, key=key)
        elif before is not cells and before != cells:
            for (column, _), old, new in zip(self.COLUMNS, before, cells, strict=True):
                if old != new:
                    self.update_cell(key, column, new)
        self._shown[key] = cells

    def keep_cursor_on(self, key: str) -> None:
        """Put the cursor back on `key`'s row after rows above it came or went."""
        try:
            index = self.get_row_index(key)
        except RowDoesNotExist:
            return
        if index != self.cursor_row:
            self.move_cursor(row=index, animate=False)

    def visible_keys(self) -> list[str]:
        """Keys of the rows on screen now, so a clock tick touches only those."""
        top = int(self.scroll_y)
        height = max(1, self.size.height)
        return [str(row.key.value) for row in self.ordered_rows[top : top + height]]
