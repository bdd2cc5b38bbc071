"""The decision log: every line, in order; one write per burst to files, each line at once to
in-memory streams."""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path

from proxy.decisionlog import DecisionLog


class CountingFile(io.StringIO):
    """An in-memory stream that claims a file descriptor, and counts writes and flushes."""

    def __init__(self) -> None:
        super().__init__()
        self.writes = self.flushes = 0

    def fileno(self) -> int:
        return 1

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)

    def flush(self) -> None:
        self.flushes += 1


async def test_a_burst_is_one_write_flushed_soon_after() -> None:
    stream = CountingFile()
    log = DecisionLog(stream, flush_after=0.02)
    for i in range(50):
        log.write({"n": i})
    assert stream.getvalue() == ""
    await asyncio.sleep(0.1)
    assert [json.loads(line)["n"] for line in stream.getvalue().splitlines()] == list(range(50))
    assert (stream.writes, stream.flushes) == (1, 1)


async def test_flush_writes_everything_at_once() -> None:
    stream = CountingFile()
    log = DecisionLog(stream, flush_after=60)
    log.write({"n": 1})
    log.write({"n": 2})
    log.flush()
    assert stream.getvalue() == '{"n": 1}\n{"n": 2}\n'


def test_without_an_event_loop_each_line_is_flushed() -> None:
    stream = CountingFile()
    DecisionLog(stream).write({"n": 1})
    assert stream.getvalue() == '{"n": 1}\n' and stream.flushes == 1


async def test_an_in_memory_stream_sees_each_line_at_once() -> None:
    stream = io.StringIO()
    DecisionLog(stream).write({"n": 1})
    assert stream.getvalue() == '{"n": 1}\n'


async def test_a_broken_stream_loses_lines_not_requests(tmp_path: Path) -> None:
    stream = (tmp_path / "log").open("w")
    log = DecisionLog(stream)
    stream.close()
    log.write({"n": 1})
    log.flush()
