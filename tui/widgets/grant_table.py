"""The grants table: what each active grant lets through, for whom, by whom, for how long."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from rich.text import Text

from tui.models import GrantView
from tui.text import ago, person, shorten, time_left
from tui.widgets.keyed_table import Cells, KeyedTable


def describe(grant: GrantView, now: float) -> str:
    """The whole grant in one sentence, for the line under the table."""
    expires = (
        "never expires" if grant.expires_at is None
        else f"expires in {time_left(grant.expires_at, now)}"
    )  # fmt: skip
    return (
        f"{grant.id}: {grant.target}, held by rule {grant.rule}, for {grant.who}; made by "
        f"{person(grant.created_by)} {ago(now - grant.created_at)}, used {grant.uses} times, "
        f"{expires}"
    )


def grant_cells(grant: GrantView, now: float, widths: Mapping[str, int]) -> Cells:
    return (
        Text(shorten(grant.target, widths["what"])),
        Text(shorten(grant.rule, widths["rule"])),
        Text(shorten(grant.who, widths["who"])),
        Text(shorten(person(grant.created_by), widths["by"])),
        Text(str(grant.uses), justify="right"),
        Text("never" if grant.expires_at is None else time_left(grant.expires_at, now)),
    )


class GrantTable(KeyedTable):
    """One row per active grant, keyed by grant id, oldest first."""

    COLUMNS = (
        ("what", "lets through"), ("rule", "rule"), ("who", "for"),
        ("by", "made by"), ("uses", "uses"), ("left", "expires"),
    )  # fmt: skip
    FIXED: ClassVar[dict[str, int]] = {"uses": 4, "left": 7}
    SHARES: ClassVar[dict[str, float]] = {"what": 0.46, "rule": 0.2, "who": 0.18, "by": 0.16}
    MINIMUM: ClassVar[dict[str, int]] = {"what": 10, "rule": 6, "who": 5, "by": 5}
