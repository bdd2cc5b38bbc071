"""TokenStore: hashed storage, agent/operator separation, and changes made by other processes."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from proxy.tokens import Operator, TokenFileError, TokenStore, hash_token

ROOT = Path(__file__).parents[2]


@pytest.fixture
def store(tmp_path: Path) -> TokenStore:
    return TokenStore(tmp_path / "tokens.json")


def test_agent_round_trip(store: TokenStore) -> None:
    token = store.add_agent("bot-1")
    assert token.startswith("ila_") and len(token) > 40
    assert store.verify_agent("bot-1", token)
    assert not store.verify_agent("bot-1", token + "x")
    assert not store.verify_agent("bot-2", token)
    assert [a["name"] for a in store.agents()] == ["bot-1"]
    assert set(store.agents()[0]) == {"name", "created"}
    assert store.remove_agent("bot-1") and not store.remove_agent("bot-1")
    assert not store.verify_agent("bot-1", token)


def test_tokens_are_hashed_on_disk_with_mode_0600(store: TokenStore) -> None:
    agent = store.add_agent("bot")
    operator = store.add_operator("alice")
    text = store.path.read_text()
    assert agent not in text and operator not in text
    assert hash_token(agent) in text and hash_token(operator) in text
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600


def test_operator_round_trip(store: TokenStore) -> None:
    admin = store.add_operator("alice")
    viewer = store.add_operator("bob", read_only=True)
    assert admin.startswith("ilo_")
    assert store.verify_operator(admin) == Operator("alice", read_only=False)
    assert store.verify_operator(viewer) == Operator("bob", read_only=True)
    assert store.verify_operator("ilo_nope") is None
    assert [(o["name"], o["read_only"]) for o in store.operators()] == [
        ("alice", False), ("bob", True),
    ]  # fmt: skip
    assert "sha256" not in store.operators()[0]
    assert store.revoke_operator("alice") and store.verify_operator(admin) is None


def test_agent_and_operator_tokens_are_not_interchangeable(store: TokenStore) -> None:
    agent = store.add_agent("bot")
    operator = store.add_operator("bot")  # same name, separate namespace
    assert store.verify_operator(agent) is None
    assert not store.verify_agent("bot", operator)


def test_prefix_is_checked_even_when_the_hash_matches(store: TokenStore) -> None:
    agent = store.add_agent("bot")
    store.add_operator("admin")
    document = json.loads(store.path.read_text())
    document["operators"]["admin"]["sha256"] = hash_token(agent)  # a tampered or mixed-up file
    store.path.write_text(json.dumps(document))
    fresh = TokenStore(store.path)
    assert fresh.verify_operator(agent) is None


@pytest.mark.parametrize("name", ["", "-bot", "a b", "bot/1", "x" * 65, "né"])
def test_invalid_names(store: TokenStore, name: str) -> None:
    with pytest.raises(ValueError, match="invalid agent name"):
        store.add_agent(name)
    with pytest.raises(ValueError, match="invalid operator name"):
        store.add_operator(name)


def test_anonymous_is_reserved_for_agents(store: TokenStore) -> None:
    for name in ("anonymous", "Anonymous"):
        with pytest.raises(ValueError, match="reserved"):
            store.add_agent(name)


def test_duplicates_fail_clearly(store: TokenStore) -> None:
    store.add_agent("bot")
    with pytest.raises(ValueError, match="agent 'bot' already exists"):
        store.add_agent("bot")
    store.add_operator("alice")
    with pytest.raises(ValueError, match="operator 'alice' already exists"):
        store.add_operator("alice")


ADD_AGENT = "import sys; from pathlib import Path; from proxy.tokens import TokenStore; "
ADD_AGENT += "print(TokenStore(Path(sys.argv[1])).add_agent(sys.argv[2]))"


def test_store_sees_tokens_added_and_removed_by_another_process(
    store: TokenStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.add_agent("first")
    assert [a["name"] for a in store.agents()] == ["first"]
    token = subprocess.run(
        [sys.executable, "-c", ADD_AGENT, str(store.path), "late"],
        capture_output=True, text=True, check=True, cwd=ROOT,
    ).stdout.strip()  # fmt: skip
    # A miss re-reads the file at once, so a fresh token works without waiting for the next stat.
    assert store.verify_agent("late", token)
    assert [a["name"] for a in TokenStore(store.path).agents()] == ["first", "late"]
    other = TokenStore(store.path)
    assert other.remove_agent("late")
    monkeypatch.setattr("proxy.tokens.STAT_INTERVAL", 0.0)  # skip the once-a-second wait
    assert not store.verify_agent("late", token)


def test_concurrent_writers_do_not_lose_updates(store: TokenStore) -> None:
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", ADD_AGENT, str(store.path), f"a{i}"],
            stdout=subprocess.DEVNULL,
            cwd=ROOT,
        )
        for i in range(6)
    ]
    assert all(p.wait(timeout=30) == 0 for p in procs)
    assert len(TokenStore(store.path).agents()) == 6


def test_ensure_first_operator(store: TokenStore, tmp_path: Path) -> None:
    token_file = tmp_path / "operator.token"
    assert store.ensure_first_operator(token_file) == ("admin", token_file)
    token = token_file.read_text().strip()
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert store.verify_operator(token) == Operator("admin", read_only=False)
    assert store.ensure_first_operator(tmp_path / "again.token") is None
    assert not (tmp_path / "again.token").exists()


def test_unreadable_file_names_itself(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    path.write_text("[1, 2]")
    with pytest.raises(TokenFileError, match=str(path)):
        TokenStore(path)
