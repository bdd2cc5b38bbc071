"""`interlock tui`: the operator's dashboard (Textual), talking to the control API over HTTP."""

from __future__ import annotations

import argparse
import gc
import sys
from pathlib import Path
from typing import Any

from proxy.client import ApiClient, ClientConfigError
from proxy.commands.operate import connection_flags
from proxy.datadir import resolve_data_dir

UNREACHABLE = 2


def register(commands: Any) -> None:
    tui = commands.add_parser("tui", help="the operator's dashboard: decide holds, watch traffic")
    connection_flags(tui)
    tui.add_argument(
        "--keymap",
        metavar="FILE",
        help='JSON object of binding id to keys, e.g. {"approve": "y"} '
        "(default: tui-keys.json in the data dir, if present)",
    )
    tui.set_defaults(handler=run_tui)


def run_tui(args: argparse.Namespace) -> int:
    try:
        client = ApiClient.from_data_dir(args.data_dir, args.api, args.token, channel="tui")
    except ClientConfigError as exc:
        print(f"interlock: {exc}", file=sys.stderr)
        return UNREACHABLE
    from tui.app import InterlockApp  # Textual loads only for this command
    from tui.client import ApiBackend
    from tui.keymap import KEYMAP_FILE, KeymapError, load_keymap

    path = Path(args.keymap) if args.keymap else resolve_data_dir(args.data_dir) / KEYMAP_FILE
    try:
        keymap = load_keymap(path, required=bool(args.keymap))
    except KeymapError as exc:
        print(f"interlock: {exc}", file=sys.stderr)
        return 1
    # What is loaded by now lives as long as the process: keep it out of every full collection,
    # so the dashboard's garbage-collection pauses stay short while traffic streams in.
    gc.freeze()
    InterlockApp(ApiBackend(client), keymap=keymap).run()
    return 0
