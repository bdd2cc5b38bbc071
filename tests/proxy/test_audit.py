from __future__ import annotations

import asyncio
import logging
import sqlite3
import stat
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, closing, contextmanager
from pathlib import Path
from typing import Any

import pytest

from proxy.audit import COLUMNS, SCHEMA_VERSION, AuditError, AuditStore
from proxy.auditchain import GENESIS, STORED, append_rows, stored_hash
from proxy.records import AuditRecord, Kind


def rec(request_id: str = "r_1", kind: str = Kind.REQUEST, **fields: object) -> AuditRecord:
    return AuditRecord(kind=kind, request_id=request_id, **fields)  # type: ignore[arg-type]


@contextmanager
def outside(path: Path) -> Iterator[sqlite3.Connection]:
    """A second, independent connection, as another process would have."""
    with closing(sqlite3.connect(path, isolation_level=None)) as conn:
        yield conn


def count(path: Path, where: str = "1", *params: object) -> int:
    with outside(path) as conn:
        return int(conn.execute(f"SELECT COUNT(*) FROM audit WHERE {where}", params).fetchone()[0])


@asynccontextmanager
async def opened(path: Path, **options: Any) -> AsyncIterator[AuditStore]:
    store = await AuditStore.open(path, **options)
    try:
        yield store
    finally:
        await store.close()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "audit.db"


@pytest.fixture
async def store(db_path: Path) -> AsyncIterator[AuditStore]:
    store = await AuditStore.open(db_path, commit_timeout=0.5)
    yield store
    await store.close()


# -- durability -------------------------------------------------------------------------------


async def test_append_returns_after_commit_visible_to_another_connection(
    store: AuditStore, db_path: Path
) -> None:
    async def one(i: int) -> None:
        seq = await store.append(rec(f"r_{i}", agent="a"))
        with outside(db_path) as conn:  # right after append returns, before anything else runs
            row = conn.execute("SELECT request_id FROM audit WHERE seq = ?", (seq,)).fetchone()
        assert row == (f"r_{i}",)

    await one(0)
    await asyncio.gather(*(one(i) for i in range(1, 50)))


async def test_group_commit_batches_concurrent_appends(store: AuditStore, db_path: Path) -> None:
    before = store.commits
    seqs = await asyncio.gather(*(store.append(rec(f"r_{i}")) for i in range(300)))
    assert sorted(seqs) == list(range(min(seqs), min(seqs) + 300))
    assert store.commits - before < 30  # far fewer transactions than rows
    assert count(db_path) == 300


async def test_batch_max_splits_transactions(db_path: Path) -> None:
    store = await AuditStore.open(db_path, batch_max=10)
    try:
        await asyncio.gather(*(store.append(rec(f"r_{i}")) for i in range(95)))
        assert store.commits >= 10
    finally:
        await store.close()


async def test_rows_are_append_only(store: AuditStore, db_path: Path) -> None:
    await store.append(rec())
    with outside(db_path) as conn:
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            conn.execute("UPDATE audit SET outcome = 'allowed'")
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            conn.execute("DELETE FROM audit")
    assert count(db_path) == 1


async def test_secrets_are_redacted_before_storing(store: AuditStore) -> None:
    await store.append(
        rec(
            headers=(("Authorization", "Bearer s3cr3t-value"), ("Accept", "*/*")),
            query="api_key=s3cr3t",
            path="/v1/secrets/db-secret:access/ghp_abcdefghijklmnopqrstuvwxyz0123",
            reason="operator pasted ghp_abcdefghijklmnopqrstuvwxyz0123",
            body_preview="-----BEGIN PRIVATE KEY-----\nMIIEv\n-----END PRIVATE KEY-----",
            detail={"password": "hunter2", "votes": ["person:alice"]},
        )
    )
    (row,) = await store.trail("r_1")
    assert row["headers"] == [["Authorization", "Bearer [REDACTED]"], ["Accept", "*/*"]]
    assert row["query"] == "api_key=[REDACTED]"
    assert row["path"] == "/v1/secrets/db-secret:access/[REDACTED]"
    assert row["reason"] == "operator pasted [REDACTED]"
    assert row["body_preview"] == "-----BEGIN PRIVATE KEY-----[REDACTED]-----END PRIVATE KEY-----"
    assert row["detail"] == {"password": "[REDACTED]", "votes": ["person:alice"]}


async def test_unserialisable_row_is_refused_alone(store: AuditStore) -> None:
    bad = store.append(rec("bad", detail={"when": object()}))
    good = store.append(rec("good"))
    results = await asyncio.gather(bad, good, return_exceptions=True)
    assert isinstance(results[0], AuditError)
    assert isinstance(results[1], int)


