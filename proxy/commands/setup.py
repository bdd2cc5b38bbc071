"""`interlock agents | tokens | ca | env`: credentials and trust for agents and operators."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from proxy.datadir import (
    DataDir,
    bundle_contains,
    ensure_ca,
    read_api_json,
    resolve_data_dir,
    write_ca_bundle,
)
from proxy.output import add_format_flags, emit_json, emit_jsonl, emit_table
from proxy.tokens import TokenStore

DEFAULT_PROXY = "http://127.0.0.1:8080"
DEFAULT_NO_PROXY = "localhost,127.0.0.1,::1"
BUNDLE_VARIABLES = ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "GIT_SSL_CAINFO")


def register(commands: Any) -> None:
    agents = commands.add_parser("agents", help="add, list and remove agents (proxy credentials)")
    sub = agents.add_subparsers(dest="agents_command", required=True, metavar="COMMAND")
    add = _leaf(sub, "add", "create an agent and print its token (shown only once)", run_agent_add)
    add.add_argument("name", metavar="NAME")
    add_format_flags(add)
    add_format_flags(_leaf(sub, "list", "list agents", run_agent_list))
    _leaf(sub, "remove", "remove an agent", run_agent_remove).add_argument("name", metavar="NAME")

    tokens = commands.add_parser("tokens", help="add, list and revoke operator API tokens")
    sub = tokens.add_subparsers(dest="tokens_command", required=True, metavar="COMMAND")
    add = _leaf(sub, "add", "create an operator and print its token (shown only once)", run_op_add)
    add.add_argument("name", metavar="NAME")
    add.add_argument("--read-only", action="store_true", help="may watch, not approve or deny")
    add_format_flags(add)
    add_format_flags(_leaf(sub, "list", "list operators", run_op_list))
    _leaf(sub, "revoke", "revoke an operator's token", run_op_revoke).add_argument(
        "name", metavar="NAME"
    )

    ca = _leaf(
        commands, "ca", "print the CA certificate's path (creating the CA if needed)", run_ca
    )
    ca.add_argument(
        "--bundle",
        type=Path,
        metavar="FILE",
        help="write system roots plus the Interlock CA to FILE, for clients that take one CA file",
    )

    env = _leaf(commands, "env", "print the environment an agent needs to use the proxy", run_env)
    env.add_argument(
        "--proxy", metavar="URL", help=f"proxy URL (default: from api.json, else {DEFAULT_PROXY})"
    )
    env.add_argument("--agent", metavar="NAME", help="agent name to put in the proxy URL")
    env.add_argument("--token", metavar="TOKEN", help="that agent's token")
    env.add_argument(
        "--bundle",
        type=Path,
        metavar="FILE",
        help="CA bundle to point clients at (default: DATA_DIR/ca-bundle.pem, kept up to date)",
    )
    env.add_argument(
        "--no-proxy",
        default=DEFAULT_NO_PROXY,
        metavar="HOSTS",
        help=f"comma-separated hosts that bypass the proxy (default {DEFAULT_NO_PROXY})",
    )
    env.add_argument("--json", action="store_true", help="print one JSON object")


def _leaf(parent: Any, name: str, help: str, handler: Any) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = parent.add_parser(name, help=help, description=help)
    parser.add_argument(
        "--data-dir",
        metavar="DIR",
        help="state directory (default: $INTERLOCK_HOME, else ~/.interlock)",
    )
    parser.set_defaults(handler=handler)
    return parser


def _data_dir(args: argparse.Namespace) -> DataDir:
    try:
        return DataDir(resolve_data_dir(args.data_dir))
    except OSError as exc:
        raise SystemExit(f"interlock: cannot use data dir: {exc}") from None


def _store(d: DataDir) -> TokenStore:
    try:
        return TokenStore(d.tokens)
    except ValueError as exc:
        raise SystemExit(f"interlock: {exc}") from None


def _fail(message: str) -> int:
    print(f"interlock: {message}", file=sys.stderr)
    return 1


def _emit_one(args: argparse.Namespace, record: dict[str, Any]) -> bool:
    if args.jsonl:
        emit_jsonl([record])
    elif args.json:
        emit_json(record)
    return bool(args.json or args.jsonl)


def _emit_list(args: argparse.Namespace, records: list[dict[str, Any]], headers: list[str]) -> None:
    if args.json:
        emit_json(records)
    elif args.jsonl:
        emit_jsonl(records)
    else:
        emit_table(headers, [[r[h] for h in headers] for r in records])


def default_proxy(d: DataDir) -> str:
    """The proxy URL a running Interlock recorded in api.json, else the default."""
    info = read_api_json(d) or {}
    proxy = info.get("proxy")
    return proxy if isinstance(proxy, str) and proxy else DEFAULT_PROXY


def proxy_url(base: str, agent: str | None = None, token: str | None = None) -> str:
    """`base` as a full URL, with the agent's credentials replacing any it had."""
    parts = urlsplit(base if "://" in base else f"http://{base}")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"invalid proxy URL {base!r} (expected http://HOST:PORT)")
    netloc = parts.netloc.rpartition("@")[2]
    if agent is not None and token is not None:
        netloc = f"{quote(agent, safe='')}:{quote(token, safe='')}@{netloc}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def run_agent_add(args: argparse.Namespace) -> int:
    d = _data_dir(args)
    try:
        token = _store(d).add_agent(args.name)
    except ValueError as exc:
        return _fail(str(exc))
    url = proxy_url(default_proxy(d), args.name, token)
    if not _emit_one(args, {"name": args.name, "token": token, "proxy_url": url}):
        print(f"agent {args.name!r} added; its token is shown only this once:")
        print(f"  {token}")
        print(f"proxy URL: {url}")
    return 0


