"""The decision engine: first match wins, strict rules resist spellings, bodies fail closed."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policies.engine import Policy
from policies.loader import load_policy
from policies.model import Action, HostAction
from policies.request import build_request

POLICY = """version: 1
default: allow
agents:
  ci-bot: {addresses: [10.0.3.0/24]}
rules:
  - {name: meta, action: deny, reason: metadata, match: {ip: [169.254.169.254, "fd00:ec2::254"]}}
  - {name: internal, action: deny, reason: internal, match: {host: ["localhost", "*.internal"]}}
  - name: merge
    action: hold
    reason: merges
    match: {host: api.github.com, method: PUT, path: "/repos/*/*/pulls/*/merge"}
  - name: charge-small
    action: allow
    reason: small charges flow
    match: {host: api.stripe.com, method: POST, path: /v1/charges, form: {amount: "?", currency: usd}}
  - name: charge
    action: hold
    reason: charges
    match: {host: api.stripe.com, method: POST, path: /v1/charges}
  - name: big-json
    action: hold
    reason: big amounts
    match: {host: "*.pay.example", json: {amount: {gt: 10000}}}
  - name: drop
    action: deny
    reason: no DDL
    match: {host: db.example, body: '(?i)\\bdrop\\s+table'}
  - name: gql-read
    action: allow
    reason: queries flow
    match: {host: gql.example, json: {query: {regex: '^\\s*(query|\\{)'}}}
  - name: gql
    action: hold
    reason: mutations wait
    match: {host: gql.example}
  - name: regions
    action: hold
    reason: ec2 writes
    match: {host: "ec2.*.amazonaws.com", query: {Action: ["Run*", "Terminate*"]}}
  - name: bot-only
    action: deny
    reason: the bot may not
    agents: [ci-bot]
    match: {host: secrets.example}
  - name: auth-header
    action: hold
    reason: admin tokens
    match: {headers: {X-Admin: "yes"}}
  - name: ssh-port
    action: deny
    reason: no ssh
    match: {port: 22}
  - name: any-of-blocks
    action: hold
    reason: either
    match: [{host: a.example, method: DELETE}, {host: b.example}]
