"""What the running proxy reads back from its audit store: pages of requests, one request's
trail, and how the holds of a rule ended (the control API serves these)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import aiosqlite

from proxy.auditchain import AuditError, decode_row
from proxy.records import Kind

MAX_QUERY_LIMIT = 1000
_FILTERS = ("agent", "host", "outcome", "rule", "kind")
_HOLD_OUTCOMES = ("approved", "denied", "expired")


class StoreReads:
    """The read side of `AuditStore`, on its own read-only connection."""

    path: Path
    _reader: aiosqlite.Connection
    _closed: bool

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
    return decode_row(dict(zip(row.keys(), row, strict=True)))
