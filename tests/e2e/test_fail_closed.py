"""Fail closed, end to end: a fault in any dependency of the gate refuses the request, and the
destination sees no request and no connection. Faults are injected in the dependencies (audit
store, policy engine, hold queue, token store, the client's TLS), never in the gate's wrappers.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import socket
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, NoReturn

import httpx
import pytest

from policies.engine import Policy
from policies.model import HostDecision
from policies.request import RequestView
from proxy.audit import AuditError
from tests.e2e.conftest import Running, Tls, policy_text, start_interlock
from tests.e2e.test_gate import rows, wait_for_hold
from tests.e2e.upstream import Upstream

# -- raw HTTP over asyncio streams: to read a refused CONNECT, or to drive TLS by hand ---------


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


async def read_answer(reader: asyncio.StreamReader) -> Answer:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    body = await asyncio.wait_for(reader.readexactly(length), 5) if length else b""
    return Answer(int(status_line.split()[1]), headers, body)


async def connect(
    running: Running, port: int, headers: dict[str, str] | None = None
) -> tuple[Answer, asyncio.StreamReader, asyncio.StreamWriter]:
    """Open a CONNECT tunnel by hand to 127.0.0.1:port; returns the proxy's answer and streams."""
    assert running.interlock.proxy_address is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", running.interlock.proxy_address[1])
    extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
    target = f"127.0.0.1:{port}"
    writer.write(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n{extra}\r\n".encode())
    await writer.drain()
    return await read_answer(reader), reader, writer


def basic(name: str, token: str) -> str:
    return "Basic " + base64.b64encode(f"{name}:{token}".encode()).decode()


def assert_gate_error(answer: Answer | httpx.Response) -> dict[str, Any]:
    """The gate's own fail-closed refusal: 403, JSON, outcome `error`, and says it was not sent."""
    status = answer.status_code if isinstance(answer, httpx.Response) else answer.status
    assert status == 403
    body: dict[str, Any] = answer.json()
    assert body["outcome"] == "error" and body["error"] == "gate_error"
    assert body["decided_by"] == "system" and "NOT sent" in body["message"]
    return body


# -- a plain TCP listener that counts connections (the TLS upstream cannot see plain HTTP) ----


@dataclass
class Sink:
    port: int
    connections: int = 0


@pytest.fixture
async def sink() -> AsyncIterator[Sink]:
    found = Sink(0)

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        found.connections += 1
        writer.close()

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    found.port = server.sockets[0].getsockname()[1]
    yield found
    server.close()
    await server.wait_closed()


# -- faults in the audit store ---------------------------------------------------------------


async def close_store(running: Running) -> None:
    await running.interlock.audit.close()


async def writer_read_only(running: Running) -> None:
    await running.interlock.audit._db.execute("PRAGMA query_only=ON")


async def kill_writer(running: Running) -> None:
    task = running.interlock.audit._task
    task.cancel()
    await asyncio.wait({task})


@pytest.fixture
async def gate(tmp_path: Path, tls: Tls, upstream: Upstream) -> AsyncIterator[Running]:
    """The usual gate; stopping it reports rows the broken audit store lost, which is expected."""
    running = await start_interlock(tmp_path, tls, upstream, policy_text())
    yield running
    with contextlib.suppress(AuditError):
        await running.interlock.stop()


@pytest.mark.parametrize("fault", [close_store, writer_read_only, kill_writer])
async def test_audit_fault_refuses_and_nothing_reaches_the_destination(
    gate: Running, sink: Sink, fault: Callable[[Running], Awaitable[None]]
) -> None:
    await fault(gate)
    async with gate.client() as client:
        response = await client.get(gate.url("/after-fault"))
        plain = await client.get(f"http://127.0.0.1:{sink.port}/after-fault")
    body = assert_gate_error(response)
    assert "audit" in body["reason"]
    assert response.headers["X-Interlock-Decision"] == "error"
    assert_gate_error(plain)
    assert gate.upstream.connections == 0 and sink.connections == 0
    lines = [json.loads(line) for line in gate.log.getvalue().splitlines()]
    assert [line["outcome"] for line in lines] == ["error", "error"]
    async with gate.api() as api:
        assert (await api.get("/healthz")).status_code == 503


# -- faults in the policy engine -------------------------------------------------------------


class CrashingPolicy(Policy):
    def decide(self, request: RequestView) -> NoReturn:
        raise RuntimeError("policy engine crashed in decide")


class CrashingHostPolicy(Policy):
    def decide_host(self, host: str, port: int, agent: str = "anonymous") -> HostDecision:
        raise RuntimeError("policy engine crashed in decide_host")


def swap_policy(running: Running, kind: type[Policy]) -> None:
    """Replace the policy in force with a copy of it whose engine crashes."""
    current = running.interlock.policy.policy
    running.interlock.policy.policy = kind(
        **{f.name: getattr(current, f.name) for f in fields(current)}
    )


async def test_policy_crash_in_decide_refuses_the_request(gate: Running, sink: Sink) -> None:
    swap_policy(gate, CrashingPolicy)
    async with gate.client() as client:
        response = await client.get(gate.url("/anything"))
        plain = await client.get(f"http://127.0.0.1:{sink.port}/anything")
    assert "policy engine crashed in decide" in assert_gate_error(response)["reason"]
    assert_gate_error(plain)
    assert gate.upstream.connections == 0 and sink.connections == 0


async def test_policy_crash_in_decide_host_refuses_the_connect(gate: Running) -> None:
    swap_policy(gate, CrashingHostPolicy)
    answer, _, writer = await connect(gate, gate.upstream.port)
    writer.close()
    assert "crashed in decide_host" in assert_gate_error(answer)["reason"]
    async with gate.client() as client:
        with pytest.raises(httpx.ProxyError, match="403"):
            await client.get(gate.url("/anything"))
    assert gate.upstream.connections == 0
    lines = [json.loads(line) for line in gate.log.getvalue().splitlines()]
    assert [(line["method"], line["outcome"]) for line in lines] == [("CONNECT", "error")] * 2


# -- faults in the token store, the hold queue and the client's TLS --------------------------


async def test_token_store_crash_refuses_connect_and_plain_requests(
    gate: Running, sink: Sink, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = gate.interlock.tokens.add_agent("bot")

    def crash(name: str, token: str) -> bool:
        raise OSError("token store unreadable")

    monkeypatch.setattr(gate.interlock.tokens, "verify_agent", crash)
    answer, _, writer = await connect(
        gate, gate.upstream.port, {"Proxy-Authorization": basic("bot", token)}
    )
    writer.close()
    assert "token store unreadable" in assert_gate_error(answer)["reason"]
    proxy = gate.proxy_url.replace("http://", f"http://bot:{token}@")
    async with httpx.AsyncClient(proxy=proxy) as client:
        plain = await client.get(f"http://127.0.0.1:{sink.port}/with-credentials")
    assert "token store unreadable" in assert_gate_error(plain)["reason"]
    assert gate.upstream.connections == 0 and sink.connections == 0


async def test_malformed_sni_refuses_every_request_in_the_tunnel(gate: Running) -> None:
    # mitmproxy accepts a 254-character server name; the gate's host normalization refuses it.
    sni = ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 62])
    answer, reader, writer = await connect(gate, gate.upstream.port)
    assert answer.status == 200
    context = ssl.create_default_context(cafile=str(gate.interlock.ca_cert))
    context.check_hostname = False
    await writer.start_tls(context, server_hostname=sni)
    request = f"GET /inside HTTP/1.1\r\nHost: 127.0.0.1:{gate.upstream.port}\r\n\r\n"
    for _ in range(2):  # every request on the connection, not only the first
        writer.write(request.encode())
        body = assert_gate_error(await read_answer(reader))
        assert "longer than 253 characters" in body["reason"]
    writer.close()
    assert gate.upstream.connections == 0
    await gate.interlock.audit.flush()
    assert [r["outcome"] for r in rows(gate, kind="request", path="/inside")] == ["error"] * 2


