"""`interlock agents | tokens | ca | env` run as a user runs them: a real subprocess."""

from __future__ import annotations

import json
import shlex
import ssl
import stat
import subprocess
import sys
from pathlib import Path

import certifi
import pytest

from proxy.datadir import DataDir, pem_certificates, write_api_json
from proxy.tokens import TokenStore

ROOT = Path(__file__).parents[2]


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


def interlock(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "proxy.cli", *args, "--data-dir", str(home)],
        capture_output=True, text=True, cwd=ROOT,
    )  # fmt: skip


def test_agents_add_list_remove(home: Path) -> None:
    added = interlock("agents", "add", "bot", home=home)
    assert added.returncode == 0, added.stderr
    token = next(w for w in added.stdout.split() if w.startswith("ila_"))
    assert f"http://bot:{token}@127.0.0.1:8080" in added.stdout
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    assert token not in (home / "tokens.json").read_text()
    assert TokenStore(home / "tokens.json").verify_agent("bot", token)

    again = interlock("agents", "add", "bot", home=home)
    assert again.returncode == 1 and "already exists" in again.stderr

    listed = json.loads(interlock("agents", "list", "--json", home=home).stdout)
    assert [a["name"] for a in listed] == ["bot"] and "sha256" not in listed[0]
    table = interlock("agents", "list", home=home).stdout
    assert table.splitlines()[0].split() == ["name", "created"]

    assert interlock("agents", "remove", "bot", home=home).returncode == 0
    missing = interlock("agents", "remove", "bot", home=home)
    assert missing.returncode == 1 and "no agent named 'bot'" in missing.stderr


def test_agents_add_json_uses_the_proxy_recorded_in_api_json(home: Path) -> None:
    home.mkdir()
    write_api_json(DataDir(home), "http://127.0.0.1:9001", 1, proxy="http://127.0.0.1:9000")
    result = json.loads(interlock("agents", "add", "bot", "--json", home=home).stdout)
    assert result["proxy_url"] == f"http://bot:{result['token']}@127.0.0.1:9000"


def test_reserved_and_invalid_agent_names(home: Path) -> None:
    assert "reserved" in interlock("agents", "add", "anonymous", home=home).stderr
    assert "invalid agent name" in interlock("agents", "add", "a b", home=home).stderr


def test_tokens_add_list_revoke(home: Path) -> None:
    added = json.loads(interlock("tokens", "add", "eve", "--read-only", "--json", home=home).stdout)
    assert added["token"].startswith("ilo_") and added["read_only"] is True
    lines = interlock("tokens", "list", "--jsonl", home=home).stdout.splitlines()
    assert [json.loads(line)["name"] for line in lines] == ["eve"]
    assert TokenStore(home / "tokens.json").verify_operator(added["token"]) is not None
    revoked = interlock("tokens", "revoke", "eve", home=home)
    assert revoked.returncode == 0 and "next `interlock run`" in revoked.stderr
    assert interlock("tokens", "revoke", "eve", home=home).returncode == 1


def test_ca_prints_the_public_certificate(home: Path) -> None:
    result = interlock("ca", home=home)
    assert result.returncode == 0, result.stderr
    cert = Path(result.stdout.strip())
    assert cert == DataDir(home).ca_cert
    assert "BEGIN CERTIFICATE" in cert.read_text() and "PRIVATE" not in cert.read_text()
    assert interlock("ca", home=home).stdout == result.stdout  # created once


def test_ca_bundle_has_certifi_roots_and_the_interlock_ca(home: Path, tmp_path: Path) -> None:
    bundle = tmp_path / "bundle.pem"
    result = interlock("ca", "--bundle", str(bundle), home=home)
    assert result.returncode == 0, result.stderr
    assert Path(result.stdout.strip()) == bundle
    found = set(pem_certificates(bundle.read_text()))
    assert set(pem_certificates(DataDir(home).ca_cert.read_text())) <= found
    assert set(pem_certificates(Path(certifi.where()).read_text())) <= found
    assert "PRIVATE" not in bundle.read_text()
    ssl.create_default_context(cafile=str(bundle))


EXPECTED = {
    "HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "NO_PROXY", "no_proxy",
    "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "GIT_SSL_CAINFO", "PIP_CERT",
    "NODE_EXTRA_CA_CERTS",
}  # fmt: skip


def sourced_env(*args: str, home: Path) -> dict[str, str]:
    command = [sys.executable, "-m", "proxy.cli", "env", *args, "--data-dir", str(home)]
    script = f"set -e; source <({shlex.join(command)}); env -0"
    result = subprocess.run(
        ["bash", "-c", script],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
        env={"PATH": "/usr/bin:/bin"},
    )
    pairs = (item.partition("=") for item in result.stdout.split("\0") if item)
    return {name: value for name, _, value in pairs}


def test_env_output_can_be_sourced(home: Path) -> None:
    env = sourced_env("--agent", "bot", "--token", "ila_secret", home=home)
    assert env.keys() >= EXPECTED
    assert env["HTTPS_PROXY"] == env["http_proxy"] == "http://bot:ila_secret@127.0.0.1:8080"
    assert env["NO_PROXY"] == "localhost,127.0.0.1,::1"
    d = DataDir(home)
    assert env["NODE_EXTRA_CA_CERTS"] == str(d.ca_cert)
    for name in ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "GIT_SSL_CAINFO"):
        assert env[name] == str(d.ca_bundle)
    assert env["PIP_CERT"] == str(d.ca_bundle)
    context = ssl.create_default_context(cafile=env["SSL_CERT_FILE"])
    assert len(context.get_ca_certs()) > 100


def test_env_json_and_options(home: Path, tmp_path: Path) -> None:
    bundle = tmp_path / "mine.pem"
    result = interlock(
        "env", "--json", "--proxy", "proxy.internal:3128", "--no-proxy", "",
        "--bundle", str(bundle), home=home,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    env = json.loads(result.stdout)
    assert env.keys() == EXPECTED
    assert env["HTTP_PROXY"] == "http://proxy.internal:3128" and env["NO_PROXY"] == ""
    assert env["SSL_CERT_FILE"] == str(bundle) and bundle.exists()


def test_env_explains_the_bypass_and_checks_its_arguments(home: Path) -> None:
    text = interlock("env", home=home).stdout
    assert "# NO_PROXY hosts bypass the gate" in text
    assert "export HTTP_PROXY=http://127.0.0.1:8080" in text
    half = interlock("env", "--agent", "bot", home=home)
    assert half.returncode == 1 and "--agent and --token go together" in half.stderr
    bad = interlock("env", "--proxy", "ftp://x", home=home)
    assert bad.returncode == 1 and "invalid proxy URL" in bad.stderr


def test_env_warns_about_an_unknown_agent_token(home: Path) -> None:
    interlock("agents", "add", "bot", home=home)
    result = interlock("env", "--agent", "bot", "--token", "ila_wrong", home=home)
    assert result.returncode == 0 and "does not match agent 'bot'" in result.stderr
