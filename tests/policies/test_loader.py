"""Broken policies fail with their precise message; good ones load with the right shape."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from policies.errors import PolicyError
from policies.loader import load_policy
from policies.model import Action, SecretRef

BROKEN = Path(__file__).parent / "broken"
CASES = sorted(p for p in BROKEN.glob("*.yaml") if p.read_text().startswith("# expect: "))


def _expected(path: Path) -> str:
    header = path.read_text().splitlines()[0].removeprefix("# expect: ")
    return (
        header.replace("FILE", str(path))
        .replace("included_with_default.yaml", str(BROKEN / "included_with_default.yaml"))
        .replace("cycle_b.yaml:", str(BROKEN / "cycle_b.yaml") + ":")
    )


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_broken_policy_fails_with_precise_message(path: Path) -> None:
    with pytest.raises(PolicyError) as caught:
        load_policy(path)
    messages = [str(p) for p in caught.value.problems]
    expected = _expected(path)
    assert any(m.startswith(expected) for m in messages), messages


def test_broken_folder_is_not_empty() -> None:
    assert len(CASES) >= 20


def _write(tmp_path: Path, text: str, name: str = "policy.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_every_error_is_listed_not_just_the_first(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        """version: 1
default: allow
rules:
  - {name: a, action: deny, reason: x, match: {hots: a}}
  - {name: b, action: nope, reason: y}
  - {name: c, action: deny, reason: z, match: {ip: 300.1.1.1}}
""",
    )
    with pytest.raises(PolicyError) as caught:
        load_policy(path)
    wheres = [p.where for p in caught.value.problems]
    assert wheres == ["rules[0] (a)", "rules[1] (b)", "rules[2] (c)"]


def test_included_rules_come_after_own_rules_and_are_namespaced(tmp_path: Path) -> None:
    _write(tmp_path, "version: 1\nrules:\n  - {name: one, action: deny, reason: r}\n", "team.yaml")
    _write(tmp_path, "version: 1\nrules:\n  - {name: one, action: hold, reason: r}\n", "more.yaml")
    top = _write(
        tmp_path,
        """version: 1
default: hold
include: [team.yaml, more.yaml]
rules:
  - {name: own, action: allow, reason: mine, match: {host: a.example}}
""",
    )
    policy = load_policy(top)
    assert [r.name for r in policy.rules] == ["own", "team/one", "more/one"]
    assert policy.default is Action.HOLD
    assert len(policy.files) == 3 and len(policy.digest) == 64


def test_digest_changes_when_an_included_file_changes(tmp_path: Path) -> None:
    inc = _write(tmp_path, "version: 1\nrules: []\n", "inc.yaml")
    top = _write(tmp_path, "version: 1\ndefault: allow\ninclude: [inc.yaml]\n")
    before = load_policy(top).digest
    inc.write_text("version: 1\nrules:\n  - {name: x, action: deny, reason: r}\n")
    assert load_policy(top).digest != before


def test_channels_agents_and_hold_settings_are_read(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        """version: 1
default: allow
agents:
  ci-bot: {addresses: [10.0.3.0/24, "fd00:3::/64"]}
channels:
  hook: {type: webhook, url: "https://hooks.example.com/x", secret: {env: HOOK}}
  ops:
    type: slack
    channel: "#ops"
    bot_token: {file: /run/secrets/slack}
    app_token: {env: SLACK_APP}
    approvers: [U012AB3CD]
rules:
  - name: deploy
    action: hold
    reason: Deploys need a person.
    agents: ci-bot
    timeout: 1h
    respond_pending_after: 10s
    reasons: [Not now]
    notify: [hook]
    escalate: [{after: 5m, notify: [ops]}]
    approvals: 2
    match: {host: api.vercel.com}
