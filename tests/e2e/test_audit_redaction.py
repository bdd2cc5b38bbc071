"""Credentials sent through the proxy appear nowhere: not in the data directory, not in any
output of `interlock audit` (table, JSON, JSONL, CSV exports, show)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

from tests.e2e.conftest import Tls, policy_text, start_interlock
from tests.e2e.test_gate import rows, wait_for_hold
from tests.e2e.upstream import Upstream

SECRETS = ["sk-live-SECRETbearer123", "SECRETcookie456", "SECRETapikey789", "SECRETjsonpw000",
           "SECRETformpw111", "SECRETquerytok222"]  # fmt: skip


def interlock(*args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "proxy.cli", *args], capture_output=True,
                          text=True, check=True, timeout=60)  # fmt: skip
    return done.stdout + done.stderr


async def test_no_credential_survives_capture(tmp_path: Path, tls: Tls, upstream: Upstream) -> None:
    running = await start_interlock(tmp_path, tls, upstream, policy_text(pending="20s"))
    headers = {"Authorization": f"Bearer {SECRETS[0]}", "Cookie": f"session={SECRETS[1]}",
               "X-Api-Key": SECRETS[2]}  # fmt: skip
    try:
        async with running.client() as client:
            allowed = await client.post(running.url(f"/login?access_token={SECRETS[5]}"),
                                        headers=headers, json={"user": "a", "password": SECRETS[3]})  # fmt: skip
            form = await client.post(running.url("/form"), headers=headers,
                                     data={"username": "a", "password": SECRETS[4]})  # fmt: skip
            held = asyncio.create_task(client.post(running.url("/deploy/secret"), headers=headers,
                                                   json={"api_key": SECRETS[2]}))  # fmt: skip
            (hold,) = await wait_for_hold(running)
            async with running.api() as api:
                shown = (await api.get(f"/v1/holds/{hold['id']}")).text
                await api.post(f"/v1/holds/{hold['id']}/approve", json={})
            assert (await held).status_code == 200
        assert allowed.status_code == form.status_code == 200
        # the upstream really received them: the proxy forwards credentials, it only never keeps them
        assert any(SECRETS[0] in str(seen.headers) for seen in upstream.requests)
        request_id = rows(running, kind="request", path="/login")[0]["request_id"]
    finally:
        await running.interlock.stop()
    data = str(tmp_path / "data")
    outputs = {
        "decision log": running.log.getvalue(),
        "hold API": shown,
        "audit list": interlock("audit", "list", "--data-dir", data),
        "audit list --json": interlock("audit", "list", "--data-dir", data, "--json"),
        "audit list --jsonl": interlock("audit", "list", "--data-dir", data, "--jsonl"),
        "audit show": interlock("audit", "show", request_id, "--data-dir", data, "--json"),
        "export jsonl": interlock("audit", "export", "--data-dir", data, "--format", "jsonl"),
        "export csv": interlock("audit", "export", "--data-dir", data, "--format", "csv"),
    }
    assert "password" in outputs["export jsonl"]  # the field is there, its value is not
    for path in Path(data).rglob("*"):
        if path.is_file():
            outputs[str(path)] = path.read_bytes().decode("latin-1")
    leaks = [(where, s) for where, text in outputs.items() for s in SECRETS if s in text]
    assert leaks == []