# -- failing closed ---------------------------------------------------------------------------


async def test_locked_database_times_out_and_nothing_is_accepted(
    store: AuditStore, db_path: Path
) -> None:
    with outside(db_path) as other:
        other.execute("BEGIN EXCLUSIVE")
        other.execute("INSERT INTO audit (at, kind, request_id) VALUES (0, 'x', 'other')")
        start = time.monotonic()
        with pytest.raises(AuditError, match=r"locked|timed out"):
            await store.append(rec("while-locked"))
        assert time.monotonic() - start < 0.5 + 0.3
        assert not store.healthy
        other.execute("ROLLBACK")
    assert await store.append(rec("after")) > 0
    assert store.healthy
    assert count(db_path, "request_id = ?", "while-locked") == 0


async def test_stalled_writer_times_out_and_the_row_is_never_written(
    store: AuditStore, db_path: Path
) -> None:
    release = time.monotonic() + 0.8
    await store._db.create_function("stall", 0, lambda: time.sleep(release - time.monotonic()))
    stall = asyncio.ensure_future(store._db.execute("SELECT stall()"))
    start = time.monotonic()
    with pytest.raises(AuditError, match="timed out"):
        await store.append(rec("stalled"))
    assert 0.45 < time.monotonic() - start < 0.75
    cancelled = asyncio.ensure_future(store.append(rec("cancelled")))
    await asyncio.sleep(0.05)
    cancelled.cancel()
    await stall
    await store.append(rec("later"))
    assert count(db_path, "request_id IN ('stalled', 'cancelled')") == 0
    assert count(db_path, "request_id = 'later'") == 1


async def test_read_only_database_fails_every_waiter(store: AuditStore, db_path: Path) -> None:
    await store._db.execute("PRAGMA query_only=ON")
    results = await asyncio.gather(
        *(store.append(rec(f"r_{i}")) for i in range(5)), return_exceptions=True
    )
    assert all(isinstance(r, AuditError) and "readonly" in str(r) for r in results)
    first = results[0]
    assert isinstance(first, AuditError) and isinstance(first.__cause__, sqlite3.OperationalError)
    assert not store.healthy
    await store._db.execute("PRAGMA query_only=OFF")
    await store.append(rec("again"))
    assert count(db_path) == 1


async def test_full_disk_fails_the_batch(store: AuditStore, db_path: Path) -> None:
    await store.append(rec("first"))
    pages = next(iter(await store._db.execute_fetchall("PRAGMA page_count")))[0]
    await store._db.execute(f"PRAGMA max_page_count={pages}")
    with pytest.raises(AuditError, match="full"):
        await store.append(rec("big", body_preview="x" * 100_000))
    assert count(db_path, "request_id = 'big'") == 0


async def test_closed_store_refuses_at_once(store: AuditStore) -> None:
    await store.close()
    await store.close()  # idempotent
    with pytest.raises(AuditError, match="closed"):
        await store.append(rec())
    with pytest.raises(AuditError, match="closed"):
        store.append_nowait(rec())
    with pytest.raises(AuditError, match="closed"):
        await store.query()
    assert not store.healthy


async def test_dead_writer_refuses_at_once(store: AuditStore) -> None:
    store._task.cancel()
    await asyncio.sleep(0)
    start = time.monotonic()
    with pytest.raises(AuditError, match="stopped"):
        await store.append(rec())
    assert time.monotonic() - start < 0.05
    assert not store.healthy


