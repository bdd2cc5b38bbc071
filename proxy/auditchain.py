"""The audit hash chain: how a record is stored, and how each stored row is hashed into the chain.

Each row's `hash` is SHA-256 over the canonical encoding of every other stored column (`seq`,
`at` and `prev_hash` included): a JSON object with sorted keys, no whitespace, ASCII only. The first
row chains from `GENESIS`. See `proxy/AUDIT_SCHEMA.md`.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import math
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from json.encoder import encode_basestring_ascii
from operator import attrgetter
from typing import Any

from proxy.records import AuditRecord
from proxy.redact import Redactor

# What a caller records; the store adds the version and the chain columns.
COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(AuditRecord))
# Every stored column (insert order). `hash` covers all the others.
STORED: tuple[str, ...] = ("seq", *COLUMNS, "interlock_version", "prev_hash", "hash")
HASHED: tuple[str, ...] = STORED[:-1]
INTEGER_COLUMNS = frozenset(
    {"port", "body_size", "held_ms", "status", "response_size", "duration_ms"}
)
_TEXT_COLUMNS = tuple(c for c in COLUMNS if c not in INTEGER_COLUMNS | {"at", "headers", "detail"})
GENESIS = "0" * 64
INSERT_SQL = f"INSERT INTO audit ({', '.join(STORED)}) VALUES ({', '.join('?' * len(STORED))})"
_SORTED = sorted(range(len(HASHED)), key=lambda i: HASHED[i])
_SORTED_NAMES = tuple(HASHED[i] for i in _SORTED)
# Made once: `json.dumps` with options builds a new encoder on every call.
_CANONICAL = json.JSONEncoder(separators=(",", ":"), allow_nan=False)
_STORED_JSON = json.JSONEncoder(ensure_ascii=False, allow_nan=False)
# `row_hash` writes the canonical object itself: each key's `{"name":` or `,"name":` prefix, in
# sorted order, with the index of its value; the same bytes as `_CANONICAL`, in half the time.
_CANONICAL_KEYS = tuple(
    (("{" if n == 0 else ",") + encode_basestring_ascii(HASHED[i]) + ":", i)
    for n, i in enumerate(_SORTED)
)
_RECORD_VALUES = attrgetter(*COLUMNS)
_HEADERS_AT, _DETAIL_AT, _AT_AT = (COLUMNS.index(c) for c in ("headers", "detail", "at"))
_TEXT_AT = tuple(COLUMNS.index(c) for c in _TEXT_COLUMNS)
_INTEGER_AT = tuple(COLUMNS.index(c) for c in COLUMNS if c in INTEGER_COLUMNS)
# The columns the store's safety-net redaction rewrites, and how (see `encode_record`).
_REDACTED_TEXT_AT = tuple(COLUMNS.index(c) for c in ("query", "reason"))
_REDACTED_SHAPES_AT = tuple(COLUMNS.index(c) for c in ("path", "body_preview"))


def _version() -> str:
    try:
        return importlib.metadata.version("interlock")
    except importlib.metadata.PackageNotFoundError:
        return "0+unknown"


INTERLOCK_VERSION = _version()


class AuditError(Exception):
    """A row could not be durably recorded (or read); the gate must refuse the request."""


def canonical(document: Mapping[str, Any]) -> bytes:
    """The bytes that are hashed or signed: sorted keys, no whitespace, ASCII."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()


def row_hash(values: Sequence[Any]) -> str:
    """The hash of one row, given the values of its HASHED columns in that order."""
    return hashlib.sha256(_canonical_row(values).encode()).hexdigest()


def _canonical_row(values: Sequence[Any]) -> str:
    """`canonical()` of the row's document, for the types SQLite stores (other types: the
    general encoder)."""
    if len(values) != len(HASHED):
        raise ValueError(f"a row has {len(HASHED)} hashed values, not {len(values)}")
    parts = []
    for prefix, i in _CANONICAL_KEYS:
        value = values[i]
        kind = value.__class__
        if kind is str:
            parts.append(prefix + encode_basestring_ascii(value))
        elif value is None:
            parts.append(prefix + "null")
        elif kind is int:
            parts.append(prefix + int.__repr__(value))
        elif kind is float and math.isfinite(value):
            parts.append(prefix + float.__repr__(value))
        else:  # bool, a subclass, NaN (refused there): exactly as the general encoder does
            document = dict(zip(_SORTED_NAMES, [values[i] for i in _SORTED], strict=True))
            return _CANONICAL.encode(document)  # keys sorted above
    parts.append("}")
    return "".join(parts)


