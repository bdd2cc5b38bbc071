"""An in-process event stream with ids, so SSE clients can resume with Last-Event-ID."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Event:
    id: int
    type: str
    data: dict[str, Any]
    at: float


class EventBus:
    """Publishes events to live subscribers and keeps recent history for resuming.

    Publishing never blocks: a subscriber that falls `queue_size` events behind is dropped (its
    stream ends) and must reconnect with Last-Event-ID, which replays from history.
    """

    def __init__(self, history: int = 10_000, queue_size: int = 10_000) -> None:
        self._history: deque[Event] = deque(maxlen=history)
        self._ids = itertools.count(1)
        self._subscribers: set[asyncio.Queue[Event | None]] = set()
        self._queue_size = queue_size

    @property
    def last_id(self) -> int:
        return self._history[-1].id if self._history else 0

    def publish(self, type: str, data: dict[str, Any]) -> Event:
        event = Event(next(self._ids), type, data, time.time())
        self._history.append(event)
        for queue in list(self._subscribers):
            try:
                queue.put_nowait(event)
            except asyncio.QueueFull:
                self._subscribers.discard(queue)
                queue.get_nowait()  # make room for the end-of-stream marker
                queue.put_nowait(None)
        return event

    def since(self, last_id: int) -> list[Event] | None:
        """Events after `last_id`, or None when history no longer reaches back that far."""
        if last_id >= self.last_id:
            return []
        if not self._history or self._history[0].id > last_id + 1:
            return None
        return [e for e in self._history if e.id > last_id]

    @contextmanager
    def subscribe(self) -> Iterator[asyncio.Queue[Event | None]]:
        """A queue of new events; None in it means the subscriber fell behind and was dropped."""
        queue: asyncio.Queue[Event | None] = asyncio.Queue(self._queue_size)
        self._subscribers.add(queue)
        try:
            yield queue
        finally:
            self._subscribers.discard(queue)
