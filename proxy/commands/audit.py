"""`interlock audit list | show | stats | export | verify | head | prune`: the audit log, read
straight from the database (the proxy need not run).

Exit codes: 0 done (verify: intact), 1 not found or refused (verify: broken), 2 cannot read.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from proxy.auditkeys import PUBLIC_KEY_FILE
from proxy.commands.audit_read import run_list, run_show, run_stats
from proxy.commands.audit_trust import run_export, run_head, run_prune, run_verify
from proxy.output import add_format_flags


def register(commands: Any) -> None:
    audit = commands.add_parser(
        "audit",
        help="query, verify, export and prune the audit log",
        description="Read the audit log from the data directory's database (or --db FILE).",
    )
    sub = audit.add_subparsers(dest="audit_command", required=True, metavar="COMMAND")

    listing = sub.add_parser("list", help="requests, newest first")
    _source_flags(listing)
    _filter_flags(listing)
    listing.add_argument("--limit", type=_positive, default=50, help="at most N (default 50)")
    add_format_flags(listing)
    listing.set_defaults(handler=run_list)

    show = sub.add_parser("show", help="one request in full, with its decision trail")
    show.add_argument("request_id", metavar="ID", help="request id, hold id or seq")
    _source_flags(show)
    show.add_argument("--json", action="store_true", help="print one JSON document")
    show.set_defaults(handler=run_show)

    stat = sub.add_parser("stats", help="requests per agent and outcome; holds per rule")
    _source_flags(stat)
    stat.add_argument("--since", metavar="WHEN", help="only since then (2h, 7d or RFC 3339)")
    stat.add_argument(
        "--min-decisions",
        type=_positive,
        default=10,
        metavar="N",
        help="decisions a rule needs to be an allow candidate (default 10)",
    )
    stat.add_argument(
        "--threshold",
        type=float,
        default=0.95,
        metavar="RATE",
        help="approval rate of an allow candidate (default 0.95)",
    )
    stat.add_argument("--json", action="store_true", help="print one JSON document")
    stat.set_defaults(handler=run_stats)

    export = sub.add_parser("export", help="stream records as JSONL or CSV (interlock.audit/1)")
    _source_flags(export)
    _filter_flags(export)
    export.add_argument(
        "--format",
        choices=["jsonl", "csv"],
        default="jsonl",
        help="jsonl (default; verifies on its own) or csv",
    )
    export.add_argument("-o", "--output", type=Path, metavar="FILE", help="default: stdout")
    export.set_defaults(handler=run_export)

    verify = sub.add_parser("verify", help="check the hash chain and the signatures")
    _source_flags(verify)
    verify.add_argument("--file", type=Path, metavar="EXPORT", help="a JSONL export instead")
    verify.add_argument(
        "--head",
        metavar="JSON|FILE",
        help="a signed head kept elsewhere (`audit head` output or a log)",
    )
    verify.add_argument(
        "--pubkey",
        type=Path,
        metavar="FILE",
        help=f"public key (default: {PUBLIC_KEY_FILE} beside the database)",
    )
    verify.add_argument("--json", action="store_true", help="print the report as JSON")
    verify.set_defaults(handler=run_verify)

    head = sub.add_parser("head", help="print the latest signed head, to keep elsewhere")
    _source_flags(head)
    head.set_defaults(handler=run_head)

    pruning = sub.add_parser("prune", help="remove old records, leaving a signed anchor")
    _source_flags(pruning)
    pruning.add_argument(
        "--before",
        required=True,
        metavar="WHEN",
        help="remove records older than this (90d or RFC 3339)",
    )
    pruning.add_argument("--dry-run", action="store_true", help="say what would be removed")
    pruning.set_defaults(handler=run_prune)


def _source_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("source")
    group.add_argument("--data-dir", help="the data directory (default $INTERLOCK_HOME)")
    group.add_argument("--db", type=Path, metavar="FILE", help="an audit database elsewhere")


def _filter_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("filters")
    group.add_argument("--since", metavar="WHEN", help="from then on (2h, 7d or RFC 3339)")
    group.add_argument("--until", metavar="WHEN", help="before then (2h, 7d or RFC 3339)")
    for name in ("agent", "host", "outcome", "rule"):
        group.add_argument(f"--{name}")
    group.add_argument("--decided-by", metavar="WHO", help="e.g. policy, person:alice")


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text!r}")
    return int(text)