def run_agent_list(args: argparse.Namespace) -> int:
    _emit_list(args, _store(_data_dir(args)).agents(), ["name", "created"])
    return 0


def run_agent_remove(args: argparse.Namespace) -> int:
    if not _store(_data_dir(args)).remove_agent(args.name):
        return _fail(f"no agent named {args.name!r}")
    print(f"agent {args.name!r} removed")
    return 0


def run_op_add(args: argparse.Namespace) -> int:
    try:
        token = _store(_data_dir(args)).add_operator(args.name, read_only=args.read_only)
    except ValueError as exc:
        return _fail(str(exc))
    record = {"name": args.name, "read_only": args.read_only, "token": token}
    if not _emit_one(args, record):
        kind = "read-only operator" if args.read_only else "operator"
        print(f"{kind} {args.name!r} added; its token is shown only this once:")
        print(f"  {token}")
        print(f"use it as the header  Authorization: Bearer {token}")
    return 0


def run_op_list(args: argparse.Namespace) -> int:
    _emit_list(args, _store(_data_dir(args)).operators(), ["name", "read_only", "created"])
    return 0


def run_op_revoke(args: argparse.Namespace) -> int:
    store = _store(_data_dir(args))
    if not store.revoke_operator(args.name):
        return _fail(f"no operator named {args.name!r}")
    print(f"operator {args.name!r} revoked")
    if not store.operators():
        print(
            "no operators remain: the next `interlock run` creates a new 'admin' token",
            file=sys.stderr,
        )
    return 0


def run_ca(args: argparse.Namespace) -> int:
    d = _data_dir(args)
    cert = ensure_ca(d)
    if args.bundle is None:
        print(cert)
        return 0
    bundle = args.bundle.expanduser().resolve()
    roots, _ = write_ca_bundle(cert, bundle)
    print(f"wrote {roots} system roots and the Interlock CA to {bundle}", file=sys.stderr)
    print(bundle)
    return 0


def agent_environment(proxy: str, no_proxy: str, bundle: Path, ca_cert: Path) -> dict[str, str]:
    """The variables that send an agent's traffic through the proxy and make it trust the CA."""
    env = {
        "HTTP_PROXY": proxy, "HTTPS_PROXY": proxy, "http_proxy": proxy, "https_proxy": proxy,
        "NO_PROXY": no_proxy, "no_proxy": no_proxy,
    }  # fmt: skip
    env |= {name: str(bundle) for name in BUNDLE_VARIABLES}
    env["PIP_CERT"] = str(bundle)
    env["NODE_EXTRA_CA_CERTS"] = str(ca_cert)  # Node adds this to its own roots
    return env


def run_env(args: argparse.Namespace) -> int:
    if (args.agent is None) != (args.token is None):
        return _fail("--agent and --token go together")
    d = _data_dir(args)
    try:
        proxy = proxy_url(args.proxy or default_proxy(d), args.agent, args.token)
    except ValueError as exc:
        return _fail(str(exc))
    checkable = args.agent is not None and d.tokens.exists()
    if checkable and not _store(d).verify_agent(args.agent, args.token):
        print(
            f"warning: the token given does not match agent {args.agent!r} in {d.tokens}",
            file=sys.stderr,
        )
    ca_cert = ensure_ca(d)
    bundle = _ensure_bundle(d, args.bundle, ca_cert)
    env = agent_environment(proxy, args.no_proxy, bundle, ca_cert)
    if args.json:
        sys.stdout.write(json.dumps(env, indent=2) + "\n")
        return 0
    print("# Interlock: load with  source <(interlock env ...)")
    print(
        "# NO_PROXY hosts bypass the gate: Interlock cannot see, hold or log requests to them,"
        " so keep that list short"
    )
    for name, value in env.items():
        print(f"export {name}={shlex.quote(value)}")
    return 0


def _ensure_bundle(d: DataDir, requested: Path | None, ca_cert: Path) -> Path:
    """The bundle to use: ours is (re)written when it lacks the CA; a named file only if missing."""
    bundle = (requested or d.ca_bundle).expanduser().resolve()
    if requested is None or not bundle.exists():
        if not bundle_contains(bundle, ca_cert):
            write_ca_bundle(ca_cert, bundle)
    elif not bundle_contains(bundle, ca_cert):
        print(f"warning: {bundle} does not contain the Interlock CA {ca_cert}", file=sys.stderr)
    return bundle
