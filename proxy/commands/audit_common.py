"""What the `interlock audit` commands share: where the database is, a consistent read, output."""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from proxy.auditquery import Filters, open_readonly, parse_time
from proxy.datadir import DataDir, resolve_data_dir

OK, FAILED, UNREADABLE = 0, 1, 2
URL_WIDTH = 60


@dataclass(frozen=True)
class Source:
    db: Path
    keys: Path  # the directory with the signing key files


def source_of(args: argparse.Namespace) -> Source:
    if args.db is not None:
        db = Path(args.db).expanduser().resolve()
        return Source(db, db.parent)
    root = resolve_data_dir(args.data_dir)
    return Source(DataDir(root).db, root)


def filters_of(args: argparse.Namespace) -> Filters:
    return Filters(
        since=parse_time(args.since) if args.since else None,
        until=parse_time(args.until) if args.until else None,
        agent=args.agent,
        host=args.host,
        outcome=args.outcome,
        rule=args.rule,
        decided_by=args.decided_by,
    )


def fail(message: str, code: int = UNREADABLE) -> int:
    print(f"interlock: {message}", file=sys.stderr)
    return code


@contextlib.contextmanager
def snapshot(db: Path) -> Iterator[Any]:
    """A read-only connection inside one read transaction: every query sees the same state."""
    conn = open_readonly(db)
    try:
        conn.execute("BEGIN")
        yield conn
    finally:
        conn.close()


def when(at: float | None) -> str:
    return "-" if at is None else time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(at))


def short_url(row: dict[str, Any]) -> str:
    default = {"http": 80, "https": 443}.get(row.get("scheme") or "")
    port = f":{row['port']}" if row.get("port") and row["port"] != default else ""
    url = f"{row.get('scheme') or '?'}://{row.get('host') or '?'}{port}{row.get('path') or ''}"
    return url if len(url) <= URL_WIDTH else url[: URL_WIDTH - 1] + "…"
