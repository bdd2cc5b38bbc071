"""`interlock audit list | show | stats`: requests, one request in full, and what the holds say."""

from __future__ import annotations

import argparse
import sys
from typing import Any, TextIO

from proxy.auditchain import AuditError
from proxy.auditkeys import rfc3339
from proxy.auditquery import find_request, list_requests, parse_time, stats
from proxy.commands.audit_common import (
    FAILED,
    OK,
    fail,
    filters_of,
    short_url,
    snapshot,
    source_of,
    when,
)
from proxy.output import emit_json, emit_jsonl, emit_table


def run_list(args: argparse.Namespace) -> int:
    try:
        filters = filters_of(args)
        with snapshot(source_of(args).db) as conn:
            rows = list_requests(conn, filters, args.limit)
    except (AuditError, ValueError) as exc:
        return fail(str(exc))
    for row in rows:
        row["time"] = rfc3339(row["at"])
    if args.json:
        emit_json(rows)
    elif args.jsonl:
        emit_jsonl(rows)
    elif not rows:
        print("no requests match")
    else:
        table = [
            [
                when(r["at"]),
                r["request_id"],
                r["agent"] or "-",
                r["method"] or "-",
                short_url(r),
                r["rule"] or "-",
                r["final_outcome"] or "-",
                r["final_decided_by"] or "-",
                r["upstream_status"] or r["status"] or "-",
            ]
            for r in rows
        ]
        emit_table(
            ["TIME (UTC)", "REQUEST", "AGENT", "METHOD", "URL", "RULE", "OUTCOME", "BY", "STATUS"],
            table,
        )
    return OK


def run_show(args: argparse.Namespace) -> int:
    try:
        with snapshot(source_of(args).db) as conn:
            found = find_request(conn, args.request_id)
    except AuditError as exc:
        return fail(str(exc))
    if found is None:
        return fail(f"no request {args.request_id!r} in the audit log", FAILED)
    if args.json:
        emit_json(found)
        return OK
    _print_request(found, sys.stdout)
    return OK


def _print_request(found: dict[str, Any], out: TextIO) -> None:
    req, dec, resp = found["request"], found["decision"], found["response"]

    def line(label: str, value: Any) -> None:
        if value not in (None, "", []):
            out.write(f"  {label:<12} {value}\n")

    out.write(f"request {found['request_id']} (seq {found['seq']}) at {rfc3339(found['at'])}\n")
    line("agent", f"{req['agent'] or '-'} from {req['client'] or '-'}")
    url = short_url(req) + (f"?{req['query']}" if req["query"] else "")
    line("request", f"{req['method'] or '-'} {url}")
    for index, (name, value) in enumerate(req["headers"]):
        line("headers" if index == 0 else "", f"{name}: {value}")
    if req["body_size"]:
        line("body", f"{req['body_size']} bytes, sha256 {req['body_sha256']}")
        line("preview", req["body_preview"])
    line(
        "policy",
        f"digest {req['policy_digest'] or '-'}, Interlock {req['interlock_version'] or '-'}",
    )
    out.write(f"decision {dec['outcome'] or '-'}\n")
    line("rule", f"{dec['rule'] or '-'} (action {dec['action'] or '-'})")
    line("held at", rfc3339(dec["held_at"]) if dec["held_at"] else None)
    line("hold", dec["hold_id"])
    decided = dec["decided_by"] or "-"
    if dec["channel"]:
        decided += f" via {dec['channel']}"
    if dec["decided_at"]:
        decided += f" at {rfc3339(dec['decided_at'])}"
    if dec["held_ms"] is not None:
        decided += f", after {dec['held_ms'] / 1000:.1f} s"
    line("decided by", decided)
    line("why", dec["reason"])
    line("votes", ", ".join(dec["votes"]))
    line("grant", dec["grant_id"])
    line("replay of", dec["replay_of"])
    if resp is None:
        out.write("response none recorded\n")
    else:
        out.write(
            f"response {resp['status'] or '-'}, {resp['response_size'] or 0} bytes "
            f"in {resp['duration_ms'] or 0} ms\n"
        )
    out.write("trail\n")
    for row in found["trail"]:
        by = f" by {row['decided_by']}" if row["decided_by"] else ""
        via = f" via {row['channel']}" if row["channel"] else ""
        why = f": {row['reason']}" if row["reason"] else ""
        out.write(
            f"  seq {row['seq']}  {rfc3339(row['at'])}  {row['kind']} "
            f"{row['outcome'] or ''}{by}{via}{why}\n"
        )


def run_stats(args: argparse.Namespace) -> int:
    if not 0 < args.threshold <= 1:
        return fail(f"--threshold must be in (0, 1], not {args.threshold}")
    try:
        since = parse_time(args.since) if args.since else None
        with snapshot(source_of(args).db) as conn:
            result = stats(conn, since, args.min_decisions, args.threshold)
    except (AuditError, ValueError) as exc:
        return fail(str(exc))
    if args.json:
        emit_json(result)
        return OK
    outcomes = sorted({o for entry in result["requests"] for o in entry["outcomes"]})
    print("requests per agent" + (f" since {rfc3339(since)}" if since else ""))
    if result["requests"]:
        emit_table(
            ["AGENT", "TOTAL", *(o.upper() for o in outcomes)],
            [
                [e["agent"], e["total"], *(e["outcomes"].get(o, 0) for o in outcomes)]
                for e in result["requests"]
            ],
        )
    else:
        print("  none")
    print("\nholds per rule")
    if result["holds"]:
        emit_table(
            ["RULE", "HOLDS", "APPROVED", "DENIED", "EXPIRED", "APPROVAL", "MEDIAN DECIDE"],
            [
                [
                    h["rule"],
                    h["holds"],
                    h["approved"],
                    h["denied"],
                    h["expired"],
                    "-" if h["approval_rate"] is None else f"{h['approval_rate']:.0%}",
                    "-"
                    if h["median_decide_ms"] is None
                    else f"{h['median_decide_ms'] / 1000:.1f} s",
                ]
                for h in result["holds"]
            ],
        )
    else:
        print("  none")
    rule = result["candidate_rule"]
    print(
        f"\ncandidates for `allow` (at least {rule['min_decisions']} decisions, "
        f"{rule['approval_rate']:.0%} approved): "
        f"{', '.join(result['allow_candidates']) or 'none'}"
    )
    return OK
