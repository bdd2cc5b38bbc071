"""The one duration syntax used everywhere: `30s`, `5m`, `1h`, `8h`, `1d`, `1h30m`."""

from __future__ import annotations

import re

_PART = re.compile(r"(\d+)(ms|s|m|h|d)")
_WHOLE = re.compile(r"(?:\d+(?:ms|s|m|h|d))+")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(text: str) -> float:
    """Seconds in a duration string; raises ValueError naming the text when it is not one."""
    cleaned = text.strip().lower() if isinstance(text, str) else ""
    if not cleaned or not _WHOLE.fullmatch(cleaned):
        raise ValueError(f"invalid duration {text!r} (expected e.g. 30s, 5m, 1h, 1h30m)")
    return sum(int(n) * _UNIT_SECONDS[unit] for n, unit in _PART.findall(cleaned))


def format_duration(seconds: float) -> str:
    """The shortest duration string for whole seconds (`90` -> `1m30s`)."""
    whole = int(seconds)
    if whole != seconds:
        return f"{int(seconds * 1000)}ms"
    if whole == 0:
        return "0s"
    out = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, whole = divmod(whole, size)
        if count:
            out.append(f"{count}{unit}")
    return "".join(out)