def stored_hash(row: Mapping[str, Any]) -> str:
    """The hash a stored row (a mapping of STORED names) should carry."""
    return row_hash([row[name] for name in HASHED])


@dataclass
class ChainHead:
    """The last row of the chain: the next row gets `seq + 1` and chains from `hash`."""

    seq: int
    hash: str

    @classmethod
    def genesis(cls) -> ChainHead:
        return cls(0, GENESIS)

    @classmethod
    def read(cls, conn: sqlite3.Connection) -> ChainHead:
        row = conn.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
        return cls.genesis() if row is None else cls(int(row[0]), str(row[1]))


def chain_rows(head: ChainHead, params: Iterable[Sequence[Any]]) -> list[tuple[Any, ...]]:
    """Full rows (STORED order) for `params` (COLUMNS + interlock_version), advancing `head`."""
    rows = []
    for values in params:
        seq = head.seq + 1
        hashed = (seq, *values, head.hash)
        digest = row_hash(hashed)
        rows.append((*hashed, digest))
        head.seq, head.hash = seq, digest
    return rows


def encode_record(
    record: AuditRecord, redactor: Redactor | None, version: str = INTERLOCK_VERSION
) -> tuple[Any, ...]:
    """A record's stored values (COLUMNS + interlock_version), redacted and typed as SQLite
    would store them, so that the hash computed now matches the row read back later."""
    if not record.kind or not record.request_id:
        raise AuditError(f"audit row needs a kind and a request_id, got {record!r}")
    values = [*_RECORD_VALUES(record), version]
    if (r := redactor) is not None:  # a second line of defence, kept cheap
        values[_HEADERS_AT] = r.headers(record.headers)
        values[_DETAIL_AT] = r.redact_json(record.detail)
        for at in _REDACTED_TEXT_AT:
            if values[at]:
                values[at] = r.redact_text(values[at])
        for at in _REDACTED_SHAPES_AT:
            if values[at]:
                values[at] = r.redact_shapes(values[at])
    try:
        values[_HEADERS_AT] = _STORED_JSON.encode([list(h) for h in values[_HEADERS_AT]])
        if values[_DETAIL_AT] is not None:
            values[_DETAIL_AT] = _STORED_JSON.encode(values[_DETAIL_AT])
        values[_AT_AT] = float(values[_AT_AT])
        for at in _TEXT_AT:
            value = values[at]
            if value is not None and value.__class__ is not str:
                values[at] = str(value)
        for at in _INTEGER_AT:
            value = values[at]
            if value is not None and value.__class__ is not int:
                values[at] = int(value)
    except (TypeError, ValueError) as exc:
        raise AuditError(f"audit row for {record.request_id} is not serialisable: {exc}") from exc
    return tuple(values)


def append_rows(
    conn: sqlite3.Connection, records: Iterable[AuditRecord], redactor: Redactor | None = None
) -> ChainHead:
    """Chain and insert `records` after the current head, inside the caller's transaction."""
    head = ChainHead.read(conn)
    rows = chain_rows(head, [encode_record(r, redactor) for r in records])
    conn.executemany(INSERT_SQL, rows)
    return head


def decode_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """A stored row with `headers` and `detail` parsed from their JSON text."""
    out = dict(row)
    if isinstance(out.get("headers"), str):
        out["headers"] = json.loads(out["headers"])
    if isinstance(out.get("detail"), str):
        out["detail"] = json.loads(out["detail"])
    return out


def encode_json_columns(row: Mapping[str, Any]) -> dict[str, Any]:
    """The inverse of `decode_row`: the JSON text the store wrote for `headers` and `detail`."""
    out = dict(row)
    if not isinstance(out.get("headers"), str):
        out["headers"] = _STORED_JSON.encode(out.get("headers") or [])
    if out.get("detail") is not None and not isinstance(out["detail"], str):
        out["detail"] = _STORED_JSON.encode(out["detail"])
    return out
