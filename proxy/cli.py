"""The `interlock` command: one parser, subcommands registered by `proxy.commands` modules."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from proxy.commands import audit as audit_commands
from proxy.commands import operate as operate_commands
from proxy.commands import policy as policy_commands
from proxy.commands import run as run_commands
from proxy.commands import setup as setup_commands
from proxy.commands import tui as tui_commands


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="interlock",
        description="An approval gate for AI agents: allow, deny or hold each outbound request.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run_commands.register(commands)
    operate_commands.register(commands)
    policy_commands.register(commands)
    setup_commands.register(commands)
    tui_commands.register(commands)
    audit_commands.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.handler(args)
    except BrokenPipeError:
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main())
