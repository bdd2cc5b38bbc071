"""Reading the audit database from the CLI: a read-only connection, filters, one request in full,
and statistics. Plain `sqlite3`: the commands are synchronous and may run beside `interlock run`.
"""

from __future__ import annotations

import sqlite3
import statistics
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from policies.durations import parse_duration
from proxy.auditchain import AuditError, decode_row
from proxy.auditkeys import SignedHead
from proxy.auditschema import SCHEMA_VERSION, schema_version

# The final state of a request: its own row, unless a hold decided it later.
_FINAL = """SELECT r.*, COALESCE(h.outcome, r.outcome) AS final_outcome,
    COALESCE(h.decided_by, r.decided_by) AS final_decided_by,
    COALESCE(h.channel, r.channel) AS final_channel, COALESCE(h.reason, r.reason) AS final_reason,
    h.at AS decided_at, h.held_ms AS final_held_ms,
    (SELECT c.status FROM audit c WHERE c.request_id = r.request_id AND c.kind = 'completion'
     ORDER BY c.seq DESC LIMIT 1) AS upstream_status
FROM audit r LEFT JOIN audit h ON h.hold_id = r.hold_id AND h.kind = 'hold'
WHERE r.kind = 'request'"""
PERSON_DECISIONS = ("approved", "denied")
REQUEST_FIELDS = (
    "agent",
    "client",
    "method",
    "scheme",
    "host",
    "port",
    "path",
    "query",
    "headers",
    "body_size",
    "body_sha256",
    "body_preview",
    "policy_digest",
    "interlock_version",
)
TRAIL_FIELDS = ("seq", "at", "kind", "outcome", "decided_by", "channel", "reason", "hash")
RESPONSE_FIELDS = ("status", "response_size", "duration_ms")


def open_readonly(path: Path) -> sqlite3.Connection:
    """A read-only connection to an audit database of the current schema."""
    if not path.is_file():
        raise AuditError(
            f"no audit database at {path} (start `interlock run` with this data directory, "
            "or pass --db FILE)"
        )
    try:
        conn = sqlite3.connect(f"file:{quote(str(path))}?mode=ro", uri=True, isolation_level=None)
        conn.execute("PRAGMA busy_timeout=5000")
        conn.row_factory = sqlite3.Row
        found = schema_version(conn)
    except sqlite3.Error as exc:
        raise AuditError(f"cannot read the audit database {path}: {exc}") from exc
    if found != SCHEMA_VERSION:
        conn.close()
        if found > SCHEMA_VERSION:
            raise AuditError(
                f"{path} has audit schema version {found}, newer than this Interlock "
                f"understands ({SCHEMA_VERSION}); upgrade Interlock"
            )
        raise AuditError(
            f"{path} has audit schema version {found}, from before the hash chain; "
            "start `interlock run` once with it to upgrade it"
        )
    return conn


def parse_time(text: str, now: float | None = None) -> float:
    """Epoch seconds from `2h` (that long ago), an RFC 3339 timestamp, or a date (UTC)."""
    text = text.strip()
    try:
        return (time.time() if now is None else now) - parse_duration(text)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"invalid time {text!r} (expected a duration like 2h or 7d, or an RFC 3339 "
            "timestamp like 2024-05-01T12:00:00Z)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


@dataclass(frozen=True)
class Filters:
    """What `list`, `stats` and `export` select. Names match the audit columns."""

    since: float | None = None
    until: float | None = None
    agent: str | None = None
    host: str | None = None
    outcome: str | None = None
    rule: str | None = None
    decided_by: str | None = None

    @property
    def by_column(self) -> dict[str, str]:
        """The filters other than time, by column name."""
        values = {"agent": self.agent, "host": self.host, "outcome": self.outcome,
                  "rule": self.rule, "decided_by": self.decided_by}  # fmt: skip
        return {name: value for name, value in values.items() if value is not None}

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = dict(self.by_column)
        for name, value in (("since", self.since), ("until", self.until)):
            if value is not None:
                out[name] = value
        return out


def list_requests(conn: sqlite3.Connection, filters: Filters, limit: int) -> list[dict[str, Any]]:
    """Requests newest first, each with its final outcome; outcome and decided-by filters apply
    to that final state, the others to the request as recorded."""
    where: list[str] = []
    params: list[Any] = []
    for name, value in filters.by_column.items():
        if name in ("outcome", "decided_by"):
            where.append(f"COALESCE(h.{name}, r.{name}) = ?")
        else:
            where.append(f"r.{name} = ?")
        params.append(value)
    for clause, moment in (("r.at >= ?", filters.since), ("r.at < ?", filters.until)):
        if moment is not None:
            where.append(clause)
            params.append(moment)
    sql = _FINAL + "".join(f" AND {clause}" for clause in where) + " ORDER BY r.seq DESC LIMIT ?"
    return [decode_row(dict(row)) for row in _read(conn, sql, (*params, limit))]


