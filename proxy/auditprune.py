"""Retention: `interlock audit prune`, the only way audit records are ever removed.

It removes the oldest records in one transaction and appends a signed anchor record (kind `prune`)
naming what was removed and the hash the kept history chains from, then signs a checkpoint, so
the kept history still verifies and the prune itself is in the chain.
"""

from __future__ import annotations

import getpass
import sqlite3
import time
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from proxy.auditchain import AuditError, append_rows
from proxy.auditkeys import SignedHead, SigningKey, anchor_payload, rfc3339
from proxy.auditschema import (
    INSERT_CHECKPOINT_SQL,
    KIND_PRUNE,
    NO_DELETE_TRIGGER,
    SchemaError,
    migrate,
)
from proxy.records import AuditRecord


@dataclass(frozen=True)
class PrunePlan:
    """The records older than the cut-off: seq `first` to `last` (a prefix of the history)."""

    first: int
    last: int
    count: int
    chained_from: str


def plan_prune(conn: sqlite3.Connection, before: float) -> PrunePlan | None:
    """Everything before the first record at or after `before`; None when that is nothing."""
    first, head = conn.execute("SELECT MIN(seq), MAX(seq) FROM audit").fetchone()
    if first is None:
        return None
    keep = conn.execute("SELECT MIN(seq) FROM audit WHERE at >= ?", (before,)).fetchone()[0]
    last = head if keep is None else keep - 1
    if last < first:
        return None
    count = conn.execute("SELECT COUNT(*) FROM audit WHERE seq <= ?", (last,)).fetchone()[0]
    chained_from = conn.execute("SELECT hash FROM audit WHERE seq = ?", (last,)).fetchone()[0]
    return PrunePlan(first, last, count, chained_from)


def prune(
    path: Path, before: float, key: SigningKey, *, dry_run: bool = False
) -> tuple[PrunePlan | None, SignedHead | None]:
    """Remove the records before `before`, as one transaction; the caller holds the run lock.

    Deleted pages are zeroed (`secure_delete`) and the WAL truncated, so nothing removed stays
    readable in the data directory.
    """
    try:
        with closing(sqlite3.connect(path, isolation_level=None)) as conn:
            conn.execute("PRAGMA busy_timeout=5000")
            conn.execute("PRAGMA secure_delete=ON")
            migrate(conn, path)
            conn.execute("BEGIN IMMEDIATE")
            try:
                plan = plan_prune(conn, before)
                if plan is None or dry_run:
                    conn.execute("ROLLBACK")
                    return plan, None
                signed = _prune(conn, plan, before, key)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    except (sqlite3.Error, SchemaError) as exc:
        raise AuditError(f"cannot prune {path}: {exc}") from exc
    return plan, signed


def _prune(conn: sqlite3.Connection, plan: PrunePlan, before: float, key: SigningKey) -> SignedHead:
    now = time.time()
    detail: dict[str, object] = {
        "removed_from_seq": plan.first,
        "removed_to_seq": plan.last,
        "removed_count": plan.count,
        "chained_from": plan.chained_from,
        "before": rfc3339(before),
        "key_id": key.key_id,
    }
    detail["signature"] = key.sign(anchor_payload(detail))
    conn.execute("DROP TRIGGER audit_no_delete")
    conn.execute("DELETE FROM audit WHERE seq <= ?", (plan.last,))
    conn.execute(NO_DELETE_TRIGGER)
    anchor = AuditRecord(
        kind=KIND_PRUNE,
        request_id=f"prune_{plan.first}_{plan.last}",
        at=now,
        decided_by=f"person:{_user()}",
        channel="cli",
        reason=f"pruned {plan.count} records (seq {plan.first}-{plan.last}) from before "
        f"{rfc3339(before)}",
        detail=detail,
    )
    head = append_rows(conn, [anchor])
    count = head.seq - plan.last
    signed = SignedHead.sign(key, head.seq, head.hash, time.time(), count)
    conn.execute(
        INSERT_CHECKPOINT_SQL,
        (signed.seq, signed.at, signed.hash, count, signed.signature, signed.key_id),
    )
    return signed


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