async def test_hold_queue_crash_refuses_a_request_to_be_held(
    gate: Running, monkeypatch: pytest.MonkeyPatch
) -> None:
    def crash(*args: object) -> NoReturn:
        raise RuntimeError("hold queue broken")

    monkeypatch.setattr(gate.interlock.holds, "open", crash)
    async with gate.client() as client:
        response = await client.post(gate.url("/deploy/web"), content=b"{}")
    assert "hold queue broken" in assert_gate_error(response)["reason"]
    assert gate.upstream.connections == 0


async def test_unrecorded_approval_refuses_the_held_request(gate: Running) -> None:
    async with gate.client() as client:
        held = asyncio.create_task(client.post(gate.url("/deploy/web"), content=b"{}"))
        (hold,) = await wait_for_hold(gate)
        deadline = time.monotonic() + 3
        while not rows(gate, kind="request", hold_id=hold["id"]):  # the hold's row is committed
            assert time.monotonic() < deadline
            await asyncio.sleep(0.01)
        await writer_read_only(gate)  # the approval's audit row cannot be written
        async with gate.api() as api:
            answer = await api.post(f"/v1/holds/{hold['id']}/approve", json={})
        response = await held
    assert answer.status_code == 503 and answer.json()["error"] == "not_recorded"
    body = assert_gate_error(response)
    assert body["hold_id"] == hold["id"] and "could not be recorded" in body["reason"]
    assert gate.upstream.connections == 0


# -- a network fault after an approval is not the gate's refusal ------------------------------


async def test_network_fault_after_allow_or_approval_is_a_502_and_a_completion_row(
    gate: Running,
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    async with gate.client() as client, gate.api() as api:
        allowed = await client.get(f"https://127.0.0.1:{closed}/unreachable")
        held = asyncio.create_task(
            client.post(f"https://127.0.0.1:{closed}/deploy/x", content=b"1")
        )
        (hold,) = await wait_for_hold(gate)
        await api.post(f"/v1/holds/{hold['id']}/approve", json={})
        approved = await held
    for response in (allowed, approved):  # mitmproxy's own page, not the gate's refusal
        assert response.status_code == 502
        assert response.headers["content-type"].startswith("text/html")
        assert "X-Interlock-Decision" not in response.headers and "gate_error" not in response.text
    await gate.interlock.audit.flush()
    done = {r["outcome"]: r for r in rows(gate, kind="completion")}
    assert done.keys() == {"allowed", "approved"} and done["approved"]["hold_id"] == hold["id"]
    for row in done.values():
        assert row["status"] is None and str(closed) in row["reason"]  # the network error