async def test_append_nowait_is_written_and_failures_only_logged(
    store: AuditStore, db_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store.append_nowait(rec("done", kind=Kind.COMPLETION, status=200))
    await store.flush()
    assert count(db_path, "request_id = 'done'") == 1
    await store._db.execute("PRAGMA query_only=ON")
    with caplog.at_level(logging.ERROR, logger="proxy.audit"):
        store.append_nowait(rec("lost", kind=Kind.COMPLETION))
        with pytest.raises(AuditError, match="1 audit rows were not recorded"):
            await store.flush()
    assert "could not record 1 audit rows" in caplog.text


async def test_close_writes_what_is_queued(db_path: Path) -> None:
    store = await AuditStore.open(db_path, lazy_delay=30)
    for i in range(100):
        store.append_nowait(rec(f"r_{i}", kind=Kind.COMPLETION))
    await asyncio.wait_for(store.close(), 5)  # not after the lazy delay
    assert count(db_path) == 100


async def test_an_unawaited_row_shares_the_commit_of_the_next_awaited_one(db_path: Path) -> None:
    async with opened(db_path, lazy_delay=30) as store:
        store.append_nowait(rec("done", kind=Kind.COMPLETION, status=200))
        await asyncio.sleep(0.2)
        assert count(db_path) == 0  # nobody waits for it: no commit of its own yet
        before = store.commits
        await store.append(rec("next"))
        assert store.commits - before == 1
        assert count(db_path) == 2


async def test_an_unawaited_row_alone_is_written_after_the_lazy_delay(db_path: Path) -> None:
    async with opened(db_path, lazy_delay=0.1) as store:
        store.append_nowait(rec("done", kind=Kind.COMPLETION))
        deadline = time.monotonic() + 5
        while count(db_path) == 0:
            assert time.monotonic() < deadline, "the lone row was never written"
            await asyncio.sleep(0.02)


async def test_flush_writes_unawaited_rows_without_waiting_for_the_delay(db_path: Path) -> None:
    async with opened(db_path, lazy_delay=30) as store:
        store.append_nowait(rec("done", kind=Kind.COMPLETION))
        await asyncio.wait_for(store.flush(), 5)
        assert count(db_path) == 1


def chain(path: Path) -> list[tuple[int, str]]:
    """(seq, request_id) of every row, after checking that each links to the one before."""
    with outside(path) as conn:
        conn.row_factory = sqlite3.Row
        rows = conn.execute("SELECT * FROM audit ORDER BY seq").fetchall()
    previous = GENESIS
    for row in rows:
        assert row["prev_hash"] == previous and row["hash"] == stored_hash(row), row["seq"]
        previous = row["hash"]
    return [(row["seq"], row["request_id"]) for row in rows]


async def test_a_row_appended_by_another_process_meanwhile_stays_in_one_chain(
    store: AuditStore, db_path: Path
) -> None:
    await store.append(rec("before"))
    with outside(db_path) as conn:  # as `interlock audit prune` appends its own row
        conn.execute("BEGIN IMMEDIATE")
        append_rows(conn, [rec("outsider", kind="prune")])
        conn.execute("COMMIT")
    # The store's head is now stale: its batch collides on seq and is chained again.
    assert await store.append(rec("after")) == 3
    await asyncio.gather(*(store.append(rec(f"r_{i}")) for i in range(20)))
    found = chain(db_path)
    assert found[:3] == [(1, "before"), (2, "outsider"), (3, "after")]
    assert [seq for seq, _ in found] == list(range(1, 24))
    assert store.healthy


# -- schema -----------------------------------------------------------------------------------


async def test_file_mode_schema_version_and_columns(store: AuditStore, db_path: Path) -> None:
    await store.append(rec())
    assert stat.S_IMODE(db_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(db_path.with_name("audit.db-wal").stat().st_mode) == 0o600
    with outside(db_path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        names = [row[1] for row in conn.execute("PRAGMA table_info(audit)")]
    assert names == ["seq", "at", "kind", "request_id", *COLUMNS[3:], "interlock_version",
                     "prev_hash", "hash"]  # fmt: skip
    assert sorted(names) == sorted(STORED)


async def test_reopen_keeps_rows_and_seq_continues(db_path: Path) -> None:
    store = await AuditStore.open(db_path)
    first = await store.append(rec("a"))
    await store.close()
    store = await AuditStore.open(db_path, synchronous="full")
    try:
        assert await store.append(rec("b")) == first + 1
    finally:
        await store.close()


async def test_newer_schema_is_refused(db_path: Path) -> None:
    db_path.parent.mkdir()
    with outside(db_path) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(AuditError, match=f"schema version {SCHEMA_VERSION + 1}"):
        await AuditStore.open(db_path)


async def test_bad_options_are_named(db_path: Path) -> None:
    with pytest.raises(ValueError, match="'OFF'"):
        await AuditStore.open(db_path, synchronous="OFF")
    with pytest.raises(ValueError, match="batch_max"):
        await AuditStore.open(db_path, batch_max=0)


# -- reading ----------------------------------------------------------------------------------


async def _history(store: AuditStore) -> None:
    t = 1_000.0
    await store.append(rec("r_a", at=t, agent="bot", host="api.x", outcome="allowed", rule="ok"))
    await store.append(
        rec("r_a", Kind.COMPLETION, at=t + 1, status=201, response_size=7, duration_ms=40)
    )
    await store.append(
        rec("r_b", at=t + 2, agent="bot", host="pay.x", outcome="pending", rule="pay", hold_id="h1")
    )
    await store.append(rec("r_b", Kind.VOTE, at=t + 3, outcome="pending", rule="pay", hold_id="h1"))
    await store.append(
        rec("r_b", Kind.HOLD, at=t + 4, outcome="approved", rule="pay", hold_id="h1")
    )
    await store.append(
        rec("r_b", Kind.COMPLETION, at=t + 5, status=200, response_size=2, duration_ms=9)
    )
    await store.append(
        rec("r_c", at=t + 6, agent="ci", host="pay.x", outcome="pending", rule="pay", hold_id="h2")
    )
    await store.append(rec("r_c", Kind.HOLD, at=t + 7, outcome="denied", rule="pay", hold_id="h2"))
    await store.append(
        rec("r_d", at=t + 8, agent="ci", host="api.x", outcome="denied", rule="no", status=403)
    )


async def test_query_newest_first_with_final_state(store: AuditStore) -> None:
    await _history(store)
    rows = await store.query()
    assert [r["request_id"] for r in rows] == ["r_d", "r_c", "r_b", "r_a"]
    by_id = {r["request_id"]: r for r in rows}
    assert by_id["r_a"]["final_outcome"] == "allowed"
    assert (by_id["r_a"]["status"], by_id["r_a"]["response_size"], by_id["r_a"]["duration_ms"]) == (
        201,
        7,
        40,
    )
    assert by_id["r_b"]["outcome"] == "pending" and by_id["r_b"]["final_outcome"] == "approved"
    assert by_id["r_b"]["status"] == 200
    assert by_id["r_c"]["final_outcome"] == "denied" and by_id["r_c"]["status"] is None
    assert by_id["r_d"]["final_outcome"] == "denied" and by_id["r_d"]["status"] == 403
    assert by_id["r_a"]["headers"] == [] and by_id["r_a"]["detail"] is None


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"agent": "bot"}, ["r_b", "r_a"]),
        ({"host": "pay.x"}, ["r_c", "r_b"]),
        ({"outcome": "denied"}, ["r_d"]),
        ({"rule": "pay"}, ["r_c", "r_b"]),
        ({"since": 1_002.0, "until": 1_008.0}, ["r_c", "r_b"]),
        ({"agent": "ci", "host": "api.x"}, ["r_d"]),
        ({"kind": Kind.HOLD}, ["r_c", "r_b"]),
        ({"kind": None, "rule": "pay", "limit": 3}, ["r_c", "r_c", "r_b"]),
    ],
)
async def test_query_filters(
    store: AuditStore, filters: dict[str, object], expected: list[str]
) -> None:
    await _history(store)
    assert [r["request_id"] for r in await store.query(**filters)] == expected  # type: ignore[arg-type]


