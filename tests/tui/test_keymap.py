"""Remapped keys: a JSON file of binding id to keys, checked with precise messages."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.tui.fakes import FROZEN, FakeBackend, three_holds
from tests.tui.helpers import decisions_sent, rows, until
from tui.app import InterlockApp
from tui.keymap import KeymapError, load_keymap


def test_a_missing_default_file_is_no_remapping(tmp_path: Path) -> None:
    assert load_keymap(tmp_path / "tui-keys.json") == {}
    with pytest.raises(KeymapError, match="no such file"):
        load_keymap(tmp_path / "tui-keys.json", required=True)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[1]", "expected an object"),
        ("{", "not JSON"),
        ('{"aprove": "y"}', "unknown binding 'aprove'"),
        ('{"approve": ""}', "'approve' needs keys"),
    ],
)
def test_a_bad_keymap_names_the_file_and_entry(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "keys.json"
    path.write_text(text)
    with pytest.raises(KeymapError, match=message) as raised:
        load_keymap(path)
    assert str(path) in str(raised.value)


async def test_a_remapped_key_approves_and_the_old_one_does_not() -> None:
    backend = FakeBackend(three_holds())
    app = InterlockApp(backend, keymap={"approve": "y"}, clock=lambda: FROZEN)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: len(rows(app)) == 3, "the holds")
        first = rows(app)[0]
        await pilot.press("a")
        await decisions_sent(pilot)
        assert backend.decisions == []
        await pilot.press("y")
        await decisions_sent(pilot)
        assert backend.decisions == [(first, "approve", None, None)]
        assert ("queue", "y", "approve the hold shown (or the selected holds)") in app.help_rows()
