"""Exports of the audit log (schema `interlock.audit/1`, see `proxy/AUDIT_SCHEMA.md`), streamed in
constant memory, and the reading of a JSONL export back for `interlock audit verify --file`.

SQLite renders each JSONL line (`json_object`), which keeps the export far above 50,000 records a
second; `at` is printed with 17 significant digits so the float, and so the hash, survives.
"""

from __future__ import annotations

import csv
import json
import sqlite3
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from proxy.auditchain import HASHED, STORED, encode_json_columns
from proxy.auditkeys import SignedHead, rfc3339
from proxy.auditquery import Filters, checkpoints, iter_rows
from proxy.auditschema import KIND_PRUNE

SCHEMA_ID = "interlock.audit/1"
# Record keys in export order: flat, except `headers` (name/value pairs) and `detail` (object).
RECORD_KEYS: tuple[str, ...] = (
    "seq", "time", "at", "kind", "request_id", "agent", "client", "method", "scheme", "host",
    "port", "path", "query", "headers", "body_size", "body_sha256", "body_preview", "rule",
    "action", "outcome", "decided_by", "channel", "reason", "hold_id", "held_ms", "status",
    "response_size", "duration_ms", "policy_digest", "interlock_version", "detail", "prev_hash",
    "hash",
)  # fmt: skip
_SQL_VALUE = {
    "time": "strftime('%Y-%m-%dT%H:%M:%fZ', at, 'unixepoch')",
    "at": "json(printf('%!.17g', at))",
    "headers": "json(headers)",
    "detail": "json(detail)",
}
_JSONL_SQL = "SELECT seq, json_object('schema', ?, 'type', 'record', {}) FROM audit".format(
    ", ".join(f"'{key}', {_SQL_VALUE.get(key, key)}" for key in RECORD_KEYS)
)
_NUMERIC = frozenset({"seq", "port", "body_size", "held_ms", "status", "response_size",
                      "duration_ms"})  # fmt: skip


def _csv_field(key: str) -> str:
    """One CSV field rendered by SQLite (RFC 4180: text quoted, quotes doubled, NULL empty)."""
    if key == "at":
        return "printf('%!.17g', at)"
    if key in _NUMERIC:
        return f"COALESCE({key}, '')"
    if key == "time":
        return f"""'"' || {_SQL_VALUE["time"]} || '"'"""
    return (
        f"""CASE WHEN {key} IS NULL THEN '' WHEN instr({key}, '"') THEN"""
        f""" '"' || replace({key}, '"', '""') || '"' ELSE '"' || {key} || '"' END"""
    )


_CSV_SQL = "SELECT {} FROM audit".format(" || ',' || ".join(_csv_field(k) for k in RECORD_KEYS))
assert set(RECORD_KEYS) - {"time"} == set(STORED)


class ExportError(Exception):
    """An export file cannot be read: the message names the file and line."""


@dataclass(frozen=True)
class ExportPlan:
    """Which rows an export holds: `complete` (every record), `segment` (a contiguous run of
    seq, from time bounds) or `partial` (column filters: records verify one by one only)."""

    where: str
    params: tuple[Any, ...]
    chain: str
    first_seq: int | None
    last_seq: int | None
    count: int
    filters: dict[str, Any] = field(default_factory=dict)
    marks: tuple[int, int] = (0, 0)  # the seq range whose checkpoints go along


def plan_export(conn: sqlite3.Connection, filters: Filters) -> ExportPlan:
    """Time bounds select the contiguous run of records from the first at or after `since` to
    the last before `until`; other filters match each record's own columns."""
    lo, hi = conn.execute("SELECT MIN(seq), MAX(seq) FROM audit").fetchone()
    if filters.by_column:
        clauses = [f"{name} = ?" for name in filters.by_column]
        params: list[Any] = list(filters.by_column.values())
        for clause, moment in (("at >= ?", filters.since), ("at < ?", filters.until)):
            if moment is not None:
                clauses.append(clause)
                params.append(moment)
        clauses.append("seq <= ?")  # rows written after the export began are left out
        params.append(hi or 0)
        where = " WHERE " + " AND ".join(clauses)
        count = conn.execute(f"SELECT COUNT(*) FROM audit{where}", params).fetchone()[0]
        marks = (0, hi or 0)
        return ExportPlan(
            where, tuple(params), "partial", None, None, count, filters.to_json(), marks
        )
    first, last = lo, hi
    if filters.since is not None and lo is not None:
        found = conn.execute("SELECT MIN(seq) FROM audit WHERE at >= ?", (filters.since,))
        first = found.fetchone()[0]
    if filters.until is not None and lo is not None:
        found = conn.execute("SELECT MAX(seq) FROM audit WHERE at < ?", (filters.until,))
        last = found.fetchone()[0]
    if first is None or last is None or first > last:
        return ExportPlan(" WHERE 0", (), "segment", None, None, 0, filters.to_json())
    chain = "complete" if (first, last) == (lo, hi) else "segment"
    where = " WHERE seq BETWEEN ? AND ?"
    count = last - first + 1
    return ExportPlan(
        where, (first, last), chain, first, last, count, filters.to_json(), (first, last)
    )


