"""docker/entrypoint.sh and docker/healthcheck.py, run for real outside a container."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

import pytest

from proxy.datadir import pem_certificates

DOCKER = Path(__file__).resolve().parents[2] / "docker"
ENTRYPOINT = DOCKER / "entrypoint.sh"
HEALTHCHECK = DOCKER / "healthcheck.py"
BIN = Path(sys.executable).parent


def environment(tmp_path: Path, path: str | None = None) -> dict[str, str]:
    return os.environ | {
        "PATH": path or f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "INTERLOCK_HOME": str(tmp_path / "data"),
        "INTERLOCK_CA_EXPORT": str(tmp_path / "ca"),
    }


def healthcheck(env: dict[str, str]) -> int:
    return subprocess.run(
        [sys.executable, str(HEALTHCHECK)], env=env, capture_output=True
    ).returncode


def test_entrypoint_publishes_only_the_public_certificate_then_becomes_interlock(
    tmp_path: Path,
) -> None:
    env = environment(tmp_path)
    (tmp_path / "ca").mkdir()
    args = ["--listen", "127.0.0.1:0", "--api-listen", "127.0.0.1:0"]
    log = (tmp_path / "log").open("wb")
    proc = subprocess.Popen(["sh", str(ENTRYPOINT), *args], env=env, stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 30
        while not (tmp_path / "data" / "api.json").exists():
            assert proc.poll() is None and time.monotonic() < deadline, (
                tmp_path / "log"
            ).read_text()
            time.sleep(0.05)
        # exec: the entrypoint's process is now Interlock itself, so `docker stop` signals it.
        argv = Path(f"/proc/{proc.pid}/cmdline").read_bytes().split(b"\0")
        assert Path(argv[1].decode()).name == "interlock" and argv[2] == b"run", argv
        exported = sorted(p.name for p in (tmp_path / "ca").iterdir())
        assert exported == ["interlock-ca.pem"]
        published = (tmp_path / "ca" / "interlock-ca.pem").read_text()
        assert "PRIVATE KEY" not in published
        public = (tmp_path / "data" / "mitmproxy" / "mitmproxy-ca-cert.pem").read_text()
        assert pem_certificates(published) == pem_certificates(public) != []
        assert (tmp_path / "ca" / "interlock-ca.pem").stat().st_mode & 0o777 == 0o644
        assert healthcheck(env) == 0
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        log.close()
    assert "interlock: shutting down" in (tmp_path / "log").read_text()
    assert healthcheck(env) == 1  # control: nothing answers once it stopped


def test_entrypoint_runs_other_subcommands_without_publishing(tmp_path: Path) -> None:
    env = environment(tmp_path)
    (tmp_path / "ca").mkdir()
    done = subprocess.run(
        ["sh", str(ENTRYPOINT), "tokens", "add", "alice", "--json"],
        env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert json.loads(done.stdout)["name"] == "alice"
    assert list((tmp_path / "ca").iterdir()) == []


def test_entrypoint_refuses_to_publish_a_private_key(tmp_path: Path) -> None:
    fake = tmp_path / "bin"
    fake.mkdir()
    key = tmp_path / "key.pem"
    key.write_text("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
    (fake / "interlock").write_text(f"#!/bin/sh\necho {key}\n")
    (fake / "interlock").chmod(0o755)
    (tmp_path / "ca").mkdir()
    env = environment(tmp_path, path=f"{fake}{os.pathsep}/usr/bin{os.pathsep}/bin")
    done = subprocess.run(["sh", str(ENTRYPOINT)], env=env, capture_output=True, text=True)
    assert done.returncode == 1 and "private key" in done.stderr
    assert list((tmp_path / "ca").iterdir()) == []


def _healthcheck_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("interlock_healthcheck", HEALTHCHECK)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    ("recorded", "asked"),
    [
        ("http://0.0.0.0:8081", "http://127.0.0.1:8081/healthz"),
        ("http://[::]:8081", "http://[::1]:8081/healthz"),
        ("http://172.30.232.2:8081", "http://172.30.232.2:8081/healthz"),
        ("https://127.0.0.1:9000", "https://127.0.0.1:9000/healthz"),
    ],
)
def test_healthcheck_asks_the_recorded_api_address(
    tmp_path: Path, recorded: str, asked: str
) -> None:
    (tmp_path / "api.json").write_text(json.dumps({"url": recorded, "pid": 1}))
    assert _healthcheck_module().healthz_url(tmp_path) == asked
