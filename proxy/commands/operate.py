"""`interlock holds | approve | deny | link | lockdown`: operate a running proxy over its API.

Exit codes: 0 done, 1 the API refused (e.g. someone decided first), 2 the API could not be asked.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from policies.durations import format_duration
from proxy.client import ApiClient, ApiError, ApiUnreachable, ClientConfigError, DecisionResult
from proxy.grants import DURATIONS, SCOPES, as_policy_rules, grant_from_json
from proxy.output import add_format_flags, emit_json, emit_jsonl, emit_table

T = TypeVar("T")

OK, REFUSED, UNREACHABLE = 0, 1, 2
URL_WIDTH = 60


def register(commands: Any) -> None:
    holds = commands.add_parser("holds", help="list requests waiting for a person")
    connection_flags(holds)
    add_format_flags(holds)
    holds.set_defaults(handler=run_holds)

    approve = commands.add_parser("approve", help="let a held request through")
    approve.add_argument("hold_id", metavar="ID")
    approve.add_argument("--reason", help="why (recorded in the audit log)")
    remember = approve.add_argument_group("approve and remember (a grant)")
    remember.add_argument(
        "--remember",
        choices=list(SCOPES),
        help="also let matching requests held by the same rule through: this "
        "exact request, this endpoint (method + path pattern), or this host",
    )
    remember.add_argument(
        "--pattern",
        metavar="GLOB",
        help="the endpoint's path pattern (default: proposed from the path)",
    )
    remember.add_argument(
        "--all-agents", action="store_true", help="for every agent, not just this one"
    )
    remember.add_argument(
        "--for",
        dest="duration",
        choices=list(DURATIONS),
        default="1h",
        help="how long the grant lasts (default 1h)",
    )
    connection_flags(approve)
    approve.set_defaults(handler=run_approve)

    grants = commands.add_parser("grants", help="list active grants, or revoke one")
    grants.add_argument("action", nargs="?", choices=["list", "revoke"], default="list")
    grants.add_argument("grant_id", nargs="?", metavar="ID")
    connection_flags(grants)
    formats = grants.add_mutually_exclusive_group()
    formats.add_argument("--json", action="store_true", help="print one JSON document")
    formats.add_argument("--jsonl", action="store_true", help="print one JSON object per line")
    formats.add_argument(
        "--yaml",
        action="store_true",
        help="print the grants as policy rules to review and paste into a policy",
    )
    grants.set_defaults(handler=run_grants)

    deny = commands.add_parser("deny", help="refuse a held request")
    deny.add_argument("hold_id", metavar="ID")
    deny.add_argument("--reason", required=True, help="why; the agent is told, so it can adapt")
    connection_flags(deny)
    deny.set_defaults(handler=run_deny)

    link = commands.add_parser(
        "link", help="print signed links to decide a held request elsewhere, e.g. on a phone"
    )
    link.add_argument("hold_id", metavar="ID")
    link.add_argument(
        "--for",
        dest="audience",
        required=True,
        metavar="NAME",
        help="who decides through the links (recorded as person:link:NAME); send them only there",
    )
    connection_flags(link)
    add_format_flags(link)
    link.set_defaults(handler=run_link)

    lockdown = commands.add_parser("lockdown", help="refuse every new request at once, or stop")
    lockdown.add_argument("state", choices=["on", "off", "status"])
    lockdown.add_argument("--reason", help="why (recorded in the audit log)")
    connection_flags(lockdown)
    add_format_flags(lockdown)
    lockdown.set_defaults(handler=run_lockdown)


def connection_flags(parser: argparse.ArgumentParser) -> None:
    """--data-dir, --api and --token: how an operator command finds the control API."""
    group = parser.add_argument_group("connection")
    group.add_argument("--data-dir", help="the proxy's data directory (default $INTERLOCK_HOME)")
    group.add_argument(
        "--api",
        default=os.environ.get("INTERLOCK_API"),
        metavar="URL",
        help="control API URL (default $INTERLOCK_API, else api.json in the data dir)",
    )
    group.add_argument(
        "--token",
        default=os.environ.get("INTERLOCK_TOKEN"),
        help="operator token (default $INTERLOCK_TOKEN, else operator.token in the data dir)",
    )


def _call(args: argparse.Namespace, call: Callable[[ApiClient], Awaitable[T]]) -> T | int:
    """The call's result, or an exit code after printing why it failed."""
    try:
        client = ApiClient.from_data_dir(args.data_dir, args.api, args.token)
        return client.run_sync(call)
    except ClientConfigError as exc:
        print(f"interlock: {exc}", file=sys.stderr)
        return UNREACHABLE
    except ApiUnreachable as exc:
        print(f"interlock: {exc.message}", file=sys.stderr)
        return UNREACHABLE
    except ApiError as exc:
        print(f"interlock: {_refusal(exc)}", file=sys.stderr)
        return REFUSED


def _refusal(exc: ApiError) -> str:
    body = exc.body
    if exc.status == 409 and body.get("decided_by"):
        via = f" via {body['channel']}" if body.get("channel") else ""
        return f"{exc.message} (the decision stands: {body['state']} by {body['decided_by']}{via})"
    return f"{exc.message} (HTTP {exc.status})"


