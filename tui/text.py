"""Short human words for times and counts, shared by the widgets."""

from __future__ import annotations

from tui.models import RuleStats


def countdown(seconds: float) -> str:
    """`4:59`, `1:02:03`; `0:00` once the deadline has passed."""
    total = max(0, int(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02}:{secs:02}" if hours else f"{minutes}:{secs:02}"


def span(seconds: float) -> str:
    """A rough length of time: `40 s`, `5 min`, `2 h`, `3 d`."""
    s = max(0, int(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min"
    if s < 86400:
        return f"{s // 3600} h"
    return f"{s // 86400} d"


def ago(seconds: float) -> str:
    return "just now" if seconds < 5 else f"{span(seconds)} ago"


def time_left(expires_at: float | None, now: float) -> str:
    if expires_at is None:
        return "until revoked"
    left = expires_at - now
    return "expired" if left <= 0 else span(left)


def history(stats: RuleStats | None, now: float) -> str:
    """`approved 12 of 13 times, last 2 h ago`."""
    if stats is None:
        return "history: loading…"
    if stats.decisions == 0:
        return "first hold of this rule"
    times = "time" if stats.decisions == 1 else "times"
    line = f"approved {stats.approved} of {stats.decisions} {times}"
    if stats.denied:
        line += f", denied {stats.denied}"
    if stats.expired:
        line += f", expired {stats.expired}"
    if stats.last_decision_at is not None:
        line += f", last {ago(now - stats.last_decision_at)}"
    return line


def shorten(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(0, width - 1)] + "…"


def person(who: str | None) -> str:
    """`person:alice` -> `alice`; `policy` and `system` stay."""
    return (who or "-").removeprefix("person:")
