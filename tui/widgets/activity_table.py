"""The activity stream's table: one row per request, its outcome as a word and a colour."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import ClassVar

from rich.text import Text

from tui.models import ActivityRow
from tui.text import person, shorten
from tui.widgets.hold_table import host_and_path
from tui.widgets.keyed_table import Cells, KeyedTable

# outcome -> palette colour; the word is always shown too, never colour alone
OUTCOME_COLOUR = {
    "allowed": "success", "granted": "success", "approved": "success",
    "denied": "error", "error": "error", "expired": "warning",
    "pending": "warning", "held": "accent",
}  # fmt: skip


def activity_cells(
    row: ActivityRow, palette: Mapping[str, str], widths: Mapping[str, int]
) -> Cells:
    colour = palette.get(OUTCOME_COLOUR.get(row.outcome, ""), "")
    return (
        Text(time.strftime("%H:%M:%S", time.localtime(row.at))),
        Text(row.outcome, style=f"bold {colour}".strip()),
        Text(shorten(row.agent, widths["agent"])),
        Text(shorten(row.method, widths["method"]), style="bold"),
        Text(host_and_path(row.host, row.path, widths["target"])),
        Text(shorten(row.rule or "-", widths["rule"])),
        Text(shorten(person(row.decided_by), widths["by"]), style="dim"),
    )


class ActivityTable(KeyedTable):
    """One row per request, keyed by request id, oldest at the top."""

    COLUMNS = (
        ("time", "time"), ("outcome", "outcome"), ("agent", "agent"), ("method", "method"),
        ("target", "host and path"), ("rule", "rule"), ("by", "by"),
    )  # fmt: skip
    FIXED: ClassVar[dict[str, int]] = {"time": 8, "outcome": 8, "method": 6}
    SHARES: ClassVar[dict[str, float]] = {"agent": 0.16, "target": 0.5, "rule": 0.2, "by": 0.14}
    MINIMUM: ClassVar[dict[str, int]] = {"agent": 5, "target": 12, "rule": 6, "by": 5}