def find_request(conn: sqlite3.Connection, ident: str) -> dict[str, Any] | None:
    """One request in full, by request id, hold id or seq: as recorded, how it was decided
    (held at, by whom, through which channel, why, which grant or rule), and the answer."""
    row = None
    for sql in (
        "SELECT * FROM audit WHERE request_id = ? AND kind = 'request' ORDER BY seq LIMIT 1",
        "SELECT * FROM audit WHERE hold_id = ? AND kind = 'request' ORDER BY seq LIMIT 1",
        "SELECT * FROM audit WHERE seq = ? AND kind = 'request'",
    ):
        if (row := next(iter(_read(conn, sql, (ident,))), None)) is not None:
            break
    if row is None:
        return None
    request = decode_row(dict(row))
    rid, hold_id = request["request_id"], request["hold_id"]
    sql = (
        "SELECT * FROM audit WHERE request_id = ? OR (hold_id = ? AND kind IN ('hold', 'vote'))"
        " ORDER BY seq"
    )
    trail = [decode_row(dict(r)) for r in _read(conn, sql, (rid, hold_id))]
    holds = [r for r in trail if r["kind"] == "hold" and r["hold_id"] == hold_id]
    final = holds[-1] if holds else request
    done = [r for r in trail if r["kind"] == "completion" and r["request_id"] == rid]
    detail = request.get("detail") or {}
    return {
        "request_id": rid,
        "seq": request["seq"],
        "at": request["at"],
        "request": {name: request[name] for name in REQUEST_FIELDS},
        "decision": {
            "outcome": final["outcome"],
            "rule": request["rule"],
            "action": request["action"],
            "decided_by": final["decided_by"],
            "channel": final["channel"],
            "reason": final["reason"],
            "hold_id": hold_id,
            "held_at": request["at"] if hold_id is not None else None,
            "decided_at": final["at"] if holds else None,
            "held_ms": final["held_ms"] if holds else None,
            "votes": [r["decided_by"] for r in trail if r["kind"] == "vote"],
            "grant_id": detail.get("grant_id"),
            "replay_of": detail.get("replay_of"),
        },
        "response": {name: done[-1][name] for name in RESPONSE_FIELDS} if done else None,
        "trail": [{name: r[name] for name in TRAIL_FIELDS} for r in trail],
    }


def stats(
    conn: sqlite3.Connection, since: float | None, min_decisions: int, threshold: float
) -> dict[str, Any]:
    """Requests per agent and final outcome; holds per rule with approval rate and median time
    to decide; and rules people almost always approve (candidates for `allow`)."""
    time_clause, params = (" AND r.at >= ?", (since,)) if since is not None else ("", ())
    per_agent: dict[str, dict[str, int]] = {}
    for row in _read(conn, (
        "SELECT r.agent AS agent, COALESCE(h.outcome, r.outcome) AS outcome, COUNT(*) AS n"
        " FROM audit r LEFT JOIN audit h ON h.hold_id = r.hold_id AND h.kind = 'hold'"
        f" WHERE r.kind = 'request'{time_clause} GROUP BY 1, 2"), params,
    ):  # fmt: skip
        per_agent.setdefault(row["agent"] or "-", {})[row["outcome"] or "-"] = row["n"]
    holds: dict[str, dict[str, Any]] = {}
    times: dict[str, list[int]] = {}
    hold_clause = time_clause.replace("r.at", "at")
    for row in _read(conn, f"SELECT rule, outcome, held_ms FROM audit WHERE kind = 'hold'"
                     f"{hold_clause}", params):  # fmt: skip
        rule = row["rule"] or "-"
        entry = holds.setdefault(rule, {"rule": rule, "holds": 0, "approved": 0, "denied": 0,
                                        "expired": 0, "error": 0})  # fmt: skip
        entry["holds"] += 1
        if row["outcome"] in entry:
            entry[row["outcome"]] += 1
        if row["outcome"] in PERSON_DECISIONS and row["held_ms"] is not None:
            times.setdefault(rule, []).append(row["held_ms"])
    for rule, entry in holds.items():
        decided = entry["approved"] + entry["denied"]
        entry["approval_rate"] = round(entry["approved"] / decided, 4) if decided else None
        entry["median_decide_ms"] = int(statistics.median(times[rule])) if rule in times else None
    rules = sorted(holds.values(), key=lambda e: (-e["holds"], e["rule"]))
    candidates = [
        e["rule"]
        for e in rules
        if e["approved"] + e["denied"] >= min_decisions and (e["approval_rate"] or 0) >= threshold
    ]
    return {
        "since": since,
        "requests": [
            {"agent": agent, "outcomes": outcomes, "total": sum(outcomes.values())}
            for agent, outcomes in sorted(per_agent.items())
        ],
        "holds": rules,
        "allow_candidates": candidates,
        "candidate_rule": {"min_decisions": min_decisions, "approval_rate": threshold},
    }


def checkpoints(conn: sqlite3.Connection, lo: int = 0, hi: int = 2**63 - 1) -> list[SignedHead]:
    """The signed checkpoints with seq in [lo, hi], in seq order."""
    sql = "SELECT * FROM checkpoints WHERE seq BETWEEN ? AND ? ORDER BY seq, id"
    return [
        SignedHead(r["seq"], r["head_hash"], r["at"], r["signature"], r["key_id"], r["count"])
        for r in _read(conn, sql, (lo, hi))
    ]


def latest_checkpoint(conn: sqlite3.Connection) -> SignedHead | None:
    found = _read(conn, "SELECT MAX(seq) AS seq FROM checkpoints", ())
    seq = found[0]["seq"] if found else None
    return None if seq is None else checkpoints(conn, seq, seq)[-1]


def iter_rows(
    conn: sqlite3.Connection, sql: str, params: tuple[Any, ...], chunk: int = 5000
) -> Iterator[tuple[Any, ...]]:
    """Rows of one query, fetched a chunk at a time (constant memory)."""
    try:
        cursor = conn.execute(sql, params)
        while rows := cursor.fetchmany(chunk):
            yield from rows
    except sqlite3.Error as exc:
        raise AuditError(f"audit read failed: {exc}") from exc


def _read(conn: sqlite3.Connection, sql: str, params: tuple[Any, ...]) -> list[sqlite3.Row]:
    try:
        return conn.execute(sql, params).fetchall()
    except sqlite3.Error as exc:
        raise AuditError(f"audit read failed: {exc}") from exc
