"""The dashboard under load (opt-in: `pytest -m bench tests/bench/test_tui_bench.py -s`).

A real `interlock run` in its own process holds 500 real requests (from a `loadkit hold` process)
while a third process sends 50 allowed requests a second through it. The dashboard runs here,
headless, following the live events. Each key press is timed from the press until its effect is
in the app's state (the cursor on another request; on the queue, the detail pane showing it); the
target is under 100 ms for every press, on the activity screen and on the queue.
"""

from __future__ import annotations

import asyncio
import gc
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from textual.pilot import Pilot

from proxy.client import ApiClient
from tests.bench.loadkit import free_port, spawn, start_upstream, stop, wait_listening
from tui.app import InterlockApp
from tui.client import ApiBackend
from tui.screens.activity_screen import ActivityScreen
from tui.screens.queue_screen import QueueScreen
from tui.widgets.activity_table import ActivityTable
from tui.widgets.hold_table import HoldTable

pytestmark = pytest.mark.bench

HOLDS = 500
RATE = 50  # allowed requests a second
PRESSES = 40
TARGET_MS = 100.0

POLICY = """version: 1
default: allow
rules:
  - name: hold-all-posts
    action: hold
    reason: A person decides.
    timeout: 10m
    respond_pending_after: 9m
    match: {method: POST, path: /hold/**}
"""

# 50 requests a second, on time whatever the latency, each on its own connection.
PACER = """
import asyncio, sys, time
proxy, upstream, rate, seconds = (int(a) for a in sys.argv[1:5])
async def one(i):
    try:
        r, w = await asyncio.open_connection("127.0.0.1", proxy)
        w.write(f"GET http://127.0.0.1:{upstream}/live/{i} HTTP/1.1\\r\\nHost: x\\r\\n"
                "Connection: close\\r\\n\\r\\n".encode())
        await w.drain(); await r.read(); w.close()
    except OSError:
        pass
async def main():
    start, tasks = time.monotonic(), []
    for i in range(rate * seconds):
        await asyncio.sleep(max(0.0, start + i / rate - time.monotonic()))
        tasks.append(asyncio.ensure_future(one(i)))
    await asyncio.gather(*tasks)
asyncio.run(main())
"""


async def until(condition: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.001)


async def timed_press(pilot: Pilot[None], key: str, done: Callable[[], object]) -> float:
    """From the key press until its effect is in the app's state (polled every millisecond)."""
    started = time.perf_counter()
    pressing = asyncio.ensure_future(pilot.press(key))
    await until(done, 5, f"the effect of {key!r}")
    answered = (time.perf_counter() - started) * 1000
    await pressing
    return answered


def report(name: str, times: list[float]) -> str:
    ordered = sorted(times)
    p95 = ordered[int(len(ordered) * 0.95) - 1]
    return (
        f"{name}: {len(times)} presses, median {statistics.median(times):.1f} ms, "
        f"p95 {p95:.1f} ms, max {max(times):.1f} ms"
    )


async def test_key_presses_answer_within_100_ms_under_load(tmp_path: Path) -> None:
    upstream, upstream_port = start_upstream(tmp_path, lifetime=300)
    proxy_port, api_port = free_port(), free_port()
    (tmp_path / "policy.yaml").write_text(POLICY)
    data = tmp_path / "data"
    proxy = spawn(
        [sys.executable, "-m", "proxy.cli", "run", "--policy", str(tmp_path / "policy.yaml"),
         "--listen", f"127.0.0.1:{proxy_port}", "--api-listen", f"127.0.0.1:{api_port}",
         "--data-dir", str(data), "--auth", "optional", "--max-pending", str(HOLDS * 2)],
        tmp_path / "proxy.out", tmp_path / "proxy.err",
    )  # fmt: skip
    others = []
    try:
        wait_listening(api_port, proxy, tmp_path / "proxy.err", 30)
        wait_listening(proxy_port, proxy, tmp_path / "proxy.err", 30)
        gc.freeze()  # as `interlock tui` does before it runs the app
        client = ApiClient.from_data_dir(data, f"http://127.0.0.1:{api_port}", channel="tui")
        app = InterlockApp(ApiBackend(client))
        async with app.run_test(size=(120, 40)) as pilot:
            others.append(spawn(
                [sys.executable, "-m", "tests.bench.loadkit", "hold", "--proxy-port",
                 str(proxy_port), "--upstream-port", str(upstream_port), "--count", str(HOLDS),
                 "--lifetime", "300", "--result", str(tmp_path / "holds.json")],
                tmp_path / "hold.out", tmp_path / "hold.err",
            ))  # fmt: skip
            await until(lambda: len(app.book) == HOLDS, 120, f"{HOLDS} holds in the dashboard")
            queue = app.get_screen("queue")
            assert isinstance(queue, QueueScreen)
            await until(lambda: queue.query_one(HoldTable).row_count == HOLDS, 10, "the rows")
            others.append(spawn(
                [sys.executable, "-c", PACER, str(proxy_port), str(upstream_port), str(RATE), "60"],
                tmp_path / "pace.out", tmp_path / "pace.err",
            ))  # fmt: skip
            await pilot.press("2")
            activity = app.get_screen("activity")
            assert isinstance(activity, ActivityScreen)
            table = activity.query_one(ActivityTable)
            start_rows = app.activity.appended
            await until(lambda: app.activity.appended > start_rows + RATE, 10, "live requests")
            await until(lambda: table.row_count > 10, 10, "activity rows")
            flowed_from, flowed_at = app.activity.appended, time.monotonic()
            on_activity = []
            for n in range(PRESSES):
                # Trimmed rows carry the cursor's row upwards: at the top, only down moves it.
                key = "down" if table.cursor_row == 0 or n % 2 else "up"
                before = table.cursor_key()
                on_activity.append(
                    await timed_press(pilot, key, lambda b=before: table.cursor_key() != b)
                )
            rate = (app.activity.appended - flowed_from) / (time.monotonic() - flowed_at)
            await pilot.press("1")
            holds = queue.query_one(HoldTable)
            on_queue = []
            for n in range(PRESSES):
                key = "down" if n % 2 == 0 else "up"
                before = queue.shown_id
                on_queue.append(await timed_press(pilot, key, lambda b=before: queue.shown_id != b))
                assert queue.shown_id == holds.cursor_key()
            lines = [
                f"{len(app.book)} holds pending, live requests arriving at {rate:.0f}/s",
                report("activity screen (up/down)", on_activity),
                report("queue screen (down/up, detail pane follows)", on_queue),
            ]
            print("\n" + "\n".join(lines))
            assert rate > RATE * 0.6
            assert max(on_activity) < TARGET_MS and max(on_queue) < TARGET_MS, lines
    finally:
        gc.unfreeze()
        for process in [*others, proxy, upstream]:
            stop(process)
            if process.stdout is not None:
                process.stdout.close()