""",
    )
    policy = load_policy(path)
    rule = policy.rules[0]
    assert rule.agents == frozenset({"ci-bot"})
    assert rule.hold is not None
    assert (rule.hold.timeout, rule.hold.respond_pending_after) == (3600, 10)
    assert rule.hold.notify == ("hook",) and rule.hold.escalate[0].after == 300
    assert rule.hold.approvals == 2 and rule.hold.reasons == ("Not now",)
    assert policy.channels["ops"].settings["bot_token"] == SecretRef(file="/run/secrets/slack")
    assert policy.agent_for_address("10.0.3.7") == "ci-bot"
    assert policy.agent_for_address("10.0.4.7") is None


SLACK_CHANNEL = """version: 1
default: allow
channels:
  ops:
    type: slack
    channel: C0123ABCD
    bot_token: {env: SLACK_BOT}
    app_token: {env: SLACK_APP}
"""  # a socket-mode slack channel, without its approvers


def test_slack_api_url_is_optional_and_must_be_a_url(tmp_path: Path) -> None:
    channel = SLACK_CHANNEL + "    approvers: [U012AB3CD]\n"
    plain = load_policy(_write(tmp_path, channel, "plain.yaml"))
    assert "api_url" not in plain.channels["ops"].settings  # the notifier uses slack.com
    gov = load_policy(_write(tmp_path, channel + "    api_url: https://slack-gov.com/api/\n",
                             "gov.yaml"))  # fmt: skip
    assert gov.channels["ops"].settings["api_url"] == "https://slack-gov.com/api/"
    with pytest.raises(PolicyError) as caught:
        load_policy(_write(tmp_path, channel + "    api_url: slack-gov.com\n", "bad.yaml"))
    assert "channels.ops: api_url must be an http(s) URL" in str(caught.value.problems[0])


def test_slack_approvers_may_map_each_user_to_a_persons_name(tmp_path: Path) -> None:
    head = SLACK_CHANNEL
    mapped = load_policy(_write(tmp_path, head + "    approvers: {U012AB3CD: alice, W0BOB: bob}\n",
                                "mapped.yaml"))  # fmt: skip
    settings = mapped.channels["ops"].settings
    assert settings["approvers"] == ("U012AB3CD", "W0BOB")
    assert settings["approver_names"] == {"U012AB3CD": "alice", "W0BOB": "bob"}
    listed = load_policy(_write(tmp_path, head + "    approvers: [U012AB3CD]\n", "listed.yaml"))
    assert "approver_names" not in listed.channels["ops"].settings
    for bad, message in [
        ("{U012AB3CD: [alice]}", "U012AB3CD must map to a person's name"),
        ("{U012AB3CD: 'al ice'}", "U012AB3CD must map to a person's name"),
        ("{alice: U012AB3CD}", "must list Slack user IDs like U012AB3CD, or map"),
    ]:
        with pytest.raises(PolicyError) as caught:
            load_policy(_write(tmp_path, head + f"    approvers: {bad}\n", "bad.yaml"))
        problem = str(caught.value.problems[0])
        assert message in problem and "bad.yaml:9" in problem, problem


def test_shadowed_rule_is_a_warning_not_an_error(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        """version: 1
default: allow
rules:
  - {name: all-github, action: deny, reason: r, match: {host: "*.github.com"}}
  - {name: merges, action: hold, reason: r, match: {host: api.github.com, method: PUT}}
  - {name: other, action: hold, reason: r, match: {host: api.stripe.com}}
""",
    )
    policy = load_policy(path)
    assert len(policy.warnings) == 1
    assert re.search(r"rule 'merges' can never match: rule 'all-github' .* always matches first",
                     policy.warnings[0])  # fmt: skip


def test_allow_rule_does_not_shadow_a_hold_on_spelling_sensitive_conditions(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        """version: 1
default: allow
rules:
  - {name: reads, action: allow, reason: r, match: {host: a.example, path: /x}}
  - {name: hold-x, action: hold, reason: r, match: {host: a.example, path: /x}}
""",
    )
    assert load_policy(path).warnings == ()


def test_host_patterns_are_normalized_like_hosts(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        """version: 1
default: allow
rules:
  - {name: idn, action: deny, reason: r, match: {host: "BÜCHER.de."}}
  - {name: glob, action: deny, reason: r, match: {host: "*.Stripe.COM"}}
""",
    )
    policy = load_policy(path)
    assert policy.rules[0].blocks[0][0].describe() == "host is 'xn--bcher-kva.de'"
    assert policy.rules[1].blocks[0][0].describe() == "host is '*.stripe.com'"