def _ago(seconds: float) -> str:
    return format_duration(max(0, int(seconds)))


def _shorten(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def run_holds(args: argparse.Namespace) -> int:
    result = _call(args, lambda c: c.holds())
    if isinstance(result, int):
        return result
    if args.json:
        emit_json(result)
    elif args.jsonl:
        emit_jsonl(result)
    elif not result:
        print("no requests are waiting for a person")
    else:
        now = time.time()
        rows = [
            [
                h["id"], _ago(now - h["created_at"]), h["agent"], h["method"],
                _shorten(h["url"], URL_WIDTH), h["rule"] or "-", _ago(h["deadline"] - now),
            ]
            for h in result
        ]  # fmt: skip
        emit_table(["ID", "AGE", "AGENT", "METHOD", "URL", "RULE", "DEADLINE IN"], rows)
    return OK


def _print_decision(verb: str, result: DecisionResult) -> None:
    hold = result.hold
    what = f"{hold['id']} ({hold['method']} {_shorten(hold['url'], URL_WIDTH)})"
    if result.final:
        print(f"{verb} {what}")
    else:
        print(f"approval recorded for {what}: {result.votes} of {result.needed} needed")


def run_approve(args: argparse.Namespace) -> int:
    grant = None
    if args.remember:
        grant = {"scope": args.remember, "duration": args.duration, "all_agents": args.all_agents}
        if args.pattern:
            grant["pattern"] = args.pattern
    elif args.pattern or args.all_agents:
        print("interlock: --pattern and --all-agents need --remember", file=sys.stderr)
        return REFUSED
    result = _call(args, lambda c: c.approve(args.hold_id, args.reason, grant))
    if isinstance(result, int):
        return result
    _print_decision("approved", result)
    made = result.hold.get("grant")
    if made:
        print(f"grant {made['id']}: {_describe_grant(made)}")
    return OK


def _describe_grant(grant: dict[str, Any]) -> str:
    where = {"exact": f"{grant['method']} {grant['pattern']} (exact request)",
             "endpoint": f"{grant['method']} {grant['pattern']}",
             "host": "any request"}[grant["scope"]]  # fmt: skip
    who = "all agents" if grant["agents"] is None else ", ".join(grant["agents"])
    left = "until revoked"
    if grant["expires_at"] is not None:
        left = f"{_ago(grant['expires_at'] - time.time())} left"
    return f"{where} on {grant['host']} held by {grant['rule']}, for {who}, {left}"


def run_grants(args: argparse.Namespace) -> int:
    if args.action == "revoke":
        if not args.grant_id:
            print("interlock: grants revoke needs a grant ID", file=sys.stderr)
            return REFUSED
        revoked = _call(args, lambda c: c.revoke_grant(args.grant_id))
        if isinstance(revoked, int):
            return revoked
        print(f"revoked {revoked['id']}")
        return OK
    result = _call(args, lambda c: c.grants())
    if isinstance(result, int):
        return result
    if args.json:
        emit_json(result)
    elif args.jsonl:
        emit_jsonl(result)
    elif args.yaml:
        sys.stdout.write(as_policy_rules([grant_from_json(g) for g in result]))
    elif not result:
        print("no active grants")
    else:
        rows = [[g["id"], g["created_by"], g["uses"], _describe_grant(g)] for g in result]
        emit_table(["ID", "BY", "USES", "GRANT"], rows)
    return OK


def run_deny(args: argparse.Namespace) -> int:
    if not args.reason.strip():
        print("interlock: deny needs a non-empty --reason", file=sys.stderr)
        return REFUSED
    result = _call(args, lambda c: c.deny(args.hold_id, args.reason))
    if isinstance(result, int):
        return result
    _print_decision("denied", result)
    return OK


def run_link(args: argparse.Namespace) -> int:
    result = _call(args, lambda c: c.link(args.hold_id, args.audience))
    if isinstance(result, int):
        return result
    if args.json:
        emit_json(result)
    elif args.jsonl:
        emit_jsonl([result])
    else:
        for name in ("review", "approve", "deny"):
            print(f"{name + ':':9}{result[name]}")
        left = _ago(result["expires_at"] - time.time())
        print(f"for {args.audience}, usable once, expires in {left}; anyone with it can decide")
    return OK


def run_lockdown(args: argparse.Namespace) -> int:
    if args.state == "status":
        result = _call(args, lambda c: c.lockdown())
    else:
        result = _call(args, lambda c: c.set_lockdown(args.state == "on", args.reason))
    if isinstance(result, int):
        return result
    if args.json:
        emit_json(result)
        return OK
    if args.jsonl:
        emit_jsonl([result])
        return OK
    state = "ON: every new request is refused" if result["on"] else "off"
    print(f"lockdown {state}")
    if result.get("by"):
        since = f" {_ago(time.time() - result['at'])} ago" if result.get("at") else ""
        reason = f": {result['reason']}" if result.get("reason") else ""
        print(f"  changed by {result['by']}{since}{reason}")
    return OK
