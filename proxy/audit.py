"""The audit log: append-only SQLite rows, committed by one writer in groups before anyone proceeds.

`append` returns only once the row's transaction has committed; every failure becomes an
`AuditError`, which the gate turns into a refusal (fail closed).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sqlite3
from collections import deque
from collections.abc import Coroutine, Iterable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import aiosqlite

from proxy.records import AuditRecord, Kind
from proxy.redact import Redactor

log = logging.getLogger(__name__)

COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(AuditRecord))
MAX_QUERY_LIMIT = 1000
DEFAULT_REDACTOR = Redactor()
_INSERT = f"INSERT INTO audit ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
_FILTERS = ("agent", "host", "outcome", "rule", "kind")
_HOLD_OUTCOMES = ("approved", "denied", "expired")
_APPEND_ONLY = "BEGIN SELECT RAISE(ABORT, 'audit rows are append-only'); END"
# Forward-only: step N (its statements) brings the schema from version N-1 to N.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE audit (
            seq INTEGER PRIMARY KEY AUTOINCREMENT, at REAL NOT NULL, kind TEXT NOT NULL,
            request_id TEXT NOT NULL, agent TEXT, client TEXT, method TEXT, scheme TEXT,
            host TEXT, port INTEGER, path TEXT, query TEXT, headers TEXT NOT NULL DEFAULT '[]',
            body_size INTEGER, body_sha256 TEXT, body_preview TEXT, rule TEXT, action TEXT,
            outcome TEXT, decided_by TEXT, channel TEXT, reason TEXT, hold_id TEXT,
            held_ms INTEGER, status INTEGER, response_size INTEGER, duration_ms INTEGER,
            policy_digest TEXT, detail TEXT)""",
        # Single-column indexes end in the rowid, so `col = ? ORDER BY seq DESC` needs no sort.
        "CREATE INDEX audit_at ON audit (at)",
        "CREATE INDEX audit_kind ON audit (kind)",
        "CREATE INDEX audit_agent ON audit (agent)",
        "CREATE INDEX audit_host ON audit (host)",
        "CREATE INDEX audit_outcome ON audit (outcome)",
        "CREATE INDEX audit_rule ON audit (rule)",
        "CREATE INDEX audit_request_id ON audit (request_id)",
        "CREATE INDEX audit_hold_id ON audit (hold_id)",
        "CREATE INDEX audit_hold_rule ON audit (rule, outcome) WHERE kind = 'hold'",
        f"CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit {_APPEND_ONLY}",
        f"CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit {_APPEND_ONLY}",
    ),
)
SCHEMA_VERSION = len(MIGRATIONS)


class AuditError(Exception):
    """A row could not be durably recorded (or read); the gate must refuse the request."""


@dataclass(slots=True)
class _Entry:
    params: tuple[Any, ...]
    waiter: asyncio.Future[int] | None  # None for append_nowait


_tasks: set[asyncio.Task[None]] = set()


def _spawn(coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
    """A named task kept referenced until done (as mitmproxy's `asyncio_utils.create_task`)."""
    task = asyncio.create_task(coro, name=name)
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)
    return task


