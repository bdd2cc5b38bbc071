"""The control API over real sockets: uvicorn in the test's loop, TLS, shutdown, and ApiClient."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import ssl
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from proxy.apiserver import ApiServer, bind_socket
from proxy.client import ApiClient, ApiError, ApiUnreachable, ServerEvent
from proxy.outcomes import Outcome
from tests.proxy.test_api import Core, open_hold


@pytest.fixture
def core(tmp_path: Path) -> Core:
    return Core(tmp_path)


@pytest.fixture
async def server(core: Core) -> AsyncIterator[ApiServer]:
    server = ApiServer(core.app())
    await server.start("127.0.0.1", 0)
    yield server
    await server.stop()


async def test_start_serves_healthz_and_stop_closes_the_port(core: Core) -> None:
    server = ApiServer(core.app())
    host, port = await server.start("127.0.0.1", 0)
    assert host == "127.0.0.1" and port > 0 and server.url == f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient() as client:
        response = await client.get(f"{server.url}/healthz")
        assert response.json() == {"ok": True, "audit": True, "lockdown": False}
        await server.stop()
        with pytest.raises(httpx.ConnectError):
            await client.get(f"http://127.0.0.1:{port}/healthz")


async def test_stop_returns_promptly_with_an_open_event_stream(
    core: Core, server: ApiServer
) -> None:
    assert server.url is not None
    headers = {"Authorization": f"Bearer {core.admin}"}
    async with (
        httpx.AsyncClient(timeout=5) as client,
        client.stream("GET", f"{server.url}/v1/events", headers=headers) as stream,
    ):
        lines = stream.aiter_lines()
        assert await anext(lines) == ": connected"
        started = time.monotonic()
        await server.stop()
        assert time.monotonic() - started < 2
        rest = [line async for line in lines]  # the server ended the stream cleanly
        assert rest == [""]


async def test_a_taken_port_is_a_clear_oserror(core: Core, server: ApiServer) -> None:
    assert server.url is not None
    port = int(server.url.rsplit(":", 1)[1])
    with pytest.raises(OSError, match=rf"control API: cannot listen on 127\.0\.0\.1:{port}"):
        await ApiServer(core.app()).start("127.0.0.1", port)


async def test_non_loopback_needs_tls_or_an_explicit_opt_in(core: Core, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="without TLS"):
        await ApiServer(core.app()).start("0.0.0.0", 0)
    with pytest.raises(ValueError, match="both a certificate and a key"):
        await ApiServer(core.app()).start("0.0.0.0", 0, ssl_certfile=tmp_path / "c.pem")
    plain = ApiServer(core.app())
    host, _ = await plain.start("0.0.0.0", 0, allow_plain_http=True)
    assert host == "0.0.0.0"
    await plain.stop()


def write_self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "interlock-test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "api-cert.pem", directory / "api-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


async def test_tls_serves_https(core: Core, tmp_path: Path) -> None:
    cert, key = write_self_signed(tmp_path)
    server = ApiServer()
    _, port = await server.start("127.0.0.1", 0, app=core.app(), ssl_certfile=cert, ssl_keyfile=key)
    assert server.url == f"https://127.0.0.1:{port}"
    trust = ssl.create_default_context(cafile=str(cert))
    try:
        client = ApiClient(server.url, core.admin, verify=trust)
        async with client:
            assert (await client.health())["ok"] is True
        async with ApiClient(server.url, core.admin) as untrusting:
            with pytest.raises(ApiUnreachable, match="CERTIFICATE_VERIFY_FAILED"):
                await untrusting.health()
    finally:
        await server.stop()


def test_bind_socket_names_an_unresolvable_host() -> None:
    with pytest.raises(OSError, match=r"cannot resolve 'no-such-host\.invalid'"):
        bind_socket("no-such-host.invalid", 0)


# -- ApiClient against the real server ----------------------------------------------------------


async def subscribed(core: Core) -> None:
    async with asyncio.timeout(2):
        while not core.events._subscribers:
            await asyncio.sleep(0.01)


async def test_client_decides_and_follows_events(core: Core, server: ApiServer) -> None:
    assert server.url is not None
    seen: asyncio.Queue[ServerEvent] = asyncio.Queue()

    async def follow() -> None:
        async with ApiClient(server.url or "", core.second, channel="tui") as watcher:
            async for event in watcher.events():
                await seen.put(event)

    follower = asyncio.ensure_future(follow())
    async with ApiClient(server.url, core.admin) as client:
        await subscribed(core)
        hold = open_hold(core.holds)
        created = await asyncio.wait_for(seen.get(), 2)
        base = server.app.state.event_id_base if server.app else 0
        assert (created.id, created.event) == (str(base + 1), "hold.created")
        assert created.data["id"] == hold.id
        assert [h["id"] for h in await client.holds()] == [hold.id]
        assert (await client.hold(hold.id))["state"] == "pending"
        result = await client.approve(hold.id, "ok")
        assert result.final and result.hold["channel"] == "cli"
        assert hold.done.result() is Outcome.APPROVED
        decided = await asyncio.wait_for(seen.get(), 2)
        assert decided.event == "hold.decided" and decided.data["state"] == "approved"
        with pytest.raises(ApiError) as refused:
            await client.deny(hold.id, "too late")
        assert refused.value.status == 409 and refused.value.body["decided_by"] == "person:alice"
        state = await client.set_lockdown(True, "drill")
        assert state["on"] is True and (await client.lockdown())["reason"] == "drill"
        page = await client.requests(since="1h", limit=5)
        assert page.next is None and page.requests == []
        assert (await client.reload_policy())["ok"] is True
    await server.stop()
    await asyncio.wait_for(follower, 2)  # the stream ends with the server


async def test_client_quorum_vote_and_resume(core: Core, server: ApiServer) -> None:
    assert server.url is not None
    hold = open_hold(core.holds, approvals=2)
    async with ApiClient(server.url, core.admin) as client:
        vote = await client.approve(hold.id)
        assert not vote.final and (vote.votes, vote.needed) == (1, 2)
        core.events.publish("lockdown", {"on": False})
        app_shutdown = server.app.state.shutdown if server.app else None
        assert app_shutdown is not None
        app_shutdown.set()  # end streams so the replay below terminates
        base = server.app.state.event_id_base if server.app else 0
        replay = [e async for e in client.events(last_event_id=str(base + 1))]
        assert [(e.id, e.event) for e in replay] == [
            (str(base + 2), "hold.vote"), (str(base + 3), "lockdown")]  # fmt: skip


async def test_client_errors_name_the_problem(core: Core, server: ApiServer) -> None:
    assert server.url is not None
    async with ApiClient(server.url, "ilo_wrong") as stranger:
        with pytest.raises(ApiError) as denied:
            await stranger.holds()
        assert denied.value.status == 401 and "not valid" in denied.value.message
    async with ApiClient(server.url, core.admin) as client:
        with pytest.raises(ApiError, match="no hold 'h_x'") as missing:
            await client.hold("h_x")
        assert missing.value.status == 404
    closed = bind_socket("127.0.0.1", 0)  # bound but not listening: connections are refused
    port = closed.getsockname()[1]
    try:
        async with ApiClient(f"http://127.0.0.1:{port}", core.admin) as nowhere:
            with pytest.raises(ApiUnreachable, match=rf"at http://127\.0\.0\.1:{port}"):
                await nowhere.holds()
            with pytest.raises(ApiUnreachable):
                async for _ in nowhere.events():
                    pass
    finally:
        closed.close()
