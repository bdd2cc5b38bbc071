"""`interlock run`: the gate in one process, with its embedded defaults."""

from __future__ import annotations

import argparse
import asyncio
import re
from pathlib import Path
from typing import Any

from policies.loader import DEFAULT_POLICY
from proxy.datadir import resolve_data_dir

_SIZE = re.compile(r"(\d+)\s*([kmg]i?b?|b)?", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


def parse_hostport(text: str) -> tuple[str, int]:
    """`HOST:PORT`, `[V6]:PORT` or `:PORT`; port 0 picks a free port."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


def parse_size(text: str) -> int:
    match = _SIZE.fullmatch(text.strip())
    if not match:
        raise argparse.ArgumentTypeError(f"expected a size like 10MiB, got {text!r}")
    unit = (match.group(2) or "").lower()[:1]
    return int(match.group(1)) * _UNITS[unit]


def parse_set(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected name=value, got {text!r}")
    return name.strip(), value.strip()


def register(commands: Any) -> None:
    run = commands.add_parser(
        "run",
        help="start the proxy, the control API and the audit store",
        description="Start Interlock: every request through the proxy is allowed, denied or held "
        "by the policy, and recorded in the audit log before it leaves.",
    )
    run.add_argument(
        "--policy",
        type=Path,
        default=DEFAULT_POLICY,
        help="policy file (default: the shipped policies/default.yaml)",
    )
    run.add_argument(
        "--listen",
        type=parse_hostport,
        default=("127.0.0.1", 8080),
        metavar="HOST:PORT",
        help="proxy address (default 127.0.0.1:8080)",
    )
    run.add_argument(
        "--api-listen",
        type=parse_hostport,
        default=("127.0.0.1", 8081),
        metavar="HOST:PORT",
        help="control API address (default 127.0.0.1:8081)",
    )
    run.add_argument("--data-dir", help="data directory (default $INTERLOCK_HOME or ~/.interlock)")
    run.add_argument(
        "--upstream-ca",
        type=Path,
        metavar="FILE",
        help="also trust this CA when verifying upstream servers (verification stays on)",
    )
    run.add_argument(
        "--mode",
        default="regular",
        help="mitmproxy mode: regular (default), socks5, upstream:URL, transparent, wireguard",
    )
    run.add_argument(
        "--set",
        dest="mitm_options",
        type=parse_set,
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="another mitmproxy option (gate-weakening ones are refused)",
    )
    run.add_argument(
        "--auth",
        choices=["required", "optional"],
        help="proxy authentication (default: required when the policy names agents "
        "or the proxy listens beyond loopback)",
    )
    run.add_argument(
        "--max-body",
        type=parse_size,
        default=10 * 1024**2,
        metavar="SIZE",
        help="largest request body the gate accepts (default 10MiB)",
    )
    run.add_argument(
        "--max-pending",
        type=int,
        default=20,
        metavar="N",
        help="pending holds allowed per agent (default 20)",
    )
    run.add_argument(
        "--api-allow",
        nargs="+",
        default=[],
        metavar="CIDR",
        help="only these client addresses may reach the control API",
    )
    run.add_argument("--api-cert", type=Path, metavar="FILE", help="TLS certificate for the API")
    run.add_argument("--api-key", type=Path, metavar="FILE", help="TLS key for the API")
    run.add_argument(
        "--api-plain-http",
        action="store_true",
        help="accept plain HTTP on a non-loopback API address (not recommended)",
    )
    run.add_argument(
        "--public-listen",
        type=parse_hostport,
        metavar="HOST:PORT",
        help="serve signed approval links and Slack interactivity here (nothing of the API)",
    )
    run.add_argument(
        "--public-url",
        metavar="URL",
        help="how phones and Slack reach --public-listen (https beyond this machine)",
    )
    run.add_argument("--public-cert", type=Path, metavar="FILE", help="TLS certificate, public")
    run.add_argument("--public-key", type=Path, metavar="FILE", help="TLS key, public listener")
    run.add_argument(
        "--synchronous",
        choices=["NORMAL", "FULL"],
        default="NORMAL",
        help="SQLite durability: NORMAL survives a process crash, FULL a power loss",
    )
    run.set_defaults(handler=run_command)


def run_command(args: argparse.Namespace) -> int:
    # Imported here so other commands start without loading mitmproxy.
    from proxy.app import RunSettings, serve

    settings = RunSettings(
        policy=args.policy,
        listen=args.listen,
        api_listen=args.api_listen,
        data_dir=resolve_data_dir(args.data_dir),
        upstream_ca=args.upstream_ca,
        mode=args.mode,
        mitm_options=dict(args.mitm_options),
        auth=args.auth,
        max_body=args.max_body,
        max_pending_per_agent=args.max_pending,
        api_allow=tuple(args.api_allow),
        api_cert=args.api_cert,
        api_key=args.api_key,
        api_plain_http=args.api_plain_http,
        synchronous=args.synchronous,
        public_listen=args.public_listen,
        public_url=args.public_url,
        public_cert=args.public_cert,
        public_key=args.public_key,
    )
    return asyncio.run(serve(settings))