class AuditStore:
    """Audit rows in SQLite (WAL), written by a single task that commits queued rows together.

    Rows are append-only: triggers refuse UPDATE and DELETE. Retention will come from a separate
    prune step, which must drop and recreate `audit_no_delete` inside its own transaction.
    """

    def __init__(
        self,
        path: Path,
        db: aiosqlite.Connection,
        reader: aiosqlite.Connection,
        commit_timeout: float,
        batch_max: int,
        redactor: Redactor | None,
    ) -> None:
        """Use `AuditStore.open`."""
        self.path = path
        self._db, self._reader = db, reader
        self._commit_timeout, self._batch_max, self._redactor = commit_timeout, batch_max, redactor
        self._queue: deque[_Entry] = deque()
        self._wakeup = asyncio.Event()
        self._enqueued = self._settled = self._failed = self._commits = 0
        self._flushers: list[tuple[int, asyncio.Future[None]]] = []
        self._last_error: BaseException | None = None
        self._closed = False
        self._close_done: asyncio.Future[None] | None = None
        self._task = _spawn(self._write_loop(), f"interlock audit writer ({path.name})")
        self._task.add_done_callback(self._writer_stopped)

    @classmethod
    async def open(
        cls,
        path: Path,
        *,
        synchronous: str = "NORMAL",
        commit_timeout: float = 5.0,
        batch_max: int = 512,
        redactor: Redactor | None = DEFAULT_REDACTOR,
    ) -> AuditStore:
        """Open (creating, mode 0600) and migrate the database, and start the writer.

        NORMAL survives a crash of the process; FULL also survives a power loss, at a cost.
        `redactor` is a last line of defence over what callers should already have redacted.
        """
        sync = synchronous.upper()
        if sync not in ("NORMAL", "FULL"):
            raise ValueError(f"synchronous must be NORMAL or FULL, not {synchronous!r}")
        if commit_timeout <= 0:
            raise ValueError(f"commit_timeout must be positive, not {commit_timeout!r}")
        if batch_max < 1:
            raise ValueError(f"batch_max must be at least 1, not {batch_max!r}")
        path = Path(path)
        try:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.close(os.open(path, os.O_CREAT | os.O_RDONLY, 0o600))
        except OSError as exc:
            raise AuditError(f"cannot create the audit database {path}: {exc}") from exc
        busy_ms = max(1, int(commit_timeout * 800))  # wait out a brief lock, within the timeout
        db = reader = None
        try:
            db = await aiosqlite.connect(path, isolation_level=None)
            mode = await db.execute_fetchall("PRAGMA journal_mode=WAL")
            if next(iter(mode))[0] != "wal":
                raise AuditError(f"{path}: SQLite refused WAL mode")
            await db.execute(f"PRAGMA synchronous={sync}")
            await db.execute(f"PRAGMA busy_timeout={busy_ms}")
            await db.execute("PRAGMA journal_size_limit=67108864")  # WAL shrinks back to 64 MiB
            await _migrate(db, path)
            reader = await aiosqlite.connect(path, isolation_level=None)
            await reader.execute("PRAGMA query_only=ON")
            await reader.execute(f"PRAGMA busy_timeout={busy_ms}")
            reader.row_factory = sqlite3.Row
        except BaseException as exc:
            for conn in (db, reader):
                if conn is not None:
                    await conn.close()  # its thread would otherwise keep the process alive
            if isinstance(exc, sqlite3.Error | OSError):
                raise AuditError(f"cannot open the audit database {path}: {exc}") from exc
            raise
        return cls(path, db, reader, commit_timeout, batch_max, redactor)

    @property
    def healthy(self) -> bool:
        """Open, writer running, and the last write attempt committed."""
        return not self._closed and not self._task.done() and self._last_error is None

    @property
    def commits(self) -> int:
        """Transactions committed so far (each holds one or more rows)."""
        return self._commits

    # -- writing ----------------------------------------------------------------------------

    async def append(self, record: AuditRecord) -> int:
        """Record one row and return its seq once its transaction has committed."""
        waiter = self._enqueue(record, wait=True)
        assert waiter is not None
        try:
            return await asyncio.wait_for(waiter, self._commit_timeout)
        except TimeoutError:
            raise AuditError(
                f"audit write timed out after {self._commit_timeout:g} s "
                f"(database {self.path} locked or writer stalled)"
            ) from None

    def append_nowait(self, record: AuditRecord) -> None:
        """Queue a row without waiting; a failure to write it is logged, not raised."""
        self._enqueue(record, wait=False)

    async def flush(self) -> None:
        """Wait until every row queued so far has been written; AuditError if any was lost."""
        self._check_writer()
        failed_before, target = self._failed, self._enqueued
        if self._settled < target:
            done = asyncio.get_running_loop().create_future()
            self._flushers.append((target, done))
            await done
        if self._failed > failed_before:
            raise AuditError(f"{self._failed - failed_before} audit rows were not recorded")

    async def close(self) -> None:
        """Write what is queued, stop the writer and close the database. Idempotent."""
        if self._close_done is not None:
            return await asyncio.shield(self._close_done)
        self._closed = True
        self._close_done = asyncio.get_running_loop().create_future()
        self._wakeup.set()
        try:
            await asyncio.wait({self._task}, timeout=2 * self._commit_timeout)
            if not self._task.done():
                log.error("audit writer did not finish in time; %d rows lost", len(self._queue))
                self._task.cancel()
                await asyncio.wait({self._task})
            try:
                await self._db.close()
            finally:
                await self._reader.close()
        finally:
            self._close_done.set_result(None)

    def _check_writer(self) -> None:
        if self._closed:
            raise AuditError(f"the audit store {self.path} is closed")
        if self._task.done():
            raise AuditError(f"the audit writer for {self.path} has stopped")

    def _enqueue(self, record: AuditRecord, *, wait: bool) -> asyncio.Future[int] | None:
        self._check_writer()
        params = self._params(record)
        waiter = asyncio.get_running_loop().create_future() if wait else None
        self._queue.append(_Entry(params, waiter))
        self._enqueued += 1
        self._wakeup.set()
        return waiter

    def _params(self, record: AuditRecord) -> tuple[Any, ...]:
        if not record.kind or not record.request_id:
            raise AuditError(f"audit row needs a kind and a request_id, got {record!r}")
        values = {name: getattr(record, name) for name in COLUMNS}
        if (r := self._redactor) is not None:  # a second line of defence, kept cheap
            values["headers"] = r.headers(record.headers)
            values["detail"] = r.redact_json(record.detail)
            text, shapes = r.redact_text, r.redact_shapes
            for name, redact in (("query", text), ("reason", text), ("path", shapes),
                                 ("body_preview", shapes)):  # fmt: skip
                values[name] = redact(values[name]) if values[name] else values[name]
        try:
            values["headers"] = json.dumps([list(h) for h in values["headers"]], ensure_ascii=False)
            if values["detail"] is not None:
                values["detail"] = json.dumps(values["detail"], ensure_ascii=False, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise AuditError(
                f"audit row for {record.request_id} is not serialisable: {exc}"
            ) from exc
        return tuple(values[name] for name in COLUMNS)

    async def _write_loop(self) -> None:
        while self._queue or not self._closed:
            if not self._queue:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            batch: list[_Entry] = []
            while self._queue and len(batch) < self._batch_max:
                entry = self._queue.popleft()
                if entry.waiter is not None and entry.waiter.done():
                    self._settle(1)  # its append gave up (timeout or cancel): never write it
                else:
                    batch.append(entry)
            if batch:
                await self._write(batch)

    async def _write(self, batch: list[_Entry]) -> None:
        try:
            await self._db.execute("BEGIN IMMEDIATE")
            try:
                await self._db.executemany(_INSERT, [entry.params for entry in batch])
                last = next(iter(await self._db.execute_fetchall("SELECT last_insert_rowid()")))[0]
                live = [e for e in batch if e.waiter is None or not e.waiter.done()]
                if len(live) < len(batch):  # someone gave up meanwhile: write only the others
                    await self._db.execute("ROLLBACK")
                    self._queue.extendleft(reversed(live))
                    self._settle(len(batch) - len(live))
                    return
                await self._db.execute("COMMIT")
            except Exception:
                if self._db.in_transaction:
                    await self._db.execute("ROLLBACK")
                raise
        except Exception as exc:
            self._fail(batch, exc)
            return
        self._commits += 1
        self._last_error = None
        for seq, entry in enumerate(batch, start=last - len(batch) + 1):
            if entry.waiter is None:
                continue
            if entry.waiter.done():
                log.warning("audit row %d was committed after its writer stopped waiting", seq)
            else:
                entry.waiter.set_result(seq)
        self._settle(len(batch))

    def _fail(self, batch: Iterable[_Entry], exc: BaseException) -> None:
        self._last_error = exc
        lost = 0
        for entry in batch:
            lost += 1
            if entry.waiter is None:
                continue
            if not entry.waiter.done():
                error = AuditError(f"audit commit to {self.path} failed: {exc}")
                error.__cause__ = exc
                entry.waiter.set_exception(error)
        self._failed += lost
        log.error("could not record %d audit rows in %s: %s", lost, self.path, exc)
        self._settle(lost)

    def _settle(self, count: int) -> None:
        self._settled += count
        while self._flushers and self._flushers[0][0] <= self._settled:
            _, done = self._flushers.pop(0)
            if not done.done():
                done.set_result(None)

    def _writer_stopped(self, task: asyncio.Task[None]) -> None:
        if task.cancelled():
            cause: BaseException = AuditError("the audit writer was cancelled")
        elif (exc := task.exception()) is not None:
            log.error("audit writer for %s crashed", self.path, exc_info=exc)
            cause = exc
        else:
            cause = AuditError("the audit store is closed")
        if self._queue:
            self._fail(list(self._queue), cause)
            self._queue.clear()
        for _, done in self._flushers:
            if not done.done():
                done.set_result(None)
        self._flushers.clear()

    # -- reading ----------------------------------------------------------------------------

    async def query(
        self,
        *,
        since: float | None = None,
        until: float | None = None,
        agent: str | None = None,
        host: str | None = None,
        outcome: str | None = None,
        rule: str | None = None,
        kind: str | None = "request",
        limit: int = 100,
        before_seq: int | None = None,
    ) -> list[dict[str, Any]]:
        """Rows newest first (`at` in [since, until), `seq` below before_seq for paging).

        Request rows also get `final_outcome` (their latest request or hold outcome) and the
        `status`, `response_size` and `duration_ms` of their completion row, if any.
        """
        if not 1 <= limit <= MAX_QUERY_LIMIT:
            raise ValueError(f"limit must be between 1 and {MAX_QUERY_LIMIT}, not {limit}")
        values = {"agent": agent, "host": host, "outcome": outcome, "rule": rule, "kind": kind}
        where = [f"{name} = ?" for name in _FILTERS if values[name] is not None]
        params: list[Any] = [values[name] for name in _FILTERS if values[name] is not None]
        for clause, value in (("at >= ?", since), ("at < ?", until), ("seq < ?", before_seq)):
            if value is not None:
                where.append(clause)
                params.append(value)
        sql = "SELECT * FROM audit"
        if where:
            sql += " WHERE " + " AND ".join(where)
        rows = await self._read(sql + " ORDER BY seq DESC LIMIT ?", (*params, limit))
        if kind == Kind.REQUEST and rows:
            await self._merge_final_state(rows)
        return rows

    async def trail(self, request_id: str) -> list[dict[str, Any]]:
        """Every row of one request, in the order they were written."""
        return await self._read(
            "SELECT * FROM audit WHERE request_id = ? ORDER BY seq", (request_id,)
        )

    async def stats_for_rule(self, rule: str) -> dict[str, Any]:
        """How holds of `rule` ended: counts per final outcome and when the last one was decided."""
        rows = await self._read(
            "SELECT outcome, COUNT(*) AS n, MAX(at) AS last FROM audit"
            " WHERE kind = 'hold' AND rule = ? GROUP BY outcome",
            (rule,),
        )
        found = {row["outcome"]: row for row in rows if row["outcome"] in _HOLD_OUTCOMES}
        counts = {name: found[name]["n"] if name in found else 0 for name in _HOLD_OUTCOMES}
        last = max((row["last"] for row in found.values()), default=None)
        return {"rule": rule, **counts, "decisions": sum(counts.values()), "last_decision_at": last}

    async def _merge_final_state(self, rows: list[dict[str, Any]]) -> None:
        ids = list(dict.fromkeys(row["request_id"] for row in rows))
        later = await self._read(
            "SELECT request_id, kind, outcome, status, response_size, duration_ms FROM audit"
            f" WHERE request_id IN ({', '.join('?' * len(ids))})"
            " AND kind IN ('request', 'hold', 'completion') ORDER BY seq",
            ids,
        )
        final: dict[str, str | None] = {}
        completion: dict[str, dict[str, Any]] = {}
        for row in later:
            if row["kind"] == Kind.COMPLETION:
                completion[row["request_id"]] = row
            else:
                final[row["request_id"]] = row["outcome"]
        for row in rows:
            row["final_outcome"] = final.get(row["request_id"], row["outcome"])
            done = completion.get(row["request_id"])
            if done is not None:
                row.update(status=done["status"], response_size=done["response_size"],
                           duration_ms=done["duration_ms"])  # fmt: skip

    async def _read(self, sql: str, params: Iterable[Any]) -> list[dict[str, Any]]:
        if self._closed:
            raise AuditError(f"the audit store {self.path} is closed")
        try:
            rows = await self._reader.execute_fetchall(sql, tuple(params))
        except (sqlite3.Error, ValueError) as exc:
            raise AuditError(f"audit read from {self.path} failed: {exc}") from exc
        return [_decode(row) for row in rows]


def _decode(row: sqlite3.Row) -> dict[str, Any]:
    out = dict(zip(row.keys(), row, strict=True))
    if isinstance(out.get("headers"), str):
        out["headers"] = json.loads(out["headers"])
    if isinstance(out.get("detail"), str):
        out["detail"] = json.loads(out["detail"])
    return out


async def _migrate(db: aiosqlite.Connection, path: Path) -> None:
    """Bring the schema to SCHEMA_VERSION in one transaction; refuse a newer schema."""

    async def version() -> int:
        return int(next(iter(await db.execute_fetchall("PRAGMA user_version")))[0])

    if await version() == SCHEMA_VERSION:
        return
    await db.execute("BEGIN IMMEDIATE")
    try:
        found = await version()  # again, under the write lock: another process may have migrated
        if found > SCHEMA_VERSION:
            raise AuditError(
                f"{path} has audit schema version {found}, newer than this Interlock "
                f"understands ({SCHEMA_VERSION}); upgrade Interlock"
            )
        for step in MIGRATIONS[found:]:
            for statement in step:
                await db.execute(statement)
        await db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        await db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            await db.execute("ROLLBACK")
        raise
