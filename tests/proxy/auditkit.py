"""Shared by the audit chain and CLI tests: a real data directory with a signed history, the CLI
run in-process, and the tampering an attacker with write access to the database would do."""

from __future__ import annotations

import asyncio
import gc
import io
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager, redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from proxy.audit import AuditStore
from proxy.auditchain import HASHED, INTERLOCK_VERSION, STORED, row_hash
from proxy.auditkeys import SignedHead, SigningKey, load_or_create_signing_key
from proxy.auditschema import NO_DELETE_TRIGGER, NO_UPDATE_TRIGGER
from proxy.cli import main
from proxy.records import AuditRecord, Kind

T0 = 1_700_000_000.0  # 2023-11-14T22:13:20Z


@dataclass
class Result:
    code: int
    out: str
    err: str


def cli(*argv: str) -> Result:
    """`interlock ...` in this process."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            code = main(list(argv))
        except SystemExit as exc:  # argparse refused the arguments
            code = int(exc.code or 0)
    return Result(code, out.getvalue(), err.getvalue())


def record(i: int, **fields: Any) -> AuditRecord:
    """Request i: every fifth is held (and approved or denied by a person), the rest allowed."""
    held = i % 5 == 0
    values: dict[str, Any] = {
        "kind": Kind.REQUEST, "request_id": f"r_{i}", "at": T0 + i, "agent": "bot" if i % 2 else "ci",
        "client": "127.0.0.1", "method": "POST" if held else "GET", "scheme": "https",
        "host": "pay.example" if held else "api.example", "port": 443, "path": f"/v1/items/{i}",
        "rule": "payments" if held else "reads", "action": "hold" if held else "allow",
        "outcome": "pending" if held else "allowed", "decided_by": None if held else "policy",
        "hold_id": f"h_{i}" if held else None, "policy_digest": "d" * 16,
    }  # fmt: skip
    values.update(fields)
    return AuditRecord(**values)


async def write_history(
    root: Path,
    requests: int,
    *,
    checkpoint_every: int = 10,
    start: int = 0,
    key: SigningKey | None = None,
) -> list[SignedHead]:
    """Requests with their holds and completions, through a real store; returns the checkpoints."""
    heads: list[SignedHead] = []
    store = await AuditStore.open(
        root / "audit.db",
        signing_key=key or load_or_create_signing_key(root),
        checkpoint_every=checkpoint_every,
        on_checkpoint=heads.append,
    )
    try:
        for i in range(start, start + requests):
            await store.append(record(i))
            if i % 5 == 0:
                outcome = "denied" if i % 3 == 0 else "approved"
                await store.append(record(
                    i, kind=Kind.HOLD, at=T0 + i + 0.5, outcome=outcome,
                    decided_by="person:alice", channel="slack", held_ms=1500 + i,
                    reason="looks fine" if outcome == "approved" else "not this vendor",
                ))  # fmt: skip
            await store.append(AuditRecord(
                kind=Kind.COMPLETION, request_id=f"r_{i}", at=T0 + i + 0.8,
                outcome="approved" if i % 5 == 0 else "allowed", status=200, response_size=12,
                duration_ms=30,
            ))  # fmt: skip
    finally:
        await store.close()
    return heads


def history(root: Path, requests: int, **kwargs: Any) -> list[SignedHead]:
    root.mkdir(parents=True, exist_ok=True)
    return asyncio.run(write_history(root, requests, **kwargs))


# -- tampering --------------------------------------------------------------------------------


@contextmanager
def attacker(db: Path) -> Iterator[sqlite3.Connection]:
    """A connection with the append-only triggers dropped, as someone who can write the file."""
    with closing(sqlite3.connect(db, isolation_level=None)) as conn:
        conn.execute("DROP TRIGGER audit_no_update")
        conn.execute("DROP TRIGGER audit_no_delete")
        conn.execute("DROP TRIGGER IF EXISTS checkpoints_no_update")
        conn.execute("DROP TRIGGER IF EXISTS checkpoints_no_delete")
        yield conn
        conn.execute(NO_UPDATE_TRIGGER)
        conn.execute(NO_DELETE_TRIGGER)


def row(conn: sqlite3.Connection, seq: int) -> dict[str, Any]:
    found = conn.execute(f"SELECT {', '.join(STORED)} FROM audit WHERE seq = ?", (seq,)).fetchone()
    return dict(zip(STORED, found, strict=True))


def rewrite(conn: sqlite3.Connection, seq: int, values: dict[str, Any]) -> None:
    names = [name for name in values if name != "seq"]
    conn.execute(
        f"UPDATE audit SET {', '.join(f'{n} = ?' for n in names)} WHERE seq = ?",
        (*(values[n] for n in names), seq),
    )


def rebuild_chain(conn: sqlite3.Connection, start: int) -> str:
    """Recompute every hash from `start` on, as an attacker covering an edit would."""
    prev = row(conn, start - 1)["hash"] if start > 1 else "0" * 64
    seqs = [
        r[0] for r in conn.execute("SELECT seq FROM audit WHERE seq >= ? ORDER BY seq", (start,))
    ]
    for seq in seqs:
        values = row(conn, seq)
        values["prev_hash"] = prev
        values["hash"] = prev = row_hash([values[name] for name in HASHED])
        rewrite(conn, seq, values)
    return prev


def lines_of(path: Path) -> list[str]:
    return path.read_text().splitlines(keepends=True)


def write_lines(path: Path, lines: Sequence[str]) -> None:
    path.write_text("".join(lines))


# -- bulk -------------------------------------------------------------------------------------

AGENTS = tuple(f"agent-{n:02d}" for n in range(20))
HOSTS = tuple(f"api{n:02d}.example.com" for n in range(50))
RULES = tuple(f"rule-{n:02d}" for n in range(30))


_BULK_HEADERS = '[["Accept", "application/json"]]'


def bulk_params(i: int, now: float, count: int) -> tuple[Any, ...]:
    """Row i, as the store would encode it (COLUMNS + version): one in twenty requests is held,
    and the row after it says how the hold ended."""
    if i % 20 == 1:  # how the hold of request i - 1 ended
        outcome = ("approved", "approved", "approved", "denied", "expired")[(i // 20) % 5]
        by = "system" if outcome == "expired" else f"person:{('alice', 'bob')[(i // 20) % 2]}"
        return (
            "hold", f"r_{i - 1:012x}", now - 30 * 86400 * (1 - i / count), AGENTS[(i - 1) % 20],
            "10.0.0.7", "POST", "https", HOSTS[((i - 1) * 7) % len(HOSTS)], 443,
            f"/v1/things/{i - 1}", None, "[]", None, None, None, RULES[((i - 1) * 11) % 30],
            "hold", outcome, by, "slack", "ok" if outcome == "approved" else "no",
            f"h_{i - 1:012x}", 1000 + i % 60000, None, None, None, None, None, INTERLOCK_VERSION,
        )  # fmt: skip
    held, denied = i % 20 == 0, i % 13 == 0
    return (
        "request", f"r_{i:012x}", now - 30 * 86400 * (1 - i / count), AGENTS[i % len(AGENTS)],
        "10.0.0.7", "POST" if held else "GET", "https", HOSTS[(i * 7) % len(HOSTS)], 443,
        f"/v1/things/{i}", "page=2", _BULK_HEADERS, 64, "0" * 64, '{"name":"widget"}',
        RULES[(i * 11) % len(RULES)], "hold" if held else "allow",
        "pending" if held else "denied" if denied else "allowed", None if held else "policy",
        None, None, f"h_{i:012x}" if held else None, None, 403 if denied and not held else None,
        None, None, "d" * 16, None, INTERLOCK_VERSION,
    )  # fmt: skip


def bulk_history(
    db: Path, count: int, key: SigningKey, *, now: float, every: int = 1000, chunk: int = 20_000
) -> None:
    """`count` chained rows written straight into a new database, with a checkpoint every
    `every` rows: fast enough for a million."""
    from proxy.auditchain import ChainHead
    from proxy.auditschema import migrate

    db.parent.mkdir(parents=True, exist_ok=True)
    with closing(sqlite3.connect(db, isolation_level=None)) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=OFF")
        migrate(conn, db)
        indexes = [sql for (sql,) in conn.execute(
            "SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'audit'"
            " AND sql IS NOT NULL")]  # fmt: skip
        for sql in indexes:  # built once at the end: much faster than row by row
            conn.execute(f"DROP INDEX {sql.split()[2]}")
        head = ChainHead.genesis()
        gc.disable()  # millions of fresh tuples would otherwise trigger collection after collection
        try:
            _bulk_insert(conn, head, count, key, now, every, chunk)
        finally:
            gc.enable()
        for sql in indexes:
            conn.execute(sql)
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def _bulk_insert(
    conn: sqlite3.Connection, head: Any, count: int, key: SigningKey, now: float, every: int,
    chunk: int,
) -> None:  # fmt: skip
    from proxy.auditchain import INSERT_SQL, chain_rows
    from proxy.auditschema import INSERT_CHECKPOINT_SQL

    at = STORED.index("at")
    for start in range(0, count, chunk):
        params = [bulk_params(i, now, count) for i in range(start, min(start + chunk, count))]
        rows = chain_rows(head, params)
        conn.execute("BEGIN")
        conn.executemany(INSERT_SQL, rows)
        for r in rows:
            if r[0] % every == 0 or r[0] == count:
                mark = SignedHead.sign(key, r[0], r[-1], r[at], r[0])
                conn.execute(INSERT_CHECKPOINT_SQL, (mark.seq, mark.at, mark.hash, mark.count,
                                                     mark.signature, mark.key_id))  # fmt: skip
        conn.execute("COMMIT")