"""


@pytest.fixture(scope="module")
def policy(tmp_path_factory: pytest.TempPathFactory) -> Policy:
    path = tmp_path_factory.mktemp("p") / "policy.yaml"
    path.write_text(POLICY)
    return load_policy(path)


def decide(policy: Policy, method: str, url: str, body: bytes = b"", agent: str = "anonymous",
           headers: tuple[tuple[str, str], ...] = ()) -> tuple[str, str | None]:  # fmt: skip
    d = policy.decide(build_request(method, url, headers, body, agent))
    assert policy.explain(build_request(method, url, headers, body, agent)).decision == d
    return d.action.value, d.rule


CASES = [
    pytest.param("GET", "http://169.254.169.254/latest/meta-data", b"", ("deny", "meta"), id="metadata"),
    pytest.param("GET", "http://[fd00:ec2::254]/", b"", ("deny", "meta"), id="metadata-v6"),
    pytest.param("GET", "http://2852039166/", b"", ("deny", "meta"), id="metadata-decimal"),
    pytest.param("GET", "http://LOCALHOST./x", b"", ("deny", "internal"), id="localhost-case-dot"),
    pytest.param("GET", "https://vault.corp.internal/", b"", ("deny", "internal"), id="internal-glob"),
    pytest.param("PUT", "https://api.github.com/repos/a/b/pulls/1/merge", b"", ("hold", "merge"), id="merge"),
    pytest.param("PUT", "https://api.github.com/repos/a/b/pulls/1/merge/", b"", ("hold", "merge"), id="merge-slash"),
    pytest.param("PUT", "https://api.github.com//repos/a/b/pulls/1/merge", b"", ("hold", "merge"), id="merge-dup-slash"),
    pytest.param("PUT", "https://api.github.com/repos/a/b/pulls/1/x/../merge", b"", ("hold", "merge"), id="merge-dotdot"),
    pytest.param("PUT", "https://api.github.com/repos/a/b/pulls/1/%6Derge", b"", ("hold", "merge"), id="merge-pct"),
    pytest.param("PUT", "https://api.github.com/repos/a/b/pulls/1/MERGE", b"", ("hold", "merge"), id="merge-case"),
    pytest.param("PUT", "https://api.github.com/repos/a/b/pulls/1/merge;x=1", b"", ("hold", "merge"), id="merge-params"),
    pytest.param("PUT", "https://api.github.com/repos%2Fa%2Fb/pulls/1/merge", b"", ("hold", "merge"), id="merge-enc-slash"),
    pytest.param("GET", "https://api.github.com/repos/a/b/pulls/1/merge", b"", ("allow", None), id="merge-check-get"),
    pytest.param("POST", "https://api.stripe.com/v1/charges", b"amount=5&currency=usd", ("allow", "charge-small"), id="small-charge"),
    pytest.param("POST", "https://api.stripe.com/v1/charges", b"amount=500&currency=usd", ("hold", "charge"), id="big-charge"),
    pytest.param("POST", "https://api.stripe.com/v1/charges", b"amount=5&amount=900&currency=usd", ("hold", "charge"), id="charge-repeated-field"),
    pytest.param("POST", "https://api.stripe.com/v1/charges", b"\xff\xfe", ("hold", "charge"), id="charge-unreadable-form"),
    pytest.param("POST", "https://api.stripe.com/v1/charges/", b"amount=5&currency=usd", ("allow", "charge-small"), id="small-charge-slash"),
    pytest.param("POST", "https://x.pay.example/p", json.dumps({"amount": 20000}).encode(), ("hold", "big-json"), id="json-gt"),
    pytest.param("POST", "https://x.pay.example/p", json.dumps({"amount": 200}).encode(), ("allow", None), id="json-small"),
    pytest.param("POST", "https://x.pay.example/p", b'{"amount": "20000"}', ("allow", None), id="json-string-is-not-number"),
    pytest.param("POST", "https://x.pay.example/p", b"not json", ("hold", "big-json"), id="json-unparseable-fails-closed"),
    pytest.param("POST", "https://x.pay.example/p", b'{"amount": 1, "amount": 99999}', ("hold", "big-json"), id="json-duplicate-key"),
    pytest.param("POST", "https://x.pay.example/p", b'[{"amount": 1}, {"amount": 99999}]', ("hold", "big-json"), id="json-array-root"),
    pytest.param("POST", "https://db.example/sql", b"select 1; DROP   TABLE users", ("deny", "drop"), id="body-regex"),
    pytest.param("POST", "https://db.example/sql", b"select 1", ("allow", None), id="body-no-match"),
    pytest.param("POST", "https://gql.example/graphql", b'{"query": "query { me }"}', ("allow", "gql-read"), id="gql-query"),
    pytest.param("POST", "https://gql.example/graphql", b'{"query": " mutation { x }", "operationName": "query"}', ("hold", "gql"), id="gql-mutation"),
    pytest.param("POST", "https://gql.example/graphql", b'[{"query": "query {a}"}, {"query": "mutation {b}"}]', ("hold", "gql"), id="gql-batch-with-mutation"),
    pytest.param("POST", "https://gql.example/graphql", b"garbage", ("hold", "gql"), id="gql-unreadable-not-allowed"),
    pytest.param("POST", "https://ec2.us-east-1.amazonaws.com/?Action=RunInstances", b"", ("hold", "regions"), id="mid-host-glob"),
    pytest.param("POST", "https://ec2.us-east-1.amazonaws.com/?Action=DescribeInstances", b"", ("allow", None), id="mid-host-read"),
    pytest.param("POST", "https://ec2.a.b.amazonaws.com/?Action=RunInstances", b"", ("allow", None), id="mid-host-one-label"),
    pytest.param("GET", "https://secrets.example/", b"", ("allow", None), id="agent-rule-skips-anonymous"),
    pytest.param("GET", "https://a.example/", b"", ("allow", None), id="block-a-needs-delete"),
    pytest.param("DELETE", "https://a.example/", b"", ("hold", "any-of-blocks"), id="block-a"),
    pytest.param("GET", "https://b.example/", b"", ("hold", "any-of-blocks"), id="block-b"),
    pytest.param("GET", "http://c.example:22/", b"", ("deny", "ssh-port"), id="port"),
]  # fmt: skip


@pytest.mark.parametrize(("method", "url", "body", "expected"), CASES)
def test_decision_table(
    policy: Policy, method: str, url: str, body: bytes, expected: tuple
) -> None:
    assert decide(policy, method, url, body) == expected


def test_agent_rule_applies_to_its_agent(policy: Policy) -> None:
    assert decide(policy, "GET", "https://secrets.example/", agent="ci-bot") == ("deny", "bot-only")


def test_header_rule(policy: Policy) -> None:
    headers = (("x-admin", "yes"),)
    assert decide(policy, "GET", "https://z.example/", headers=headers) == ("hold", "auth-header")


def test_gzip_body_is_decoded_before_matching(policy: Policy) -> None:
    body = gzip.compress(b"DROP TABLE users")
    headers = (("Content-Encoding", "gzip"),)
    assert decide(policy, "POST", "https://db.example/sql", body, headers=headers) == (
        "deny",
        "drop",
    )


def test_undecodable_body_fails_closed_for_deny(policy: Policy) -> None:
    headers = (("Content-Encoding", "gzip"),)
    view = build_request("POST", "https://db.example/sql", headers, b"not gzip at all")
    assert view.body is None and view.body_problem
    assert policy.decide(view).action is Action.DENY


def test_body_over_inspection_cap_fails_closed(policy: Policy) -> None:
    view = build_request("POST", "https://db.example/sql", (), b"select 1;" * 10, inspect_limit=16)
    assert view.body is None
    assert policy.decide(view).rule == "drop"


def test_decision_carries_hold_settings(policy: Policy) -> None:
    decision = policy.decide(build_request("PUT", "https://api.github.com/repos/a/b/pulls/9/merge"))
    assert decision.hold is not None and decision.hold.timeout == 300
    assert decision.reason == "merges" and not decision.by_default


def test_default_decides_with_no_rule(policy: Policy) -> None:
    decision = policy.decide(build_request("GET", "https://example.org/"))
    assert decision.by_default and decision.action is Action.ALLOW and decision.rule is None


@pytest.mark.parametrize(
    ("host", "port", "agent", "expected"),
    [
        pytest.param("169.254.169.254", 80, "anonymous", (HostAction.DENY, "meta"), id="deny-ip"),
        pytest.param("localhost", 443, "anonymous", (HostAction.DENY, "internal"), id="deny-host"),
        pytest.param("api.github.com", 443, "anonymous", (HostAction.NEEDS_REQUEST, "merge"), id="needs-request"),
        pytest.param("b.example", 443, "anonymous", (HostAction.NEEDS_REQUEST, "auth-header"), id="header-rule-first"),
        pytest.param("secrets.example", 443, "ci-bot", (HostAction.DENY, "bot-only"), id="agent-host"),
        pytest.param("example.org", 443, "anonymous", (HostAction.NEEDS_REQUEST, "auth-header"), id="header-rule-everywhere"),
        pytest.param("example.org", 22, "anonymous", (HostAction.NEEDS_REQUEST, "auth-header"), id="earlier-request-rule-first"),
    ],
)  # fmt: skip
def test_decide_host(policy: Policy, host: str, port: int, agent: str, expected: tuple) -> None:
    decision = policy.decide_host(host, port, agent)
    assert (decision.action, decision.rule) == expected


def test_decide_host_falls_to_default(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("version: 1\ndefault: deny\nrules:\n"
                    "  - {name: gh, action: allow, reason: r, match: {host: github.com}}\n")  # fmt: skip
    policy = load_policy(path)
    assert policy.decide_host("github.com", 443).action is HostAction.ALLOW
    assert policy.decide_host("github.com", 443).rule == "gh"
    fallback = policy.decide_host("example.org", 443)
    assert (fallback.action, fallback.rule) == (HostAction.DENY, None)


def test_explain_names_the_first_failed_condition(policy: Policy) -> None:
    view = build_request(
        "POST", "https://api.stripe.com/v1/charges", (), b"amount=500&currency=usd"
    )
    explanation = policy.explain(view)
    misses = dict(explanation.misses)
    assert explanation.decision.rule == "charge"
    assert misses["merge"] == "host is 'api.github.com' does not hold"
    assert misses["charge-small"] == "form body has amount='?', currency='usd' does not hold"


HOSTS = ["api.github.com", "api.stripe.com", "x.pay.example", "db.example", "gql.example",
         "ec2.eu-west-1.amazonaws.com", "a.example", "b.example", "localhost", "169.254.169.254",
         "secrets.example", "other.org"]  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(
    host=st.sampled_from(HOSTS),
    method=st.sampled_from(["GET", "PUT", "POST", "DELETE"]),
    path=st.sampled_from(["/", "/repos/a/b/pulls/1/merge", "/v1/charges", "/graphql", "/p"]),
    body=st.sampled_from([b"", b"amount=5&currency=usd", b'{"amount": 99999}', b"DROP TABLE t"]),
    agent=st.sampled_from(["anonymous", "ci-bot"]),
    port=st.sampled_from([443, 22]),
)
def test_indexed_decide_equals_full_scan(
    policy: Policy, host: str, method: str, path: str, body: bytes, agent: str, port: int
) -> None:
    view = build_request(method, f"https://{host}:{port}{path}", (), body, agent)
    assert policy.decide(view) == policy.explain(view).decision


def test_decide_host_holds_on_a_host_only_block(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("version: 1\ndefault: allow\nrules:\n"
                    "  - name: either\n    action: hold\n    reason: r\n"
                    "    match: [{host: a.example, method: DELETE}, {host: b.example}]\n")  # fmt: skip
    policy = load_policy(path)
    assert policy.decide_host("b.example", 443).action is HostAction.HOLD
    assert policy.decide_host("a.example", 443).action is HostAction.NEEDS_REQUEST
    assert policy.decide_host("c.example", 443).action is HostAction.ALLOW


def test_numeric_label_in_host_glob_stays_a_label(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("version: 1\ndefault: allow\nrules:\n"
                    "  - {name: n, action: deny, reason: r, match: {host: '*.1.example.com'}}\n")  # fmt: skip
    policy = load_policy(path)
    assert policy.decide(build_request("GET", "https://a.1.example.com/")).rule == "n"
