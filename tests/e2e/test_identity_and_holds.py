"""Who is asking, and how holds behave: proxy credentials, address-range agents, clients that give
up, per-agent limits, host-level holds, WebSocket upgrades, quorum approvals and redaction. Real
embedded mitmproxy, a real TLS upstream and real clients, as in `test_gate.py`."""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from proxy.tokens import TokenStore
from tests.e2e.conftest import Running, Tls, policy_text, start_interlock
from tests.e2e.test_fail_closed import Answer, basic, connect, read_answer
from tests.e2e.test_gate import rows, wait_for_hold
from tests.e2e.upstream import Upstream

QUORUM_RULE = """  - name: two-person-release
    action: hold
    reason: Releases need two people.
    approvals: 2
    timeout: 30s
    respond_pending_after: 20s
    match: {method: POST, path: /release/**}
  - name: deny-websocket-admin
    action: deny
    reason: No WebSocket to the admin socket.
    match: {path: /ws/admin}
"""


@pytest.fixture
async def authed(tmp_path: Path, tls: Tls, upstream: Upstream) -> AsyncIterator[Running]:
    running = await start_interlock(tmp_path, tls, upstream, policy_text(), auth="required")
    yield running
    await running.interlock.stop()


@pytest.fixture
async def gate(tmp_path: Path, tls: Tls, upstream: Upstream) -> AsyncIterator[Running]:
    running = await start_interlock(tmp_path, tls, upstream, policy_text(extra=QUORUM_RULE))
    yield running
    await running.interlock.stop()


def agent_client(running: Running, name: str, token: str) -> httpx.AsyncClient:
    """An httpx client whose proxy URL carries an agent's credentials (sent with CONNECT)."""
    context = ssl.create_default_context(cafile=str(running.interlock.ca_cert))
    proxy = running.proxy_url.replace("http://", f"http://{name}:{token}@")
    return httpx.AsyncClient(proxy=proxy, verify=context, timeout=10)


