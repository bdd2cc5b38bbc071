"""Server-sent events for the control API, resumable with Last-Event-ID."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from proxy.events import EventBus


class EventStream(Response):
    """Server-sent events from the bus until the client leaves, the server stops or we fall behind.

    Written against ASGI directly: a generator in a StreamingResponse would not notice either end.
    """

    media_type = "text/event-stream"

    def __init__(
        self,
        events: EventBus,
        last_id: int | None,
        shutdown: asyncio.Event,
        keepalive: float,
        id_base: int,
    ) -> None:
        self.events, self.shutdown, self.keepalive, self.id_base = (
            events, shutdown, keepalive, id_base
        )  # fmt: skip
        self.last_id = None if last_id is None else last_id - id_base  # as the bus counts
        self.status_code, self.background = 200, None
        self.init_headers({"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    def _backlog(self) -> tuple[list[bytes], int]:
        """What to send before live events: missed history, or `resync` when it is gone.

        An id from before a restart is below `id_base`, so it asks for history that is gone.
        """
        last = self.events.last_id
        if self.last_id is None:
            return [], last
        missed = self.events.since(self.last_id) if 0 <= self.last_id <= last else None
        if missed is None:
            data = {"last_id": self.id_base + last, "detail": "events were missed; re-read holds"}
            return [self._frame(last, "resync", data)], last
        return [self._frame(e.id, e.type, e.data) for e in missed], last

    def _frame(self, event_id: int, event_type: str, data: Any) -> bytes:
        wire_id = self.id_base + event_id
        return f"id: {wire_id}\nevent: {event_type}\ndata: {json.dumps(data)}\n\n".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        with self.events.subscribe() as queue:
            backlog, sent = self._backlog()
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            for chunk in [b": connected\n\n", *backlog]:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            stop = [
                asyncio.ensure_future(_disconnected(receive)),
                asyncio.ensure_future(self.shutdown.wait()),
            ]
            nxt: asyncio.Future[Any] | None = None
            try:
                while True:
                    nxt = nxt or asyncio.ensure_future(queue.get())
                    done, _ = await asyncio.wait(
                        [nxt, *stop], timeout=self.keepalive, return_when=asyncio.FIRST_COMPLETED
                    )
                    if any(task in done for task in stop):
                        break
                    chunk = b": keep-alive\n\n"
                    if nxt in done:
                        event, nxt = nxt.result(), None
                        if event is None:  # dropped for falling behind: the client resumes
                            break
                        if event.id <= sent:
                            continue
                        chunk, sent = self._frame(event.id, event.type, event.data), event.id
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
            finally:
                for task in [*stop, *([nxt] if nxt else [])]:
                    task.cancel()
        await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
