"""Audit appends per second awaiting commit, at 1, 16 and 256 concurrent appenders (opt-in:
`pytest -m bench tests/bench -s`).

Each appender awaits `append` (the gate's path: a row is committed before its request moves on)
in a loop, so throughput shows how well group commit amortises one transaction over many rows.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from pathlib import Path

import pytest

from proxy.audit import DEFAULT_REDACTOR, AuditStore
from proxy.records import AuditRecord, Kind

pytestmark = pytest.mark.bench
APPENDERS = (1, 16, 256)
ROWS = 4_000
HEADERS = (
    ("Host", "api.github.com"),
    ("User-Agent", "agent/1.0"),
    ("Authorization", "Bearer [REDACTED]"),
    ("Accept", "application/json"),
    ("Content-Type", "application/json"),
)


def _record(i: int) -> AuditRecord:
    return AuditRecord(
        kind=Kind.REQUEST, request_id=f"r_{i:016x}", agent="bench", client="127.0.0.1",
        method="POST", scheme="https", host="api.github.com", port=443,
        path=f"/repos/acme/widgets/issues/{i}/comments", query="per_page=100",
        headers=HEADERS, body_size=512, body_sha256="0" * 64,
        body_preview='{"body":"Looks good to me, merging after CI passes.","draft":false}',
        rule="github-write", action="allow", outcome="allowed", decided_by="policy",
        reason="comments are fine", policy_digest="d" * 16,
    )  # fmt: skip


async def _run(store: AuditStore, appenders: int, rows: int) -> tuple[float, list[float]]:
    latencies: list[float] = []
    per_appender = rows // appenders

    async def appender(offset: int) -> None:
        for i in range(per_appender):
            start = time.perf_counter()
            await store.append(_record(offset + i))
            latencies.append(time.perf_counter() - start)

    start = time.perf_counter()
    await asyncio.gather(*(appender(n * per_appender) for n in range(appenders)))
    return time.perf_counter() - start, latencies


@pytest.mark.parametrize("synchronous", ["NORMAL", "FULL"])
@pytest.mark.parametrize("appenders", APPENDERS)
async def test_append_throughput(tmp_path: Path, appenders: int, synchronous: str) -> None:
    store = await AuditStore.open(tmp_path / "bench.db", synchronous=synchronous)
    try:
        await _run(store, appenders, 256)  # warm up
        commits = store.commits
        elapsed, latencies = await _run(store, appenders, ROWS)
        commits = store.commits - commits
    finally:
        await store.close()
    count = len(latencies)
    p99 = statistics.quantiles(latencies, n=100)[98]
    print(f"\n{synchronous:>6} {appenders:>4} appenders: {count / elapsed:8.0f} appends/s, "
          f"median {statistics.median(latencies) * 1000:6.2f} ms, p99 {p99 * 1000:6.2f} ms, "
          f"{count / commits:6.1f} rows per commit")  # fmt: skip
    assert count == ROWS // appenders * appenders


async def test_redaction_cost_per_row(tmp_path: Path) -> None:
    """What the store's safety-net redaction adds to each row."""
    per_row_us = {}
    for name, redactor in (("with", DEFAULT_REDACTOR), ("without", None)):
        store = await AuditStore.open(tmp_path / f"{name}.db", redactor=redactor)
        try:
            elapsed, _ = await _run(store, 256, ROWS)
        finally:
            await store.close()
        per_row_us[name] = elapsed / ROWS * 1e6
    print(f"\nper row at 256 appenders: {per_row_us['with']:.1f} µs with the store's redaction, "
          f"{per_row_us['without']:.1f} µs without")  # fmt: skip
