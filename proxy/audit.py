"""The audit log: append-only SQLite rows, committed by one writer in groups before anyone proceeds.

`append` returns only once the row's transaction has committed; every failure becomes an
`AuditError`, which the gate turns into a refusal (fail closed).
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import time
from collections import deque
from collections.abc import Callable, Coroutine, Iterable
from contextlib import closing
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import aiosqlite

from proxy.auditchain import COLUMNS, INSERT_SQL, STORED, AuditError, ChainHead, chain_rows
from proxy.auditchain import encode_record as _encode
from proxy.auditkeys import SignedHead, SigningKey
from proxy.auditreads import MAX_QUERY_LIMIT, StoreReads
from proxy.auditschema import INSERT_CHECKPOINT_SQL, SCHEMA_VERSION, SchemaError, migrate
from proxy.records import AuditRecord
from proxy.redact import Redactor

__all__ = [
    "COLUMNS",
    "DEFAULT_REDACTOR",
    "MAX_QUERY_LIMIT",
    "SCHEMA_VERSION",
    "AuditError",
    "AuditStore",
]
log = logging.getLogger(__name__)

DEFAULT_REDACTOR = Redactor()
CHECKPOINT_EVERY = 1000
CHECKPOINT_INTERVAL = 60.0
# The longest a row nobody awaits (a completion) waits to share a commit with an awaited one:
# under load it always has company, and each commit it joins saves writing a dozen pages.
LAZY_WRITE_DELAY = 0.05


def _write_batch(
    conn: sqlite3.Connection,
    head: ChainHead,
    params: list[tuple[Any, ...]],
    wanted: Callable[[], bool],
) -> tuple[list[tuple[Any, ...]], ChainHead] | None:
    """Chain one batch after `head` and insert it as one statement, in the database thread;
    None if a waiter gave up first (the writer goes on without it).

    One statement is one transaction (autocommit) and one release of the GIL, where BEGIN, a
    head read, the insert and COMMIT took four, each a wait for the busy event loop to hand the
    GIL back. `head` is the store's own; if another process appended meanwhile (`interlock audit
    prune`), the first row collides on `seq` and the batch is chained again from the disk's head.
    """
    if not wanted():
        return None
    try:
        return _insert_after(conn, head, params)
    except sqlite3.IntegrityError:
        on_disk = ChainHead.read(conn)
        if on_disk.seq == head.seq:
            raise  # not a collision with another writer
        return _insert_after(conn, on_disk, params)


def _insert_after(
    conn: sqlite3.Connection, head: ChainHead, params: list[tuple[Any, ...]]
) -> tuple[list[tuple[Any, ...]], ChainHead]:
    """Chain `params` after a copy of `head` and insert them; the rows and the new head."""
    chained = ChainHead(head.seq, head.hash)
    rows = chain_rows(chained, params)
    conn.execute(_insert_sql(len(rows)), [value for row in rows for value in row])
    return rows, chained


def _insert_sql(count: int) -> str:
    sql = _MULTI_INSERT.get(count)
    if sql is None:
        sql = _MULTI_INSERT[count] = INSERT_SQL + f", {_ROW_MARKS}" * (count - 1)
    return sql


def rows_per_statement(conn: sqlite3.Connection) -> int:
    """How many rows one INSERT can carry under this SQLite's bound-variable limit."""
    return max(1, conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // len(STORED))


_ROW_MARKS = f"({', '.join('?' * len(STORED))})"
_MULTI_INSERT: dict[int, str] = {}


@dataclass(slots=True)
class _Entry:
    params: tuple[Any, ...]
    waiter: asyncio.Future[int] | None  # None for append_nowait


@dataclass(frozen=True, slots=True)
class _Options:
    commit_timeout: float
    batch_max: int
    redactor: Redactor | None
    signing_key: SigningKey | None
    checkpoint_every: int
    checkpoint_interval: float
    on_checkpoint: Callable[[SignedHead], None] | None
    lazy_delay: float


_tasks: set[asyncio.Task[None]] = set()


def _spawn(coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
    """A named task kept referenced until done (as mitmproxy's `asyncio_utils.create_task`)."""
    task = asyncio.create_task(coro, name=name)
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)
    return task


class AuditStore(StoreReads):
    """Audit rows in SQLite (WAL), written by a single task that commits queued rows together.

    The writer chains each row to the one before it (see `proxy.auditchain`) and, given a signing
    key, writes a signed checkpoint of the chain head every `checkpoint_every` rows, every
    `checkpoint_interval` seconds while rows arrive, and at `close()`. Rows are append-only:
    triggers refuse UPDATE and DELETE; `interlock audit prune` is the only way rows are removed.
    """

    def __init__(
        self,
        path: Path,
        db: aiosqlite.Connection,
        reader: aiosqlite.Connection,
        options: _Options,
        head: ChainHead,
        checkpointed: int,
    ) -> None:
        """Use `AuditStore.open`."""
        self.path = path
        self._db, self._reader, self._options = db, reader, options
        self._commit_timeout, self._batch_max = options.commit_timeout, options.batch_max
        self._redactor = options.redactor
        self._loop = asyncio.get_running_loop()
        self._queue: deque[_Entry] = deque()
        self._wakeup = asyncio.Event()
        self._lazy: asyncio.TimerHandle | None = None  # wakes the writer for unawaited rows
        self._enqueued = self._settled = self._failed = self._commits = 0
        self._flushers: list[tuple[int, asyncio.Future[None]]] = []
        self._last_error: BaseException | None = None
        self._closed = False
        self._close_done: asyncio.Future[None] | None = None
        self._head, self._checkpointed = head, checkpointed
        self._checkpoint_clock = time.monotonic()
        self.last_checkpoint: SignedHead | None = None
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
        signing_key: SigningKey | None = None,
        checkpoint_every: int = CHECKPOINT_EVERY,
        checkpoint_interval: float = CHECKPOINT_INTERVAL,
        on_checkpoint: Callable[[SignedHead], None] | None = None,
        lazy_delay: float = LAZY_WRITE_DELAY,
    ) -> AuditStore:
        """Open (creating, mode 0600) and migrate the database, and start the writer.

        NORMAL survives a crash of the process; FULL also survives a power loss, at a cost.
        `redactor` is a last line of defence over what callers should already have redacted.
        Without `signing_key` the chain is kept but no checkpoint is signed. A row nobody
        awaits (`append_nowait`) is written with the next awaited one, or after `lazy_delay`.
        """
        sync = synchronous.upper()
        if sync not in ("NORMAL", "FULL"):
            raise ValueError(f"synchronous must be NORMAL or FULL, not {synchronous!r}")
        if commit_timeout <= 0:
            raise ValueError(f"commit_timeout must be positive, not {commit_timeout!r}")
        if batch_max < 1:
            raise ValueError(f"batch_max must be at least 1, not {batch_max!r}")
        if checkpoint_every < 1:
            raise ValueError(f"checkpoint_every must be at least 1, not {checkpoint_every!r}")
        if checkpoint_interval <= 0:
            raise ValueError(f"checkpoint_interval must be positive, not {checkpoint_interval!r}")
        if lazy_delay < 0:
            raise ValueError(f"lazy_delay must not be negative, not {lazy_delay!r}")
        options = _Options(commit_timeout, batch_max, redactor, signing_key, checkpoint_every,
                           checkpoint_interval, on_checkpoint, lazy_delay)  # fmt: skip
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
            head, checkpointed, per_statement = await asyncio.to_thread(_prepare, path, busy_ms)
            options = replace(options, batch_max=min(batch_max, per_statement))
            reader = await aiosqlite.connect(path, isolation_level=None)
            await reader.execute("PRAGMA query_only=ON")
            await reader.execute(f"PRAGMA busy_timeout={busy_ms}")
            reader.row_factory = sqlite3.Row
        except BaseException as exc:
            for conn in (db, reader):
                if conn is not None:
                    await conn.close()  # its thread would otherwise keep the process alive
            if isinstance(exc, SchemaError):
                raise AuditError(str(exc)) from exc
            if isinstance(exc, sqlite3.Error | OSError):
                raise AuditError(f"cannot open the audit database {path}: {exc}") from exc
            raise
        return cls(path, db, reader, options, head, checkpointed)

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
        # A timer rather than `asyncio.wait_for`, which costs a task's worth of work per row.
        timer = waiter.get_loop().call_later(self._commit_timeout, self._time_out, waiter)
        try:
            return await waiter
        finally:
            timer.cancel()

    def _time_out(self, waiter: asyncio.Future[int]) -> None:
        """The waiter gave up: its row is never written (the writer skips settled waiters)."""
        if not waiter.done():
            waiter.set_exception(
                AuditError(
                    f"audit write timed out after {self._commit_timeout:g} s "
                    f"(database {self.path} locked or writer stalled)"
                )
            )

    def append_nowait(self, record: AuditRecord) -> None:
        """Queue a row without waiting; a failure to write it is logged, not raised. It is
        committed with the next awaited row, at `flush()` or `close()`, or after `lazy_delay`."""
        self._enqueue(record, wait=False)

    async def flush(self) -> None:
        """Wait until every row queued so far has been written; AuditError if any was lost."""
        self._check_writer()
        failed_before, target = self._failed, self._enqueued
        if self._settled < target:
            done = asyncio.get_running_loop().create_future()
            self._flushers.append((target, done))
            self._wakeup.set()
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
        params = _encode(record, self._redactor)
        waiter = self._loop.create_future() if wait else None
        self._queue.append(_Entry(params, waiter))
        self._enqueued += 1
        if wait or len(self._queue) >= self._batch_max:
            self._wakeup.set()
        elif self._lazy is None:
            # Nobody waits on this row: let it ride with the next awaited one, or go alone soon.
            self._lazy = self._loop.call_later(self._options.lazy_delay, self._wakeup.set)
        return waiter

    async def _write_loop(self) -> None:
        while self._queue or not self._closed:
            if not self._queue or not self._wakeup.is_set():
                self._wakeup.clear()
                await self._idle()
                continue
            if self._lazy is not None:
                self._lazy.cancel()
                self._lazy = None
            batch: list[_Entry] = []
            while self._queue and len(batch) < self._batch_max:
                entry = self._queue.popleft()
                if entry.waiter is not None and entry.waiter.done():
                    self._settle(1)  # its append gave up (timeout or cancel): never write it
                else:
                    batch.append(entry)
            if batch:
                await self._write(batch)
            if self._checkpoint_due() == 0:
                await self._checkpoint()
        await self._checkpoint()  # at shutdown

    async def _idle(self) -> None:
        """Wait for rows; meanwhile write the timed checkpoint when it falls due."""
        due = self._checkpoint_due()
        if due is None:
            await self._wakeup.wait()
            return
        try:
            await asyncio.wait_for(self._wakeup.wait(), due)
        except TimeoutError:
            await self._checkpoint()

    async def _write(self, batch: list[_Entry]) -> None:
        params = [entry.params for entry in batch]

        def wanted() -> bool:  # read in the database thread just before the insert
            return all(e.waiter is None or not e.waiter.done() for e in batch)

        try:
            # One trip to aiosqlite's thread per batch: each trip costs a thread hand-off on
            # every request's path.
            result = await self._db._execute(  # type: ignore[no-untyped-call]
                _write_batch, self._db._conn, self._head, params, wanted
            )
        except Exception as exc:
            self._fail(batch, exc)
            return
        if result is None:  # someone gave up meanwhile: write only the others
            live = [e for e in batch if e.waiter is None or not e.waiter.done()]
            self._queue.extendleft(reversed(live))
            self._settle(len(batch) - len(live))
            return
        rows, head = result
        self._commits += 1
        self._last_error = None
        self._head = head
        for row, entry in zip(rows, batch, strict=True):
            if entry.waiter is None:
                continue
            if entry.waiter.done():
                log.warning("audit row %d was committed after its writer stopped waiting", row[0])
            else:
                entry.waiter.set_result(row[0])
        self._settle(len(batch))

    # -- checkpoints --------------------------------------------------------------------------

    def _checkpoint_due(self) -> float | None:
        """Seconds until the next checkpoint is due (0: now), or None when none is needed."""
        unsigned = self._head.seq - self._checkpointed
        if self._options.signing_key is None or unsigned <= 0:
            return None
        if unsigned >= self._options.checkpoint_every:
            return 0
        elapsed = time.monotonic() - self._checkpoint_clock
        return max(0.0, self._options.checkpoint_interval - elapsed)

    async def _checkpoint(self) -> None:
        """Sign the chain head and store the checkpoint; a failure is logged and retried later."""
        key, head = self._options.signing_key, self._head
        if key is None or head.seq <= self._checkpointed:
            return
        self._checkpoint_clock = time.monotonic()
        try:
            await self._db.execute("BEGIN IMMEDIATE")
            try:
                first = next(iter(await self._db.execute_fetchall("SELECT MIN(seq) FROM audit")))
                count = head.seq - int(first[0] or head.seq) + 1
                signed = SignedHead.sign(key, head.seq, head.hash, time.time(), count)
                await self._db.execute(INSERT_CHECKPOINT_SQL, (
                    signed.seq, signed.at, signed.hash, count, signed.signature, signed.key_id,
                ))  # fmt: skip
                await self._db.execute("COMMIT")
            except Exception:
                if self._db.in_transaction:
                    await self._db.execute("ROLLBACK")
                raise
        except Exception as exc:
            log.error("could not write an audit checkpoint at seq %d: %s", head.seq, exc)
            return
        self._checkpointed, self.last_checkpoint = head.seq, signed
        if (publish := self._options.on_checkpoint) is not None:
            try:
                publish(signed)
            except Exception:
                log.exception("publishing the audit checkpoint at seq %d failed", head.seq)

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


def _prepare(path: Path, busy_ms: int) -> tuple[ChainHead, int, int]:
    """Migrate the schema; return the chain head, the seq of the last checkpoint and how many
    rows one INSERT can carry."""
    with closing(sqlite3.connect(path, isolation_level=None)) as conn:
        conn.execute(f"PRAGMA busy_timeout={busy_ms}")
        migrate(conn, path)
        checkpointed = conn.execute("SELECT MAX(seq) FROM checkpoints").fetchone()[0]
        return ChainHead.read(conn), int(checkpointed or 0), rows_per_statement(conn)
