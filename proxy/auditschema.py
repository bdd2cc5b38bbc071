"""The audit database's schema: tables, append-only triggers and forward-only migrations.

The version lives in `PRAGMA user_version`. Migrations run on a plain `sqlite3` connection in one
transaction, so the store (at open) and the CLI share them.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

from proxy.auditchain import COLUMNS, ChainHead, append_rows, chain_rows
from proxy.records import AuditRecord

CHECKPOINT_COLUMNS = ("seq", "at", "head_hash", "count", "signature", "key_id")
INSERT_CHECKPOINT_SQL = (
    f"INSERT INTO checkpoints ({', '.join(CHECKPOINT_COLUMNS)}) VALUES (?, ?, ?, ?, ?, ?)"
)
# Row kinds written by the audit machinery itself (the gate's kinds are in `records.Kind`).
KIND_PRUNE = "prune"
KIND_MIGRATION = "migration"

APPEND_ONLY = "BEGIN SELECT RAISE(ABORT, 'audit rows are append-only'); END"
NO_UPDATE_TRIGGER = f"CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit {APPEND_ONLY}"
NO_DELETE_TRIGGER = f"CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit {APPEND_ONLY}"

Step = tuple[str, ...] | Callable[[sqlite3.Connection], None]


class SchemaError(Exception):
    """The database's schema is newer than this Interlock, or not an audit database."""


_CHAIN_DDL = (
    "ALTER TABLE audit ADD COLUMN interlock_version TEXT",
    "ALTER TABLE audit ADD COLUMN prev_hash TEXT",
    "ALTER TABLE audit ADD COLUMN hash TEXT",
    """CREATE TABLE checkpoints (
        id INTEGER PRIMARY KEY AUTOINCREMENT, seq INTEGER NOT NULL, at REAL NOT NULL,
        head_hash TEXT NOT NULL, count INTEGER NOT NULL, signature TEXT NOT NULL,
        key_id TEXT NOT NULL)""",
    "CREATE INDEX checkpoints_seq ON checkpoints (seq)",
    "CREATE TRIGGER checkpoints_no_update BEFORE UPDATE ON checkpoints "
    "BEGIN SELECT RAISE(ABORT, 'audit checkpoints are append-only'); END",
    "CREATE TRIGGER checkpoints_no_delete BEFORE DELETE ON checkpoints "
    "BEGIN SELECT RAISE(ABORT, 'audit checkpoints are append-only'); END",
)


def _add_hash_chain(conn: sqlite3.Connection) -> None:
    """Version 2: chain columns, the checkpoints table, and the chaining of existing rows.

    The update trigger is dropped and recreated inside the migration's transaction only; the
    chaining itself is recorded in a `migration` row, since it vouches only from that moment.
    """
    for statement in _CHAIN_DDL:
        conn.execute(statement)
    conn.execute("DROP TRIGGER audit_no_update")
    head = ChainHead.genesis()
    cursor = conn.execute(f"SELECT seq, {', '.join(COLUMNS)} FROM audit ORDER BY seq")
    chained = 0
    while batch := cursor.fetchmany(2000):
        updates = []
        for seq, *values in batch:
            head.seq = seq - 1  # the rows keep their own seq
            (stored,) = chain_rows(head, [(*values, None)])
            updates.append((stored[-2], stored[-1], seq))
        conn.executemany("UPDATE audit SET prev_hash = ?, hash = ? WHERE seq = ?", updates)
        chained += len(batch)
    conn.execute(NO_UPDATE_TRIGGER)
    if chained:
        detail = {"from_version": 1, "to_version": 2, "chained": chained}
        reason = f"hash chain added: {chained} earlier records chained at upgrade"
        migration = AuditRecord(kind=KIND_MIGRATION, request_id="migration_2",
                                decided_by="system", reason=reason, detail=detail)  # fmt: skip
        append_rows(conn, [migration])


# Forward-only: step N brings the schema from version N-1 to N.
MIGRATIONS: tuple[Step, ...] = (
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
        NO_UPDATE_TRIGGER,
        NO_DELETE_TRIGGER,
    ),
    _add_hash_chain,
)
SCHEMA_VERSION = len(MIGRATIONS)


def schema_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def migrate(conn: sqlite3.Connection, path: Path) -> None:
    """Bring the schema to SCHEMA_VERSION in one transaction; refuse a newer schema.

    `conn` must be in autocommit mode (`isolation_level=None`).
    """
    if schema_version(conn) == SCHEMA_VERSION:
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        found = schema_version(conn)  # again, under the write lock: another may have migrated
        if found > SCHEMA_VERSION:
            raise SchemaError(
                f"{path} has audit schema version {found}, newer than this Interlock "
                f"understands ({SCHEMA_VERSION}); upgrade Interlock"
            )
        for step in MIGRATIONS[found:]:
            if callable(step):
                step(conn)
            else:
                for statement in step:
                    conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
