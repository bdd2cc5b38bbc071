"""The queue's table: one row per held request, keyed by hold id, oldest first."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

from rich.text import Text

from tui.models import HoldView
from tui.text import countdown, shorten
from tui.widgets.keyed_table import Cells, KeyedTable

SEVERITY_WORD = {"low": "low", "medium": "med", "high": "high", "critical": "CRIT"}


@dataclass(frozen=True, slots=True)
class HoldRow:
    """What one row shows: the hold, and the dashboard's marks on it."""

    hold: HoldView
    marked: bool = False
    note: str = ""  # sending, FAILED, approved, denied, expired, gone...
    note_style: str = ""


def host_and_path(host: str, path: str, width: int) -> str:
    """`host/path`, cut in the middle when too long: the host and the path's end matter most."""
    text = f"{host}{path}"
    if len(text) <= width:
        return text
    head = host if len(host) + 9 <= width else host[: max(3, width // 2)]
    return f"{head}…{path[-max(1, width - len(head) - 1) :]}"


def row_cells(
    row: HoldRow, now: float, widths: Mapping[str, int], palette: Mapping[str, str]
) -> Cells:
    """The cells of one hold; untrusted text is never read as markup."""
    hold = row.hold
    left = hold.deadline - now
    left_style = palette["error"] if left < 30 else palette["warning"] if left < 120 else ""
    severity_style = {"critical": f"bold {palette['error']}", "high": palette["warning"]}
    note = Text(shorten(row.note, widths["note"]), style=row.note_style)
    if not row.note and hold.client_gone:
        note = Text("gone", style="dim")
    return (
        Text("✓" if row.marked else " ", style=f"bold {palette['accent']}"),
        Text(countdown(left), style=left_style),
        Text(shorten(hold.agent, widths["agent"])),
        Text(shorten(hold.method, widths["method"]), style="bold"),
        Text(host_and_path(hold.host, hold.path, widths["target"])),
        Text(shorten(hold.rule or "-", widths["rule"])),
        Text(SEVERITY_WORD.get(hold.severity, hold.severity[:4]),
             style=severity_style.get(hold.severity, "")),
        note,
    )  # fmt: skip


class HoldTable(KeyedTable):
    """One row per held request, keyed by hold id."""

    COLUMNS = (
        ("mark", " "), ("left", "left"), ("agent", "agent"), ("method", "method"),
        ("target", "host and path"), ("rule", "rule"), ("sev", "sev"), ("note", ""),
    )  # fmt: skip
    FIXED: ClassVar[dict[str, int]] = {"mark": 1, "left": 5, "method": 6, "sev": 4, "note": 8}
    SHARES: ClassVar[dict[str, float]] = {"agent": 0.2, "target": 0.54, "rule": 0.26}
    MINIMUM: ClassVar[dict[str, int]] = {"agent": 5, "target": 12, "rule": 6}
