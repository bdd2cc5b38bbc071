"""Remapping the dashboard's keys: a JSON object of binding id to keys, `{"approve": "y"}`."""

from __future__ import annotations

import json
from pathlib import Path

KEYMAP_FILE = "tui-keys.json"

# Binding ids the dashboard declares (screens and app), with what each does.
BINDING_IDS: dict[str, str] = {
    "approve": "approve the hold shown (or the selected holds)",
    "deny": "deny with a reason",
    "remember": "approve and remember (create a grant)",
    "select": "select or unselect the hold shown",
    "filter": "filter the list",
    "lockdown": "switch lockdown on or off",
    "help": "show the keys",
    "queue": "show the queue",
    "activity": "show the activity",
    "grants": "show the grants",
    "revoke": "revoke the grant under the cursor",
    "open": "open the request under the cursor",
    "quit": "quit",
}


class KeymapError(ValueError):
    """The keymap file cannot be used; the message names the file and the entry."""


def load_keymap(path: Path, *, required: bool = False) -> dict[str, str]:
    """The remapped keys in `path`; empty when the file is absent and not `required`."""
    try:
        raw = path.read_text()
    except FileNotFoundError:
        if required:
            raise KeymapError(f"keymap {path}: no such file") from None
        return {}
    except OSError as exc:
        raise KeymapError(f"keymap {path}: cannot read it ({exc.strerror})") from None
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise KeymapError(f"keymap {path}: not JSON ({exc})") from None
    if not isinstance(data, dict):
        raise KeymapError(f'keymap {path}: expected an object like {{"approve": "y"}}')
    keymap: dict[str, str] = {}
    for binding_id, keys in data.items():
        if binding_id not in BINDING_IDS:
            known = ", ".join(BINDING_IDS)
            raise KeymapError(f"keymap {path}: unknown binding {binding_id!r} (known: {known})")
        if not isinstance(keys, str) or not keys.strip():
            raise KeymapError(f'keymap {path}: {binding_id!r} needs keys like "y" or "y,ctrl+a"')
        keymap[binding_id] = keys.strip()
    return keymap
