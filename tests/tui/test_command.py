"""`interlock tui`: what it says when it cannot start."""

from __future__ import annotations

from pathlib import Path

import pytest

from proxy.cli import main


def test_without_an_address_it_says_where_it_looked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("INTERLOCK_API", raising=False)
    assert main(["tui", "--data-dir", str(tmp_path)]) == 2
    assert f"{tmp_path}/api.json is missing" in capsys.readouterr().err


def test_a_bad_keymap_is_refused_before_the_screen_opens(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    keys = tmp_path / "keys.json"
    keys.write_text('{"approve": 1}')
    args = ["tui", "--api", "http://127.0.0.1:9", "--token", "t", "--keymap", str(keys)]
    assert main(args) == 1
    assert f"keymap {keys}: 'approve' needs keys" in capsys.readouterr().err
