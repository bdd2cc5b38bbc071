"""The gate end to end: real mitmproxy, real TLS upstream, real clients and a real audit file."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from pathlib import Path

import httpx
import pytest

from proxy.app import MITMPROXY_MAJOR
from tests.e2e.conftest import Running, Tls, policy_text, start_interlock
from tests.e2e.upstream import Upstream


async def wait_for_hold(running: Running, count: int = 1, timeout: float = 10) -> list[dict]:
    deadline = time.monotonic() + timeout
    async with running.api() as api:
        while time.monotonic() < deadline:
            holds = (await api.get("/v1/holds")).json()
            holds = holds["holds"] if isinstance(holds, dict) else holds
            if len(holds) >= count:
                return holds
            await asyncio.sleep(0.02)
    raise AssertionError(f"no {count} hold(s) appeared")


def rows(running: Running, **where: str) -> list[sqlite3.Row]:
    db = sqlite3.connect(running.interlock.data.db)
    db.row_factory = sqlite3.Row
    clause = " AND ".join(f"{k} = ?" for k in where) or "1"
    found = db.execute(
        f"SELECT * FROM audit WHERE {clause} ORDER BY seq", tuple(where.values())
    ).fetchall()
    db.close()
    return found


async def test_allowed_get_passes_and_is_recorded(gate: Running) -> None:
    async with gate.client() as client:
        response = await client.get(gate.url("/hello?x=1"))
    assert response.status_code == 200
    assert response.headers["X-Interlock-Decision"] == "allowed"
    assert gate.upstream.paths() == ["/hello?x=1"]
    (row,) = rows(gate, kind="request", path="/hello")
    assert row["outcome"] == "allowed" and row["decided_by"] == "policy"
    line = json.loads(gate.log.getvalue().splitlines()[-1])
    assert line["outcome"] == "allowed" and line["request_id"] == row["request_id"]


async def test_denied_request_gets_403_with_reason_and_no_upstream_connection(
    gate: Running,
) -> None:
    async with gate.client() as client:
        response = await client.get(gate.url("/admin/users"))
    assert response.status_code == 403
    body = response.json()
    assert body["outcome"] == "denied" and body["rule"] == "deny-admin"
    assert body["reason"] == "The admin API is off limits." and body["decided_by"] == "policy"
    assert {"error", "request_id", "message"} <= body.keys()
    assert response.headers["X-Interlock-Decision"] == "denied"
    assert gate.upstream.connections == 0


async def test_held_post_waits_while_other_requests_flow_then_approve(gate: Running) -> None:
    async with gate.client() as client:
        held = asyncio.create_task(client.post(gate.url("/deploy/web"), content=b'{"ref": "main"}'))
        (hold,) = await wait_for_hold(gate)
        assert hold["rule"] == "hold-deploy" and hold["method"] == "POST"
        started = time.monotonic()
        others = await asyncio.gather(*(client.get(gate.url(f"/read/{i}")) for i in range(20)))
        assert all(r.status_code == 200 for r in others)
        assert time.monotonic() - started < 5
        assert not held.done()
        assert "/deploy/web" not in gate.upstream.paths()
        async with gate.api() as api:
            answer = await api.post(f"/v1/holds/{hold['id']}/approve", json={"reason": "ship it"})
        assert answer.status_code == 200
        response = await held
    assert response.status_code == 200
    assert response.headers["X-Interlock-Decision"] == "approved"
    assert gate.upstream.paths().count("/deploy/web") == 1
    outcomes = [r["outcome"] for r in rows(gate, hold_id=hold["id"])]
    assert outcomes[:2] == ["pending", "approved"]


@pytest.mark.skipif(
    MITMPROXY_MAJOR < 12, reason="HTTP/2 to clients is off on mitmproxy 11 (h2 flaw)"
)
async def test_held_stream_does_not_block_other_streams_on_the_same_http2_connection(
    gate: Running,
) -> None:
    """curl multiplexes 21 transfers on one HTTP/2 connection; one is held, 20 complete."""
    urls = [gate.url("/deploy/h2")] + [gate.url(f"/h2/{i}") for i in range(20)]
    args = ["--http2", "--parallel", "--parallel-max", "30", "-s", "-o", "/dev/null",
            "-x", gate.proxy_url, "--cacert", str(gate.interlock.ca_cert),
            "-w", "\\nRESULT %{http_code} %{http_version} %{num_connects} %{url_effective}\\n"]  # fmt: skip
    posted = ["-X", "POST", "-d", "x"]
    curl = await asyncio.create_subprocess_exec(
        "curl", *args, *posted, urls[0], "--next", *args, *urls[1:],
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    (hold,) = await wait_for_hold(gate)
    deadline = time.monotonic() + 10
    while sum(p.startswith("/h2/") for p in gate.upstream.paths()) < 20:
        assert time.monotonic() < deadline, gate.upstream.paths()
        await asyncio.sleep(0.02)
    assert curl.returncode is None  # the held stream is still open
    async with gate.api() as api:
        await api.post(f"/v1/holds/{hold['id']}/deny", json={"reason": "not today"})
    out, _ = await asyncio.wait_for(curl.communicate(), 20)
    results = [line.split()[1:] for line in out.decode().splitlines() if line.startswith("RESULT ")]
    by_url = {url: (code, version) for code, version, _, url in results}
    assert by_url.pop(urls[0]) == ("403", "2")
    assert set(by_url.values()) == {("200", "2")} and len(by_url) == 20
    assert sum(int(connects) for _, _, connects, _ in results) == 1  # one connection for all


async def test_deny_gives_403_with_the_persons_reason(gate: Running) -> None:
    async with gate.client() as client:
        held = asyncio.create_task(client.post(gate.url("/deploy/api"), content=b"{}"))
        (hold,) = await wait_for_hold(gate)
        async with gate.api() as api:
            assert (await api.post(f"/v1/holds/{hold['id']}/deny", json={})).status_code == 400
            await api.post(f"/v1/holds/{hold['id']}/deny", json={"reason": "Wrong branch"})
            again = await api.post(f"/v1/holds/{hold['id']}/approve", json={})
        response = await held
    assert again.status_code == 409
    assert response.status_code == 403
    body = response.json()
    assert body["outcome"] == "denied" and body["reason"] == "Wrong branch"
    assert body["decided_by"].startswith("person:") and body["hold_id"] == hold["id"]
    assert gate.upstream.connections == 0


async def test_hold_expires_at_its_deadline(tmp_path: Path, tls: Tls, upstream: Upstream) -> None:
    running = await start_interlock(
        tmp_path, tls, upstream, policy_text(timeout="1s", pending="20s")
    )
    try:
        async with running.client() as client:
            response = await client.post(running.url("/deploy/slow"), content=b"{}")
        assert response.status_code == 403
        assert response.json()["outcome"] == "expired"
        assert upstream.connections == 0
        (hold_row,) = rows(running, kind="hold")
        assert hold_row["outcome"] == "expired" and hold_row["decided_by"] == "system"
    finally:
        await running.interlock.stop()


async def test_pending_answer_then_retry_passes_once_after_approval(
    tmp_path: Path, tls: Tls, upstream: Upstream
) -> None:
    running = await start_interlock(tmp_path, tls, upstream, policy_text(pending="1s"))
    try:
        async with running.client() as client:
            first = await client.post(running.url("/deploy/db"), content=b"migrate")
            assert first.status_code == 429
            body = first.json()
            assert body["outcome"] == "pending" and body["hold_id"] and body["deadline"]
            assert int(first.headers["Retry-After"]) >= 1
            async with running.api() as api:
                await api.post(f"/v1/holds/{body['hold_id']}/approve", json={})
            retry = await client.post(running.url("/deploy/db"), content=b"migrate")
            assert retry.status_code == 200 and retry.headers["X-Interlock-Decision"] == "approved"
            third = await client.post(running.url("/deploy/db"), content=b"migrate")
            assert third.status_code == 429  # the approval was used up: a new hold
        assert upstream.paths().count("/deploy/db") == 1
    finally:
        await running.interlock.stop()


async def test_identical_requests_join_one_hold_and_the_upstream_sees_it_once(
    gate: Running,
) -> None:
    async with gate.client() as a, gate.client() as b:
        first = asyncio.create_task(a.post(gate.url("/deploy/same"), content=b"v1"))
        (hold,) = await wait_for_hold(gate)
        second = asyncio.create_task(b.post(gate.url("/deploy/same"), content=b"v1"))
        await asyncio.sleep(0.3)
        assert len(await wait_for_hold(gate)) == 1
        async with gate.api() as api:
            await api.post(f"/v1/holds/{hold['id']}/approve", json={})
        responses = await asyncio.gather(first, second)
    assert [r.status_code for r in responses] == [200, 200]
    assert responses[0].json() == responses[1].json()
    assert gate.upstream.paths().count("/deploy/same") == 1


async def test_upstream_finds_the_decision_row_already_committed(gate: Running) -> None:
    db_path = gate.interlock.data.db

    def look(method: str, path: str) -> int:
        db = sqlite3.connect(db_path)
        try:
            return db.execute(
                "SELECT count(*) FROM audit WHERE kind='request' AND path=? AND outcome='allowed'",
                (path.partition("?")[0],),
            ).fetchone()[0]
        finally:
            db.close()

    gate.upstream.on_request = look
    async with gate.client() as client:
        for i in range(5):
            assert (await client.get(gate.url(f"/committed/{i}"))).status_code == 200
    assert [seen.observed for seen in gate.upstream.requests] == [1] * 5


async def test_writer_stalled_means_the_upstream_sees_nothing(
    tmp_path: Path, tls: Tls, upstream: Upstream
) -> None:
    running = await start_interlock(tmp_path, tls, upstream, policy_text())
    try:
        running.interlock.audit._commit_timeout = 0.5
        blocker = sqlite3.connect(running.interlock.data.db, isolation_level=None, timeout=0)
        blocker.execute("BEGIN EXCLUSIVE")
        try:
            async with running.client() as client:
                response = await client.get(running.url("/stalled"))
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        assert response.status_code == 403
        assert response.json()["outcome"] == "error"
        assert upstream.connections == 0
    finally:
        await running.interlock.stop()


async def test_upstream_cannot_forge_the_gates_header(gate: Running) -> None:
    gate.upstream.extra_headers = {"X-Interlock-Decision": "denied"}
    async with gate.client() as client:
        response = await client.get(gate.url("/forge"))
    assert response.status_code == 200
    assert response.headers.get_list("X-Interlock-Decision") == ["allowed"]


async def test_oversized_body_gets_413_and_a_row(
    tmp_path: Path, tls: Tls, upstream: Upstream
) -> None:
    running = await start_interlock(tmp_path, tls, upstream, policy_text(), max_body=1024)
    try:
        async with running.client() as client:
            response = await client.post(running.url("/upload"), content=b"x" * 4096)
        assert response.status_code == 413
        assert response.json()["error"] == "body_too_large"
        assert upstream.connections == 0
        await running.interlock.audit.flush()
        (row,) = rows(running, kind="request", path="/upload")
        assert row["status"] == 413 and row["outcome"] == "denied"
    finally:
        await running.interlock.stop()


async def test_lockdown_refuses_everything_until_lifted(gate: Running) -> None:
    async with gate.api() as api, gate.client() as client:
        assert (
            await api.post("/v1/lockdown", json={"on": True, "reason": "incident"})
        ).status_code == 200
        with pytest.raises(httpx.ProxyError, match="403"):  # refused at CONNECT, before TLS
            await client.get(gate.url("/anything"))
        plain = await client.get(f"http://127.0.0.1:{gate.upstream.port}/plain")
        assert plain.status_code == 403 and plain.json()["error"] == "lockdown"
        await api.post("/v1/lockdown", json={"on": False})
        assert (await client.get(gate.url("/anything"))).status_code == 200
    assert [r["outcome"] for r in rows(gate, kind="lockdown")] == ["on", "off"]


async def test_broken_reload_keeps_the_old_policy(gate: Running) -> None:
    gate.policy_path.write_text("version: 1\ndefault: allow\nrules:\n  - {name: x, action: nope}\n")
    async with gate.api() as api:
        answer = await api.post("/v1/policy/reload")
    assert answer.status_code == 422
    assert any("action must be one of" in e for e in answer.json()["errors"])
    async with gate.client() as client:
        assert (await client.get(gate.url("/admin/x"))).status_code == 403


async def test_valid_reload_takes_effect(gate: Running) -> None:
    gate.policy_path.write_text("version: 1\ndefault: deny\n")
    async with gate.api() as api:
        assert (await api.post("/v1/policy/reload")).status_code == 200
    async with gate.client() as client:
        with pytest.raises(httpx.ProxyError, match="403"):  # default deny refuses the CONNECT
            await client.get(gate.url("/hello"))
        response = await client.get(f"http://127.0.0.1:{gate.upstream.port}/hello")
    assert response.status_code == 403 and response.json()["rule"] is None


async def test_domain_fronting_is_refused(gate: Running) -> None:
    async with gate.client() as client:
        response = await client.get(gate.url("/front"), headers={"Host": "evil.example"})
    assert response.status_code == 403
    assert "domain fronting" in response.json()["reason"]
    assert gate.upstream.connections == 0


async def test_the_proxy_refuses_to_proxy_its_own_api(gate: Running) -> None:
    port = gate.interlock.api_address[1]  # type: ignore[index]
    async with httpx.AsyncClient(proxy=gate.proxy_url) as client:
        response = await client.get(f"http://127.0.0.1:{port}/v1/holds")
    assert response.status_code == 403
    assert "own control API" in response.json()["reason"]


async def test_mitmproxy_onboarding_host_is_decided_by_the_gate_like_any_other(
    gate: Running,
) -> None:
    # mitmproxy's onboarding addon would answer `mitm.it` itself, before the gate: unrecorded.
    async with httpx.AsyncClient(proxy=gate.proxy_url) as client:
        response = await client.get("http://mitm.it/admin/cert")
    assert response.status_code == 403
    assert response.json()["rule"] == "deny-admin"
    (row,) = rows(gate, kind="request", host="mitm.it")
    assert row["outcome"] == "denied" and row["path"] == "/admin/cert"


async def test_shutdown_expires_pending_holds_and_answers_the_agent(
    tmp_path: Path, tls: Tls, upstream: Upstream
) -> None:
    running = await start_interlock(tmp_path, tls, upstream, policy_text())
    async with running.client() as client:
        held = asyncio.create_task(client.post(running.url("/deploy/late"), content=b"{}"))
        await wait_for_hold(running)
        await running.interlock.stop()
        response = await held
    assert response.status_code == 403
    assert response.json()["outcome"] == "expired" and "shutting down" in response.json()["reason"]
    assert upstream.connections == 0


async def test_an_approval_already_used_by_its_waiter_is_not_replayed(
    tmp_path: Path, tls: Tls, upstream: Upstream
) -> None:
    running = await start_interlock(tmp_path, tls, upstream, policy_text(pending="1s"))
    try:
        async with running.client() as client:
            held = asyncio.create_task(client.post(running.url("/deploy/once"), content=b"pay"))
            (hold,) = await wait_for_hold(running)
            async with running.api() as api:
                await api.post(f"/v1/holds/{hold['id']}/approve", json={})
            assert (await held).status_code == 200
            again = await client.post(running.url("/deploy/once"), content=b"pay")
        assert again.status_code == 429  # a new hold, not a second pass on the same approval
        assert upstream.paths().count("/deploy/once") == 1
    finally:
        await running.interlock.stop()


async def test_large_downloads_stream_through_with_the_gates_header(gate: Running) -> None:
    size = 8 * 1024 * 1024  # over the request body limit's scale: responses are never limited
    async with gate.client() as client, client.stream("GET", gate.url(f"/big/{size}")) as response:
        assert response.headers["X-Interlock-Decision"] == "allowed"
        received = sum([len(chunk) async for chunk in response.aiter_bytes()])
    assert response.status_code == 200 and received == size
