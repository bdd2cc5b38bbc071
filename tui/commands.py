"""The keys as bound now (for help) and the command palette's commands."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

from textual.app import SystemCommand
from textual.binding import Binding, BindingType
from textual.screen import Screen

from tui.keymap import BINDING_IDS
from tui.screens.activity_screen import ActivityScreen
from tui.screens.grants_screen import GrantsScreen
from tui.screens.queue_screen import QueueScreen

if TYPE_CHECKING:
    from tui.app import InterlockApp

KEY_NAMES = {"question_mark": "?", "slash": "/", "space": "space", "escape": "esc"}
SCREEN_BINDINGS: list[tuple[str, Sequence[BindingType]]] = [
    ("queue", QueueScreen.BINDINGS),
    ("activity", ActivityScreen.BINDINGS),
    ("grants", GrantsScreen.BINDINGS),
]
QUEUE_COMMANDS = (
    ("approve", "Approve", "Approve the hold shown, or the selected holds"),
    ("deny", "Deny", "Deny the hold shown (or the selected) with a reason"),
    ("remember", "Approve and remember", "Approve and create a grant"),
    ("filter", "Filter holds", "Show only holds matching some words"),
)


def help_rows(
    keymap: Mapping[str, str], sections: Sequence[tuple[str, Sequence[BindingType]]]
) -> list[tuple[str, str, str]]:
    """(where, keys, what) for every binding with an id, with remapped keys applied."""
    rows = []
    for where, bindings in sections:
        for binding in bindings:
            if isinstance(binding, Binding) and binding.id:
                keys = keymap.get(binding.id, binding.key).split(",")
                shown = ", ".join(KEY_NAMES.get(k.strip(), k.strip()) for k in keys)
                rows.append((where, shown, BINDING_IDS.get(binding.id, binding.description)))
    rows.append(("anywhere", "ctrl+p", "command palette (also: change theme)"))
    return rows


def palette_commands(app: InterlockApp, screen: Screen[Any]) -> Iterable[SystemCommand]:
    if isinstance(screen, QueueScreen):
        for action, title, help_text in QUEUE_COMMANDS:
            yield SystemCommand(title, help_text, partial(screen.run_action, action))
    for name in ("queue", "activity", "grants"):
        yield SystemCommand(f"Show {name}", f"Switch to the {name} screen",
                            partial(app.action_show, name))  # fmt: skip
    yield SystemCommand("Lockdown", "Switch lockdown on or off (asks first)", app.action_lockdown)
    yield SystemCommand("Keys", "Show the keys and how to remap them", app.action_help)
