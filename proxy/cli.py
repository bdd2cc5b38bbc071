"""The `interlock` command: one parser, subcommands registered by `proxy.commands` modules."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from proxy.commands import policy as policy_commands


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="interlock",
        description="An approval gate for AI agents: allow, deny or hold each outbound request.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    policy_commands.register(commands)
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
