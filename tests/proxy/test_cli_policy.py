"""`interlock policy check | explain | schema` run as a user runs them: a real subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
DEFAULT = ROOT / "policies" / "default.yaml"
BROKEN = ROOT / "tests" / "policies" / "broken"


def interlock(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "proxy.cli", *args], capture_output=True, text=True, cwd=ROOT
    )


def test_check_valid_policy_exits_zero() -> None:
    result = interlock("policy", "check", str(DEFAULT))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok (" in result.stdout and "default allow" in result.stdout


def test_check_lists_every_error_and_exits_one() -> None:
    files = [str(BROKEN / "unknown_key.yaml"), str(BROKEN / "bad_cidr.yaml"), str(DEFAULT)]
    result = interlock("policy", "check", *files)
    assert result.returncode == 1
    assert "unknown key 'hots' (did you mean 'host'?)" in result.stdout
    assert "has host bits set" in result.stdout


def test_check_json_is_one_document() -> None:
    result = interlock("policy", "check", "--json", str(BROKEN / "bad_port.yaml"))
    (report,) = json.loads(result.stdout)
    assert report["ok"] is False
    assert report["errors"][0]["line"] == 8 and report["errors"][0]["where"] == "rules[0] (p)"


def test_check_warns_on_shadowed_rules(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(
        "version: 1\ndefault: allow\nrules:\n"
        "  - {name: all, action: deny, reason: r}\n"
        "  - {name: late, action: hold, reason: r, match: {host: a.example}}\n"
    )
    result = interlock("policy", "check", str(path))
    assert result.returncode == 0
    assert "rule 'late' can never match" in result.stderr


@pytest.mark.parametrize(
    ("method", "url", "action"),
    [("PUT", "https://api.github.com/repos/acme/web/pulls/7/merge", "hold"),
     ("GET", "https://pypi.org/simple/requests/", "allow"),
     ("GET", "http://169.254.169.254/latest/meta-data/", "deny")],
)  # fmt: skip
def test_explain_json(method: str, url: str, action: str) -> None:
    result = interlock("policy", "explain", str(DEFAULT), method, url, "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["action"] == action
    assert {"action", "rule", "reason"} <= report.keys()
    assert report["rule"] is None or "/" in report["rule"]


def test_explain_text_shows_headers_body_and_misses(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(
        "version: 1\ndefault: deny\nrules:\n"
        "  - {name: admin, action: hold, reason: admins, match: {headers: {X-Role: admin}}}\n"
        "  - {name: ddl, action: deny, reason: no DDL, match: {body: '(?i)drop table'}}\n"
        "  - {name: reads, action: allow, reason: reads, match: {method: GET}}\n"
    )
    result = interlock(
        "policy", "explain", str(path), "POST", "https://db.example/q", "-H", "X-Role: dev",
        "--data", "select 1",
    )  # fmt: skip
    assert result.returncode == 0
    assert "decision: deny" in result.stdout and "rule:     (default)" in result.stdout
    assert "admin: headers have x-role: 'admin' does not hold" in result.stdout
    assert "reads: method is GET does not hold" in result.stdout


def test_explain_default_rule_is_null_in_json(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("version: 1\ndefault: hold\n")
    result = interlock("policy", "explain", str(path), "GET", "https://x.example/", "--json")
    assert json.loads(result.stdout)["rule"] is None


def test_explain_says_when_passthrough_would_be_refused() -> None:
    result = interlock("policy", "explain", str(DEFAULT), "GET", "https://api.github.com/")
    assert "cannot be decrypted" in result.stdout


def test_schema_prints_json_schema() -> None:
    result = interlock("policy", "schema")
    assert json.loads(result.stdout)["title"].startswith("Interlock policy")
