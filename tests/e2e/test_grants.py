"""Approve and remember, end to end: the grant lets the next matching hold through, recorded."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from tests.e2e.conftest import Running, Tls, policy_text, start_interlock
from tests.e2e.test_gate import rows, wait_for_hold
from tests.e2e.upstream import Upstream


async def approve_with_grant(running: Running, path: str, grant: dict[str, object]) -> dict:
    async with running.client() as client:
        held = asyncio.create_task(client.post(running.url(path), content=b"{}"))
        (hold,) = await wait_for_hold(running)
        assert hold["proposed_pattern"].startswith("/deploy/")
        async with running.api() as api:
            answer = await api.post(f"/v1/holds/{hold['id']}/approve", json={"grant": grant})
        assert answer.status_code == 200, answer.text
        assert (await held).status_code == 200
    return answer.json()["grant"]


async def test_endpoint_grant_lets_the_next_matching_request_flow(gate: Running) -> None:
    grant = await approve_with_grant(gate, "/deploy/1", {"scope": "endpoint", "duration": "15m"})
    assert grant["pattern"] == "/deploy/*" and grant["agents"] == ["anonymous"]
    async with gate.client() as client:
        response = await client.post(gate.url("/deploy/2"), content=b"{}")
        denied = await client.get(gate.url("/admin/x"))  # a grant never overrides a deny
    assert response.status_code == 200
    assert response.headers["X-Interlock-Decision"] == "granted"
    assert denied.status_code == 403
    (row,) = rows(gate, kind="request", path="/deploy/2")
    assert row["outcome"] == "granted" and row["channel"] == "grant"
    assert grant["id"] in row["detail"] and row["decided_by"].startswith("person:")
    async with gate.api() as api:
        (listed,) = (await api.get("/v1/grants")).json()["grants"]
        assert listed["uses"] == 1
        assert (await api.delete(f"/v1/grants/{grant['id']}")).status_code == 200
    async with gate.client() as client:
        after = asyncio.create_task(client.post(gate.url("/deploy/3"), content=b"{}"))
        await wait_for_hold(gate)  # held again once revoked
        after.cancel()
    assert [r["action"] for r in rows(gate, kind="grant")] == ["created", "revoked"]


async def test_grant_refused_for_quorum_rules_and_critical_hosts(
    tmp_path: Path, tls: Tls, upstream: Upstream
) -> None:
    extra = """  - name: quorum
    action: hold
    reason: Two people.
    severity: critical
    approvals: 2
    match: {method: DELETE}
"""
    running = await start_interlock(tmp_path, tls, upstream, policy_text(pending="1s") + extra)
    try:
        async with running.client() as client:
            first = await client.delete(running.url("/thing"))
        hold_id = first.json()["hold_id"]
        async with running.api() as api:
            for grant in (
                {"scope": "endpoint", "duration": "1h"},
                {"scope": "host", "duration": "1h"},
            ):
                answer = await api.post(f"/v1/holds/{hold_id}/approve", json={"grant": grant})
                assert answer.status_code == 400 and answer.json()["error"] == "invalid_grant"
            assert (await api.get(f"/v1/holds/{hold_id}")).json()["state"] == "pending"
    finally:
        await running.interlock.stop()


async def test_grants_survive_a_restart(tmp_path: Path, tls: Tls, upstream: Upstream) -> None:
    running = await start_interlock(tmp_path, tls, upstream, policy_text())
    try:
        await approve_with_grant(running, "/deploy/a", {"scope": "host", "duration": "never"})
    finally:
        await running.interlock.stop()
    again = await start_interlock(tmp_path, tls, upstream, policy_text())
    try:
        async with again.client() as client:
            response = await client.post(again.url("/deploy/b"), content=b"{}")
        assert response.headers["X-Interlock-Decision"] == "granted"
    finally:
        await again.interlock.stop()
    db = sqlite3.connect(tmp_path / "data" / "audit.db")
    assert (
        db.execute(
            "SELECT count(*) FROM audit WHERE kind='request' AND outcome='granted'"
        ).fetchone()[0]
        == 1
    )
