"""The decision log: one JSON line per answered request, in order, written out in bursts.

A stream backed by a file or pipe gets the lines of a burst in one write: at most `flush_after`
seconds after the first of them, on `flush()`, and at exit. (Containers run Python unbuffered, so
a write per line would cost a system call per request.) Other streams get each line at once.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import json
import weakref
from typing import Any, TextIO

FLUSH_AFTER = 0.05
_open: weakref.WeakSet[DecisionLog] = weakref.WeakSet()


class DecisionLog:
    def __init__(self, stream: TextIO, flush_after: float = FLUSH_AFTER) -> None:
        self.stream = stream
        self.flush_after = flush_after
        self._pending: list[str] = []
        self._timer: asyncio.TimerHandle | None = None
        self._buffered = _has_file(stream)
        if self._buffered:
            _open.add(self)

    def write(self, line: dict[str, Any]) -> None:
        """Queue one line; a stream that fails (closed, full disk) loses it, never the request."""
        text = json.dumps(line) + "\n"
        if not self._buffered:
            with contextlib.suppress(OSError, ValueError):
                self.stream.write(text)
            return
        self._pending.append(text)
        if self._timer is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                self.flush()
                return
            self._timer = loop.call_later(self.flush_after, self.flush)

    def flush(self) -> None:
        """Write every queued line to the stream, and flush it."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        text, self._pending = "".join(self._pending), []
        with contextlib.suppress(OSError, ValueError):
            if text:
                self.stream.write(text)
            self.stream.flush()


def _has_file(stream: TextIO) -> bool:
    try:
        stream.fileno()
    except (OSError, ValueError, AttributeError):  # io.UnsupportedOperation is both
        return False
    return True


@atexit.register
def _flush_all() -> None:
    for log in list(_open):
        log.flush()