async def test_query_paging(store: AuditStore) -> None:
    await _history(store)
    first = await store.query(limit=2)
    rest = await store.query(limit=2, before_seq=first[-1]["seq"])
    assert [r["request_id"] for r in first + rest] == ["r_d", "r_c", "r_b", "r_a"]
    assert await store.query(before_seq=1) == []
    with pytest.raises(ValueError, match="limit"):
        await store.query(limit=0)


async def test_trail_in_seq_order(store: AuditStore) -> None:
    await _history(store)
    trail = await store.trail("r_b")
    assert [r["kind"] for r in trail] == ["request", "vote", "hold", "completion"]
    assert [r["seq"] for r in trail] == sorted(r["seq"] for r in trail)
    assert await store.trail("nope") == []


async def test_stats_for_rule(store: AuditStore) -> None:
    await _history(store)
    await store.append(rec("r_e", Kind.HOLD, at=1_020.0, outcome="approved", rule="pay"))
    assert await store.stats_for_rule("pay") == {
        "rule": "pay", "approved": 2, "denied": 1, "expired": 0, "decisions": 3,
        "last_decision_at": 1_020.0,
    }  # fmt: skip
    assert await store.stats_for_rule("unknown") == {
        "rule": "unknown", "approved": 0, "denied": 0, "expired": 0, "decisions": 0,
        "last_decision_at": None,
    }  # fmt: skip


async def test_reads_do_not_wait_for_a_locked_writer(store: AuditStore, db_path: Path) -> None:
    await _history(store)
    with outside(db_path) as other:
        other.execute("BEGIN EXCLUSIVE")
        other.execute("INSERT INTO audit (at, kind, request_id) VALUES (0, 'x', 'other')")
        start = time.monotonic()
        assert len(await store.query()) == 4
        assert time.monotonic() - start < 0.2
        other.execute("ROLLBACK")