async def tunnel(
    running: Running, headers: dict[str, str] | None = None
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A CONNECT tunnel to the upstream with TLS inside, opened by hand (one known connection)."""
    answer, reader, writer = await connect(running, running.upstream.port, headers)
    assert answer.status == 200, answer
    context = ssl.create_default_context(cafile=str(running.interlock.ca_cert))
    await writer.start_tls(context, server_hostname="127.0.0.1")
    return reader, writer


async def send(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, method: str, path: str, port: int
) -> Answer:
    writer.write(f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
    return await read_answer(reader)


def decision_lines(running: Running) -> list[dict[str, object]]:
    return [json.loads(line) for line in running.log.getvalue().splitlines()]


# -- proxy authentication --------------------------------------------------------------------


async def test_required_auth_challenges_then_binds_the_agent_at_connect(authed: Running) -> None:
    token = authed.interlock.tokens.add_agent("bot")
    for headers in ({}, {"Proxy-Authorization": basic("bot", token + "x")}):
        answer, _, writer = await connect(authed, authed.upstream.port, headers)
        writer.close()
        assert answer.status == 407, headers
        assert answer.headers["proxy-authenticate"] == 'Basic realm="interlock"'
        assert answer.json()["error"] == "proxy_auth_required"
    async with authed.client() as anonymous:
        with pytest.raises(httpx.ProxyError, match="407"):
            await anonymous.get(authed.url("/no-credentials"))
    async with agent_client(authed, "bot", "ilt_wrong") as wrong:
        with pytest.raises(httpx.ProxyError, match="407"):
            await wrong.get(authed.url("/wrong-token"))
    async with agent_client(authed, "bot", token) as client:
        bound = await client.get(authed.url("/inside/1"))  # credentials only on the CONNECT
        # An agent sending the header inside the tunnel: it is checked, then never forwarded.
        explicit = await client.get(
            authed.url("/inside/2"), headers={"Proxy-Authorization": basic("bot", token)}
        )
    assert bound.status_code == explicit.status_code == 200
    assert authed.upstream.paths() == ["/inside/1", "/inside/2"]
    for seen in authed.upstream.requests:
        assert "proxy-authorization" not in {name.lower() for name in seen.headers}
    assert {row["agent"] for row in rows(authed, kind="request", outcome="allowed")} == {"bot"}
    allowed = [line for line in decision_lines(authed) if line["outcome"] == "allowed"]
    assert [line["agent"] for line in allowed] == ["bot", "bot"]


async def test_removing_an_agent_closes_its_open_tunnel_within_a_second(authed: Running) -> None:
    port = authed.upstream.port
    token = authed.interlock.tokens.add_agent("bot")
    reader, writer = await tunnel(authed, {"Proxy-Authorization": basic("bot", token)})
    try:
        assert (await send(reader, writer, "GET", "/before", port)).status == 200
        # As `interlock agents remove` does from another process: only the file changes.
        assert TokenStore(authed.interlock.data.tokens).remove_agent("bot")
        removed = time.monotonic()
        while (answer := await send(reader, writer, "GET", "/after", port)).status == 200:
            assert time.monotonic() - removed < 1.5, "the removed agent still passes"
            await asyncio.sleep(0.05)
    finally:
        writer.close()
    assert answer.status == 407 and answer.json()["error"] == "proxy_auth_required"
    passed = len(authed.upstream.paths())
    assert authed.upstream.paths() == ["/before"] + ["/after"] * (passed - 1)


async def test_address_range_names_an_agent_and_its_rules_apply(
    tmp_path: Path, tls: Tls, upstream: Upstream
) -> None:
    policy = """version: 1
default: allow
agents:
  local-bot:
    addresses: [127.0.0.0/8]
rules:
  - name: local-bot-no-secrets
    agents: [local-bot]
    action: deny
    reason: local-bot may not read secrets.
    match: {path: /secrets/**}
"""
    running = await start_interlock(tmp_path, tls, upstream, policy, auth="optional")
    try:
        token = running.interlock.tokens.add_agent("bot")
        async with running.client() as by_address, agent_client(running, "bot", token) as bot:
            denied = await by_address.get(running.url("/secrets/db"))
            public = await by_address.get(running.url("/public"))
            other_agent = await bot.get(running.url("/secrets/db"))  # the rule is not for bot
        assert denied.status_code == 403 and denied.json()["rule"] == "local-bot-no-secrets"
        assert public.status_code == other_agent.status_code == 200
        agents = [(r["path"], r["agent"], r["outcome"]) for r in rows(running, kind="request")]
        assert agents == [
            ("/secrets/db", "local-bot", "denied"),
            ("/public", "local-bot", "allowed"),
            ("/secrets/db", "bot", "allowed"),
        ]
    finally:
        await running.interlock.stop()


# -- holds -----------------------------------------------------------------------------------


async def test_client_gone_while_held_then_approval_sends_nothing_and_retry_passes_once(
    gate: Running,
) -> None:
    port = gate.upstream.port
    _, writer = await tunnel(gate)
    writer.write(
        f"POST /deploy/gone HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 2\r\n\r\n{{}}".encode()
    )
    (hold,) = await wait_for_hold(gate)
    writer.close()  # the agent gives up
    deadline = time.monotonic() + 3
    async with gate.api() as api:
        while not (await api.get(f"/v1/holds/{hold['id']}")).json()["client_gone"]:
            assert time.monotonic() < deadline, "client_gone never became true"
            await asyncio.sleep(0.02)
        assert (await wait_for_hold(gate))[0]["client_gone"] is True
        assert (await api.post(f"/v1/holds/{hold['id']}/approve", json={})).status_code == 200
        assert gate.upstream.connections == 0
        async with gate.client() as client:
            retry = await client.post(gate.url("/deploy/gone"), content=b"{}")
            assert retry.status_code == 200
            assert retry.headers["X-Interlock-Decision"] == "approved"
            third = asyncio.create_task(client.post(gate.url("/deploy/gone"), content=b"{}"))
            (again,) = await wait_for_hold(gate)  # the approval was used up: a new hold
            assert again["id"] != hold["id"]
            await api.post(f"/v1/holds/{again['id']}/deny", json={"reason": "once was enough"})
            assert (await third).status_code == 403
    assert gate.upstream.paths().count("/deploy/gone") == 1  # the retry, never the original


async def test_at_most_n_pending_holds_per_agent(
    tmp_path: Path, tls: Tls, upstream: Upstream
) -> None:
    running = await start_interlock(tmp_path, tls, upstream, policy_text(), max_pending_per_agent=2)
    try:
        async with running.client() as client, running.api() as api:
            held = [
                asyncio.create_task(client.post(running.url(f"/deploy/{n}"), content=b"{}"))
                for n in (1, 2)
            ]
            holds = await wait_for_hold(running, count=2)
            third = await client.post(running.url("/deploy/3"), content=b"{}")
            assert third.status_code == 403
            body = third.json()
            assert body["error"] == "too_many_holds" and "the limit is 2" in body["reason"]
            for hold in holds:
                await api.post(f"/v1/holds/{hold['id']}/deny", json={"reason": "cleanup"})
            assert [r.status_code for r in await asyncio.gather(*held)] == [403, 403]
        assert upstream.connections == 0
    finally:
        await running.interlock.stop()


async def test_host_level_hold_waits_at_connect_then_lets_the_tunnel_through(
    tmp_path: Path, tls: Tls, upstream: Upstream
) -> None:
    policy = f"""version: 1
default: allow
rules:
  - name: hold-upstream-host
    action: hold
    reason: A person opens this host.
    timeout: 30s
    respond_pending_after: 20s
    match: {{host: 127.0.0.1, port: {upstream.port}}}
"""
    running = await start_interlock(tmp_path, tls, upstream, policy)
    try:
        async with running.client() as client:
            held = asyncio.create_task(client.get(running.url("/behind-host-hold")))
            (hold,) = await wait_for_hold(running)
            assert hold["method"] == "CONNECT" and hold["rule"] == "hold-upstream-host"
            assert not held.done() and upstream.connections == 0
            async with running.api() as api:
                await api.post(f"/v1/holds/{hold['id']}/approve", json={})
            response = await asyncio.wait_for(held, 3)
        assert response.status_code == 200
        assert response.headers["X-Interlock-Decision"] == "approved"
        assert upstream.paths() == ["/behind-host-hold"]
        (inside,) = rows(running, kind="request", method="GET")
        assert inside["outcome"] == "approved" and inside["hold_id"] == hold["id"]
        assert inside["decided_by"] == "person:admin"
        assert [r["outcome"] for r in rows(running, kind="hold")] == ["approved"]  # one hold
    finally:
        await running.interlock.stop()


async def test_websocket_upgrade_is_decided_like_any_request(gate: Running) -> None:
    upgrade = {
        "Connection": "Upgrade",
        "Upgrade": "websocket",
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
    }
    async with gate.client() as client:
        response = await client.get(gate.url("/ws/admin"), headers=upgrade)
        assert gate.upstream.connections == 0
        other = await client.get(gate.url("/ws/chat"), headers=upgrade)  # no rule: allowed
    assert response.status_code == 403
    assert response.json()["rule"] == "deny-websocket-admin"
    assert other.headers["X-Interlock-Decision"] == "allowed"
    assert gate.upstream.paths() == ["/ws/chat"]
    (row,) = rows(gate, kind="request", path="/ws/admin")
    assert row["outcome"] == "denied"
    assert ["upgrade", "websocket"] in [[k.lower(), v] for k, v in json.loads(row["headers"])]


async def test_quorum_needs_two_distinct_operators(gate: Running) -> None:
    bob = gate.interlock.tokens.add_operator("bob")
    async with gate.client() as client, gate.api() as admin:
        held = asyncio.create_task(client.post(gate.url("/release/v2"), content=b"{}"))
        (hold,) = await wait_for_hold(gate)
        assert hold["approvals_needed"] == 2
        first = await admin.post(f"/v1/holds/{hold['id']}/approve", json={})
        assert first.status_code == 202
        assert (first.json()["votes"], first.json()["needed"]) == (1, 2)
        twice = await admin.post(f"/v1/holds/{hold['id']}/approve", json={})
        assert (twice.status_code, twice.json()["error"]) == (422, "already_voted")
        assert not held.done() and gate.upstream.connections == 0
        headers = {"Authorization": f"Bearer {bob}"}
        second = await admin.post(f"/v1/holds/{hold['id']}/approve", json={}, headers=headers)
        assert second.status_code == 200
        response = await held
    assert response.status_code == 200
    assert gate.upstream.paths() == ["/release/v2"]
    (vote,) = rows(gate, kind="vote")
    assert vote["hold_id"] == hold["id"] and vote["decided_by"] == "person:admin"
    (final,) = rows(gate, kind="hold")
    assert final["outcome"] == "approved" and final["decided_by"] == "person:bob"


async def test_secrets_of_a_held_request_are_stored_nowhere(
    tmp_path: Path, tls: Tls, upstream: Upstream
) -> None:
    secrets = [b"SECRET123", b"SECRET456", b"SECRET789", b"SECRET000"]
    headers = {
        "Authorization": "Bearer sk-live-SECRET123",
        "Cookie": "session=SECRET456",
        "X-Api-Key": "SECRET789",
    }
    running = await start_interlock(tmp_path, tls, upstream, policy_text())
    data = running.interlock.data.root

    def leaks() -> list[str]:
        found = (
            ["decision log"] if any(s.decode() in running.log.getvalue() for s in secrets) else []
        )
        for path in data.rglob("*"):
            if path.is_file() and any(s in path.read_bytes() for s in secrets):
                found.append(str(path.relative_to(data)))
        return found

    try:
        async with running.client() as client, running.api() as api:
            held = asyncio.create_task(
                client.post(
                    running.url("/deploy/keys"), json={"password": "SECRET000"}, headers=headers
                )
            )
            (hold,) = await wait_for_hold(running)
            shown = (await api.get(f"/v1/holds/{hold['id']}")).content
            await api.post(f"/v1/holds/{hold['id']}/approve", json={})
            response = await held
        assert response.status_code == 200
        assert not any(s in shown for s in secrets), shown
        (seen,) = upstream.requests  # the destination does get them: only the gate forgets
        assert seen.headers["X-Api-Key"] == "SECRET789" and b"SECRET000" in seen.body
        await running.interlock.audit.flush()
        assert (data / "audit.db-wal").stat().st_size > 0  # the rows are in the WAL for now
        assert leaks() == []
    finally:
        await running.interlock.stop()  # checkpoints the WAL into the database file
    assert leaks() == []
