"""Grants: narrow, expiring, persisted; never more than the hold they replace."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import yaml

from policies.loader import load_policy
from proxy.grants import (
    GrantError,
    GrantRequest,
    GrantStore,
    as_policy_rules,
    exact_key,
    propose_pattern,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def make(store: GrantStore, scope: str = "endpoint", **overrides: object) -> object:
    fields: dict[str, object] = dict(
        rule="github/merge-pull-request", severity="high", approvals=1, agent="bot",
        method="PUT", scheme="https", host="api.github.com", port=443,
        path="/repos/acme/web/pulls/12/merge", key=exact_key("PUT", "https", "api.github.com", 443,
                                                          "/repos/acme/web/pulls/12/merge",
                                                          hashlib.sha256(b"").digest()),
        created_by="person:alice", hold_id="h_1",
    )  # fmt: skip
    choice = overrides.pop("choice", GrantRequest(scope, "1h"))
    fields.update(overrides)
    return store.create(choice, **fields)  # type: ignore[arg-type]


def match(
    store: GrantStore, path: str = "/repos/acme/web/pulls/99/merge", **overrides: object
) -> object:
    fields: dict[str, object] = dict(
        rule="github/merge-pull-request", agent="bot", method="PUT", scheme="https",
        host="api.github.com", port=443, path=path, key="k",
    )  # fmt: skip
    fields.update(overrides)
    return store.match(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("path", "pattern"),
    [("/repos/acme/web/pulls/123/merge", "/repos/acme/web/pulls/*/merge"),
     ("/v1/charges/ch_3MmlLrLkdIwHu7ix0snN0B15", "/v1/charges/*"),
     ("/projects/5f2b6c1e-9d7a-4e0b-8f3a-2c1d9e8b7a6f/deploy", "/projects/*/deploy"),
     ("/repos/acme/web/releases", "/repos/acme/web/releases")],
)  # fmt: skip
def test_proposed_pattern_stars_ids(path: str, pattern: str) -> None:
    assert propose_pattern(path) == pattern


def test_endpoint_grant_matches_same_rule_method_and_pattern_only(tmp_path: Path) -> None:
    store = GrantStore(tmp_path / "grants.json")
    make(store)
    assert match(store) is not None
    assert match(store, rule="github/delete-repo") is None
    assert match(store, method="POST") is None
    assert match(store, path="/repos/acme/api/pulls/1/merge") is None
    assert match(store, agent="other-bot") is None
    assert match(store, host="uploads.github.com") is None
    assert match(store, path="/repos/acme/web/pulls/9/merge/../../../../other/merge") is None


def test_exact_grant_needs_the_same_request(tmp_path: Path) -> None:
    store = GrantStore(tmp_path / "grants.json")
    grant = make(store, scope="exact")
    assert match(store, key=grant.exact_key) is not None  # type: ignore[attr-defined]
    assert match(store, key="another body") is None


def test_grant_for_all_agents_and_uses_are_counted(tmp_path: Path) -> None:
    store = GrantStore(tmp_path / "grants.json")
    make(store, choice=GrantRequest("endpoint", "1h", all_agents=True))
    match(store, agent="a")
    used = match(store, agent="b")
    assert used is not None and used.uses == 2  # type: ignore[attr-defined]


def test_grants_expire_on_time_and_survive_a_restart(tmp_path: Path) -> None:
    clock = Clock()
    store = GrantStore(tmp_path / "grants.json", clock=clock)
    make(store, choice=GrantRequest("endpoint", "15m"))
    forever = make(store, choice=GrantRequest("host", "never"))
    reopened = GrantStore(tmp_path / "grants.json", clock=clock)
    assert len(reopened.active()) == 2
    clock.now += 901
    assert [g.id for g in reopened.active()] == [forever.id]  # type: ignore[attr-defined]
    assert len(reopened.expired_since(clock.now - 10)) == 1


def test_revoked_grant_no_longer_matches(tmp_path: Path) -> None:
    store = GrantStore(tmp_path / "grants.json")
    grant = make(store)
    store.revoke(grant.id, "person:bob")  # type: ignore[attr-defined]
    assert match(store) is None
    assert GrantStore(tmp_path / "grants.json").active() == []
    with pytest.raises(KeyError):
        store.revoke(grant.id, "person:bob")  # type: ignore[attr-defined]


def test_quorum_rules_and_critical_hosts_cannot_be_granted(tmp_path: Path) -> None:
    store = GrantStore(tmp_path / "grants.json")
    with pytest.raises(GrantError, match="needs 2 approvals"):
        make(store, approvals=2)
    with pytest.raises(GrantError, match="critical"):
        make(store, choice=GrantRequest("host", "1h"), severity="critical")
    make(store, choice=GrantRequest("endpoint", "1h"), severity="critical")  # narrower is fine


@pytest.mark.parametrize(
    "data",
    [{"scope": "everything", "duration": "1h"}, {"scope": "host", "duration": "2d"},
     {"scope": "endpoint", "duration": "1h", "pattern": "no-slash"}, "host"],
)  # fmt: skip
def test_grant_choice_is_validated(data: object) -> None:
    with pytest.raises(GrantError):
        GrantRequest.from_json(data)


def test_grants_as_policy_rules_load_as_a_valid_policy(tmp_path: Path) -> None:
    store = GrantStore(tmp_path / "grants.json")
    make(store)
    make(store, choice=GrantRequest("host", "1h", all_agents=True))
    make(store, scope="exact")
    text = as_policy_rules(store.active())
    policy_file = tmp_path / "p.yaml"
    policy_file.write_text("version: 1\ndefault: allow\n" + text)
    policy = load_policy(policy_file)
    assert [r.action.value for r in policy.rules] == ["allow"] * 3
    assert yaml.safe_load(text)["rules"][0]["agents"] == ["bot"]