class Progress:
    """A one-line progress bar on a terminal (stderr); silent elsewhere."""

    def __init__(self, total: int, stream: TextIO | None = None, width: int = 30) -> None:
        self.total, self.width, self.done = total, width, 0
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = self.stream.isatty()
        self._shown = 0.0
        self._start = time.monotonic()

    def advance(self, count: int) -> None:
        self.done += count
        now = time.monotonic()
        if self.enabled and now - self._shown >= 0.1:
            self._shown = now
            self._draw(now)

    def finish(self) -> None:
        if self.enabled:
            self._draw(time.monotonic())
            self.stream.write("\n")
            self.stream.flush()

    def _draw(self, now: float) -> None:
        share = self.done / self.total if self.total else 1.0
        filled = int(share * self.width)
        rate = self.done / max(now - self._start, 1e-6)
        self.stream.write(
            f"\r[{'#' * filled}{'.' * (self.width - filled)}] {share:4.0%} "
            f"{self.done}/{self.total} records, {rate:,.0f}/s"
        )
        self.stream.flush()


def export_jsonl(
    conn: sqlite3.Connection,
    plan: ExportPlan,
    out: TextIO,
    progress: Progress,
    public_key: tuple[str, str] | None,
    source: str,
) -> int:
    """A header line, then one line per record, each signed checkpoint after its record."""
    header = {
        "schema": SCHEMA_ID, "type": "export", "exported_at": rfc3339(time.time()),
        "source": source, "chain": plan.chain, "first_seq": plan.first_seq,
        "last_seq": plan.last_seq, "count": plan.count, "filters": plan.filters,
        "key_id": public_key[0] if public_key else None,
        "public_key": public_key[1] if public_key else None,
    }  # fmt: skip
    out.write(json.dumps(header, separators=(",", ":")) + "\n")
    marks = iter(checkpoints(conn, *plan.marks) if plan.count else [])
    mark = next(marks, None)
    written = 0
    for seq, line in iter_rows(conn, _JSONL_SQL + plan.where + " ORDER BY seq",
                               (SCHEMA_ID, *plan.params)):  # fmt: skip
        while mark is not None and mark.seq < seq:
            mark = next(marks, None)
        out.write(line)
        out.write("\n")
        while mark is not None and mark.seq == seq:
            out.write(json.dumps(checkpoint_line(mark), separators=(",", ":")) + "\n")
            mark = next(marks, None)
        written += 1
        if written % 5000 == 0:
            progress.advance(5000)
    progress.advance(written % 5000)
    progress.finish()
    return written


def checkpoint_line(mark: SignedHead) -> dict[str, Any]:
    return {"schema": SCHEMA_ID, "type": "checkpoint", "seq": mark.seq, "time": rfc3339(mark.at),
            "at": mark.at, "hash": mark.hash, "count": mark.count, "signature": mark.signature,
            "key_id": mark.key_id}  # fmt: skip


def export_csv(conn: sqlite3.Connection, plan: ExportPlan, out: TextIO, progress: Progress) -> int:
    """One header row, then one row per record (`headers` and `detail` as JSON text)."""
    csv.writer(out).writerow(RECORD_KEYS)
    written = 0
    for (line,) in iter_rows(conn, _CSV_SQL + plan.where + " ORDER BY seq", plan.params):
        out.write(line)
        out.write("\r\n")
        written += 1
        if written % 5000 == 0:
            progress.advance(5000)
    progress.advance(written % 5000)
    progress.finish()
    return written


# -- reading an export back ---------------------------------------------------------------------


@dataclass
class ExportScan:
    """What the first pass over an export finds: its header, checkpoints and prune anchors."""

    header: dict[str, Any]
    checkpoints: list[SignedHead]
    anchors: list[dict[str, Any]]


def _lines(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    try:
        with path.open(encoding="utf-8") as file:
            for number, line in enumerate(file, start=1):
                if not line.strip():
                    continue
                try:
                    document = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ExportError(f"{path}:{number}: not JSON ({exc.msg})") from None
                if not isinstance(document, dict) or document.get("schema") != SCHEMA_ID:
                    raise ExportError(f"{path}:{number}: not an {SCHEMA_ID} line")
                yield number, document
    except OSError as exc:
        raise ExportError(f"cannot read {path}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise ExportError(f"{path}: not UTF-8 text ({exc.reason})") from exc


def scan_export(path: Path) -> ExportScan:
    header: dict[str, Any] | None = None
    marks: list[SignedHead] = []
    anchors: list[dict[str, Any]] = []
    for number, document in _lines(path):
        kind = document.get("type")
        if kind == "export" and header is None:
            header = document
        elif kind == "checkpoint":
            try:
                marks.append(SignedHead.from_json(document, f"{path}:{number}"))
            except ValueError as exc:
                raise ExportError(str(exc)) from exc
        elif kind == "record" and document.get("kind") == KIND_PRUNE:
            anchors.append(_stored(document, path, number))
    if header is None:
        raise ExportError(f"{path}: no export header line; is this an `interlock audit export`?")
    return ExportScan(header, marks, anchors)


def export_records(path: Path) -> Iterator[dict[str, Any]]:
    """The records of an export as stored rows (`headers` and `detail` as the store's JSON)."""
    for number, document in _lines(path):
        if document.get("type") == "record":
            yield _stored(document, path, number)


def _stored(document: dict[str, Any], path: Path, number: int) -> dict[str, Any]:
    missing = [name for name in HASHED if name not in document]
    if missing or "hash" not in document:
        raise ExportError(f"{path}:{number}: record lacks {', '.join(missing or ['hash'])}")
    row = {name: document[name] for name in STORED}
    row["line"] = number
    return encode_json_columns(row)
