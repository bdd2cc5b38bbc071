"""`interlock policy check | explain | schema`: work with policy files without a running proxy."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from policies.errors import PolicyError
from policies.loader import load_policy
from policies.model import HostAction
from policies.request import build_request
from policies.schema import policy_schema
from proxy.output import add_format_flags, emit_json, emit_jsonl


def register(commands: Any) -> None:
    policy = commands.add_parser("policy", help="check, explain and describe policy files")
    sub = policy.add_subparsers(dest="policy_command", required=True, metavar="COMMAND")

    check = sub.add_parser("check", help="validate policy files (exit 1 on any error)")
    check.add_argument("files", nargs="+", metavar="FILE")
    add_format_flags(check)
    check.set_defaults(handler=run_check)

    explain = sub.add_parser("explain", help="show which rule decides a request, and why")
    explain.add_argument("file", metavar="FILE")
    explain.add_argument("method", metavar="METHOD")
    explain.add_argument("url", metavar="URL")
    explain.add_argument("-H", "--header", action="append", default=[], metavar="'Name: value'")
    data = explain.add_mutually_exclusive_group()
    data.add_argument("--data", metavar="BODY", help="request body")
    data.add_argument("--data-file", metavar="F", type=Path, help="read the request body from F")
    explain.add_argument("--agent", default="anonymous", help="the agent name (default anonymous)")
    add_format_flags(explain)
    explain.set_defaults(handler=run_explain)

    schema = sub.add_parser("schema", help="print a JSON Schema of the policy format")
    schema.set_defaults(handler=run_schema)


def _problem(p: Any) -> dict[str, Any]:
    return asdict(p) | {"text": str(p)}


def run_check(args: argparse.Namespace) -> int:
    results = []
    for file in args.files:
        try:
            policy = load_policy(file)
        except PolicyError as exc:
            results.append(
                {"file": file, "ok": False, "errors": [_problem(p) for p in exc.problems]}
            )
            continue
        results.append({
            "file": file, "ok": True, "rules": len(policy.rules), "default": policy.default.value,
            "digest": policy.digest, "warnings": list(policy.warnings),
        })  # fmt: skip
    if args.json:
        emit_json(results)
    elif args.jsonl:
        emit_jsonl(results)
    else:
        for result in results:
            if result["ok"]:
                for warning in result["warnings"]:
                    print(f"warning: {warning}", file=sys.stderr)
                print(
                    f"{result['file']}: ok ({result['rules']} rules, default {result['default']})"
                )
            else:
                for error in result["errors"]:
                    print(error["text"])
                print(f"{result['file']}: {len(result['errors'])} error(s)", file=sys.stderr)
    return 0 if all(r["ok"] for r in results) else 1


def _headers(raw: list[str]) -> list[tuple[str, str]]:
    headers = []
    for item in raw:
        name, sep, value = item.partition(":")
        if not sep or not name.strip():
            raise SystemExit(f"interlock: invalid header {item!r} (expected 'Name: value')")
        headers.append((name.strip(), value.strip()))
    return headers


def run_explain(args: argparse.Namespace) -> int:
    try:
        policy = load_policy(args.file)
    except PolicyError as exc:
        print(exc, file=sys.stderr)
        return 1
    body = b""
    if args.data is not None:
        body = args.data.encode()
    elif args.data_file is not None:
        body = args.data_file.read_bytes()
    try:
        view = build_request(args.method, args.url, _headers(args.header), body, args.agent)
    except ValueError as exc:
        print(f"interlock: {exc}", file=sys.stderr)
        return 2
    explanation = policy.explain(view)
    decision = explanation.decision
    host = policy.decide_host(view.host, view.port, view.agent)
    passthrough = host.action is HostAction.ALLOW and host.rule is not None
    result = {
        "action": decision.action.value,
        "rule": decision.rule,
        "reason": decision.reason,
        "severity": decision.severity.value,
        "hold": asdict(decision.hold) if decision.hold else None,
        "request": {"method": view.method, "url": args.url, "agent": view.agent},
        "body_problem": explanation.body_problem,
        "not_matched": [{"rule": name, "failed": why} for name, why in explanation.misses],
        "host_level": {
            "action": host.action.value,
            "rule": host.rule,
            "reason": host.reason,
            "undecrypted_traffic": "allowed" if passthrough else "refused",
        },
    }
    if args.json or args.jsonl:
        sys.stdout.write(json.dumps(result, indent=None if args.jsonl else 2) + "\n")
        return 0
    print(f"decision: {result['action']}")
    print(f"rule:     {decision.rule or '(default)'}")
    print(f"reason:   {decision.reason}")
    print(f"severity: {result['severity']}")
    if explanation.body_problem:
        print(
            f"body:     not inspectable ({explanation.body_problem}); body conditions fail closed"
        )
    by = f"by {host.rule}" if host.rule else "(default)"
    print(f"at CONNECT (host level): {host.action.value} {by}")
    if not passthrough:
        print(
            "  traffic to this host that cannot be decrypted (raw TCP, TLS passthrough) is "
            "refused: a rule needs request details it cannot see, or no host rule allows it"
        )
    if explanation.misses:
        print("earlier rules that did not match:")
        for name, why in explanation.misses:
            print(f"  {name}: {why}")
    return 0


def run_schema(args: argparse.Namespace) -> int:
    emit_json(policy_schema())
    return 0
