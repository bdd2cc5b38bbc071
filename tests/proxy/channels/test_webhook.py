"""The webhook channel against a real HTTP receiver on 127.0.0.1: payloads, signatures, failures."""

from __future__ import annotations

import asyncio
import email.utils
import hashlib
import hmac
import json
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from policies.model import Channel, HoldSettings, SecretRef
from proxy.apiserver import ApiServer
from proxy.channels.base import (
    HOLD_CREATED,
    HOLD_DECIDED,
    HOLD_EXPIRED,
    HOLD_VOTE,
    ChannelError,
    Links,
    Notice,
)
from proxy.channels.webhook import WebhookNotifier
from proxy.holds import HeldRequest, Hold, Vote
from proxy.outcomes import Outcome

SECRET = "whsec-test-0f3a9c2e71b84d56"
ENV = {"HOOK_SECRET": SECRET}
NOW = 1_767_225_600.0
LINKS = Links(
    review="https://interlock.example/l/tok",
    approve="https://interlock.example/l/tok?action=approve",
    deny="https://interlock.example/l/tok?action=deny",
)
# What a receiver is promised, written out here rather than imported from the module under test.
SUMMARY = {
    "id", "request_id", "agent", "method", "url", "host", "rule", "reason", "severity",
    "created_at", "deadline", "approvals_needed", "votes", "state", "decided_by", "channel",
    "decision_reason", "decided_at", "body_preview", "client_gone",
}  # fmt: skip


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    raw_headers: list[tuple[bytes, bytes]]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """A real HTTP server that records each delivery and gives the answers it is told to."""

    url: str = ""
    received: list[Received] = field(default_factory=list)
    answers: list[Response] = field(default_factory=list)

    async def hook(self, request: Request) -> Response:
        body = await request.body()
        self.received.append(
            Received(request.url.path, dict(request.headers), list(request.headers.raw), body)
        )
        return self.answers.pop(0) if self.answers else Response(status_code=204)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    receiver = Receiver()
    app = Starlette(routes=[Route("/{path:path}", receiver.hook, methods=["POST"])])
    server = ApiServer(app)
    await server.start("127.0.0.1", 0)
    receiver.url = f"{server.url}/hooks/p4th-t0ken"
    yield receiver
    await server.stop()


def webhook_channel(
    url: str, *, secret: object = None, headers: dict[str, str] | None = None, name: str = "ops"
) -> Channel:
    settings: dict[str, object] = {"url": url, "secret": secret or SecretRef(env="HOOK_SECRET")}
    if headers is not None:
        settings["headers"] = headers
    return Channel(name, "webhook", settings)


@asynccontextmanager
async def started(channel: Channel, **options: Any) -> AsyncIterator[WebhookNotifier]:
    """A started notifier, closed on the way out."""
    options.setdefault("environ", ENV)
    notifier = WebhookNotifier(channel, **options)
    await notifier.start()
    try:
        yield notifier
    finally:
        await notifier.close()


def make_hold(*, approvals: int = 1) -> Hold:
    request = HeldRequest(
        request_id="r_5be1c2a000000017",
        agent="ci-bot",
        client="10.0.3.7:51234",
        method="POST",
        scheme="https",
        host="api.stripe.com",
        port=443,
        path="/v1/charges",
        query="expand=customer",
        headers=(("Authorization", "Bearer [REDACTED]"), ("X-Trace", "trace-77")),
        body_size=41,
        body_sha256="ab" * 32,
        body_preview="amount=25000&source=[REDACTED]",
    )
    return Hold(
        id="h_3f9a1c0e5b7d",
        request=request,
        key="k",
        rule="stripe-large-charge",
        reason="Charges above 100 USD need a person.",
        severity="high",
        settings=HoldSettings(timeout=900, approvals=approvals),
        created_at=NOW,
        deadline=NOW + 900,
    )


def assert_signed(received: Received, secret: str = SECRET) -> None:
    """The signature, checked with hmac directly rather than with the notifier's own code."""
    timestamp = received.headers["x-interlock-timestamp"]
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + received.body, hashlib.sha256)
    assert received.headers["x-interlock-signature"] == "v1=" + mac.hexdigest()


# -- what is sent ---------------------------------------------------------------------------------


@pytest.mark.parametrize("event", [HOLD_CREATED, HOLD_VOTE, HOLD_DECIDED, HOLD_EXPIRED])
async def test_each_event_is_one_signed_post_of_the_hold_summary(
    receiver: Receiver, event: str
) -> None:
    hold = make_hold()
    async with started(webhook_channel(receiver.url), clock=lambda: NOW + 12.7) as notifier:
        assert notifier.name == "ops" and notifier.wants_links
        await notifier.send(Notice(event, hold.to_json()))
    (got,) = receiver.received
    assert got.path == "/hooks/p4th-t0ken"
    headers = got.headers
    assert headers["content-type"] == "application/json"
    assert headers["user-agent"].startswith("interlock/")
    assert headers["x-interlock-event"] == event
    assert headers["x-interlock-timestamp"] == str(int(NOW + 12))
    assert_signed(got)
    data = got.json()
    assert set(data) == {"type", "id", "sent_at", "escalated", "hold", "links"}
    assert data["type"] == event and data["sent_at"] == int(NOW + 12)
    assert data["id"] == headers["x-interlock-delivery"] and data["id"].startswith("dlv_")
    assert data["escalated"] is False and data["links"] is None
    assert set(data["hold"]) == SUMMARY
    assert data["hold"] == {key: value for key, value in hold.to_json().items() if key in SUMMARY}
    assert data["hold"]["url"] == "https://api.stripe.com/v1/charges?expand=customer"
    # A summary: even redacted, the request's headers (and the agent's address) stay home.
    assert b"Authorization" not in got.body and b"trace-77" not in got.body
    assert b"10.0.3.7" not in got.body


async def test_links_go_with_the_notice_that_has_them(receiver: Receiver) -> None:
    hold = make_hold()
    async with started(webhook_channel(receiver.url)) as notifier:
        await notifier.send(Notice(HOLD_CREATED, hold.to_json(), LINKS, escalated=True))
        await notifier.send(Notice(HOLD_CREATED, hold.to_json()))
    with_links, without = (r.json() for r in receiver.received)
    assert with_links["links"] == {
        "review": LINKS.review,
        "approve": LINKS.approve,
        "deny": LINKS.deny,
    }
    assert with_links["escalated"] is True
    assert without["links"] is None and without["escalated"] is False


async def test_votes_and_the_decision_reach_the_receiver(receiver: Receiver) -> None:
    hold = make_hold(approvals=2)
    async with started(webhook_channel(receiver.url)) as notifier:
        await notifier.send(Notice(HOLD_CREATED, hold.to_json()))
        hold.votes.append(Vote("person:alice", "tui", NOW + 30, None))
        await notifier.send(Notice(HOLD_VOTE, hold.to_json()))
        hold.votes.append(Vote("person:link:ops", "link:ops", NOW + 60, None))
        hold.state, hold.decided_by, hold.channel = Outcome.APPROVED, "person:link:ops", "link:ops"
        hold.decided_at, hold.decision_reason = NOW + 60, "looks right"
        await notifier.send(Notice(HOLD_DECIDED, hold.to_json()))
    created, vote, decided = (r.json() for r in receiver.received)
    assert created["hold"]["votes"] == [] and created["hold"]["approvals_needed"] == 2
    assert vote["hold"]["state"] == "pending"
    assert vote["hold"]["votes"] == [{"by": "person:alice", "channel": "tui", "at": NOW + 30}]
    assert decided["hold"]["state"] == "approved"
    assert decided["hold"]["decided_by"] == "person:link:ops"
    assert decided["hold"]["decision_reason"] == "looks right"
    assert len({created["id"], vote["id"], decided["id"]}) == 3


async def test_a_retry_keeps_its_delivery_id_and_is_signed_afresh(receiver: Receiver) -> None:
    times = iter([NOW, NOW + 2, NOW + 4])
    receiver.answers.append(Response(status_code=503))
    hold = make_hold()
    notice = Notice(HOLD_CREATED, hold.to_json(), LINKS)
    async with started(webhook_channel(receiver.url), clock=lambda: next(times)) as notifier:
        with pytest.raises(ChannelError):
            await notifier.send(notice)
        await notifier.send(notice)
        await notifier.send(Notice(HOLD_CREATED, hold.to_json(), LINKS, escalated=True))
    first, retry, escalated = receiver.received
    assert first.headers["x-interlock-delivery"] == retry.headers["x-interlock-delivery"]
    assert first.json()["id"] == retry.json()["id"]
    assert first.headers["x-interlock-timestamp"] != retry.headers["x-interlock-timestamp"]
    assert first.headers["x-interlock-signature"] != retry.headers["x-interlock-signature"]
    assert_signed(first)
    assert_signed(retry)
    assert escalated.json()["id"] != first.json()["id"]


# -- how failures are reported ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "retryable"),
    [(500, True), (502, True), (503, True), (408, True), (429, True),
     (400, False), (401, False), (403, False), (404, False), (410, False), (422, False)],
)  # fmt: skip
async def test_status_codes_map_to_retryable_or_final(
    receiver: Receiver, status: int, retryable: bool
) -> None:
    receiver.answers.append(Response("nope", status_code=status))
    async with started(webhook_channel(receiver.url)) as notifier:
        with pytest.raises(ChannelError) as caught:
            await notifier.send(Notice(HOLD_CREATED, make_hold().to_json()))
    assert caught.value.retryable is retryable
    assert caught.value.retry_after is None
    message = str(caught.value)
    assert message.startswith(f"{receiver.url.split('/hooks')[0]} answered {status} ")
    assert message.endswith(": nope")
    assert "p4th-t0ken" not in message  # a webhook URL's path is often a secret itself


@pytest.mark.parametrize(
    ("status", "header", "expected"),
    [
        (503, "7", 7.0),
        (429, "2.5", 2.5),
        (429, "0", 0.0),
        (429, email.utils.formatdate(NOW + 30, usegmt=True), 30.0),
        (503, email.utils.formatdate(NOW - 30, usegmt=True), 0.0),
        (429, "86400", 300.0),  # capped: the hold would be long gone
        (503, "soon", None),
    ],
)
async def test_retry_after_in_seconds_or_as_a_date(
    receiver: Receiver, status: int, header: str, expected: float | None
) -> None:
    receiver.answers.append(Response(status_code=status, headers={"Retry-After": header}))
    async with started(webhook_channel(receiver.url), clock=lambda: NOW) as notifier:
        with pytest.raises(ChannelError) as caught:
            await notifier.send(Notice(HOLD_CREATED, make_hold().to_json()))
    assert caught.value.retryable is True
    assert caught.value.retry_after == expected


async def test_a_refusal_is_quoted_briefly_and_without_secrets(receiver: Receiver) -> None:
    github_token = "ghp_" + "a1B2c3D4e5" * 4
    answer = f"bad request: signed with {SECRET}, token {github_token} at {receiver.url} "
    answer += "x" * 5000
    receiver.answers.append(Response(answer, status_code=400))
    async with started(webhook_channel(receiver.url)) as notifier:
        with pytest.raises(ChannelError) as caught:
            await notifier.send(Notice(HOLD_CREATED, make_hold().to_json()))
    message = str(caught.value)
    assert caught.value.retryable is False
    assert " answered 400 Bad Request: bad request: signed with [REDACTED]" in message
    assert SECRET not in message and github_token not in message
    assert "p4th-t0ken" not in message
    assert message.endswith("…") and len(message) < 300


async def test_redirects_are_not_followed(receiver: Receiver) -> None:
    receiver.answers.append(
        Response(status_code=302, headers={"Location": f"{receiver.url}/elsewhere"})
    )
    async with started(webhook_channel(receiver.url)) as notifier:
        with pytest.raises(ChannelError, match=r"302 Found .redirects are not followed") as caught:
            await notifier.send(Notice(HOLD_CREATED, make_hold().to_json()))
    assert caught.value.retryable is False
    assert len(receiver.received) == 1


async def test_a_refused_connection_is_retryable() -> None:
    with socket.socket() as sock:  # bound, never listening: connecting is refused
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        async with started(webhook_channel(f"http://127.0.0.1:{port}/hook")) as notifier:
            with pytest.raises(ChannelError, match=rf"cannot reach http://127\.0\.0\.1:{port}: "):
                await notifier.send(Notice(HOLD_CREATED, make_hold().to_json()))


@asynccontextmanager
async def silent_server() -> AsyncIterator[str]:
    """A server that accepts connections and reads requests but never answers them."""
    handlers: set[asyncio.Task[Any]] = set()

    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if (task := asyncio.current_task()) is not None:
            handlers.add(task)
        try:
            while await reader.read(65536):
                pass
        finally:
            writer.close()
            await writer.wait_closed()

    server = await asyncio.start_server(swallow, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/hook"
    finally:
        server.close()
        for task in handlers:
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)
        await server.wait_closed()


async def test_a_receiver_that_never_answers_times_out_retryably() -> None:
    async with silent_server() as url:
        client = httpx.AsyncClient(timeout=0.2, trust_env=False)
        try:
            async with started(webhook_channel(url), client=client, timeout=0.2) as notifier:
                with pytest.raises(ChannelError, match=r"did not answer within 0\.2 s") as caught:
                    await notifier.send(Notice(HOLD_CREATED, make_hold().to_json()))
            assert caught.value.retryable is True
            assert not client.is_closed  # a client passed in belongs to the caller
        finally:
            await client.aclose()


async def test_the_environments_proxy_settings_are_ignored(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as dead:
        dead.bind(("127.0.0.1", 0))
        nowhere = f"http://127.0.0.1:{dead.getsockname()[1]}"
        for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "all_proxy"):
            monkeypatch.setenv(name, nowhere)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        async with started(webhook_channel(receiver.url)) as notifier:
            await notifier.send(Notice(HOLD_CREATED, make_hold().to_json()))
    assert len(receiver.received) == 1


# -- settings ---------------------------------------------------------------------------------


async def test_extra_headers_are_sent_beside_the_signature(receiver: Receiver) -> None:
    extra = {"X-Tenant": "acme", "Authorization": "Bearer receiver-key", "User-Agent": "ours/1"}
    async with started(webhook_channel(receiver.url, headers=extra)) as notifier:
        await notifier.send(Notice(HOLD_CREATED, make_hold().to_json()))
    (got,) = receiver.received
    assert got.headers["x-tenant"] == "acme"
    assert got.headers["authorization"] == "Bearer receiver-key"
    assert got.headers["user-agent"] == "ours/1"
    names = [name.lower() for name, _ in got.raw_headers]
    assert len(names) == len(set(names))
    assert_signed(got)


@pytest.mark.parametrize(
    "name",
    ["X-Interlock-Signature", "x-interlock-timestamp", "X-Interlock-Delivery", "X-Interlock-Event",
     "X-Interlock-Other", "Content-Type", "content-length", "Host", "Transfer-Encoding"],
)  # fmt: skip
async def test_extra_headers_cannot_override_interlocks_own(name: str) -> None:
    channel = webhook_channel("https://hooks.example/x", headers={name: "v1=forged"})
    notifier = WebhookNotifier(channel, environ=ENV)
    with pytest.raises(ChannelError, match=f"header {name} is set by Interlock") as caught:
        await notifier.start()
    assert caught.value.retryable is False
    await notifier.close()


@pytest.mark.parametrize(
    ("headers", "message"),
    [({"X-Bad": "a\r\nX-Injected: 1"}, "header X-Bad has an invalid value"),
     ({"Bad Name": "x"}, "header name 'Bad Name' is not valid")],
)  # fmt: skip
async def test_malformed_extra_headers_are_refused_at_start(
    headers: dict[str, str], message: str
) -> None:
    notifier = WebhookNotifier(
        webhook_channel("https://hooks.example/x", headers=headers), environ=ENV
    )
    with pytest.raises(ChannelError, match=message) as caught:
        await notifier.start()
    assert caught.value.retryable is False


async def test_the_secret_can_come_from_a_file(receiver: Receiver, tmp_path: Path) -> None:
    path = tmp_path / "hook.secret"
    path.write_text("file-secret-1f2e3d\n", encoding="utf-8")
    channel = webhook_channel(receiver.url, secret=SecretRef(file=str(path)))
    async with started(channel, environ={}) as notifier:
        await notifier.send(Notice(HOLD_EXPIRED, make_hold().to_json()))
    assert_signed(receiver.received[0], "file-secret-1f2e3d")


@pytest.mark.parametrize(
    ("secret", "environ", "message"),
    [
        (SecretRef(env="HOOK_SECRET"), {}, "environment variable HOOK_SECRET is not set"),
        (SecretRef(env="HOOK_SECRET"), {"HOOK_SECRET": "  "}, "HOOK_SECRET is not set"),
        (SecretRef(file="/nonexistent/hook.secret"), {}, "cannot read secret file"),
        ("hunter2", {}, "a secret must be a reference"),
    ],
)
async def test_a_missing_secret_fails_the_start_for_good(
    secret: object, environ: dict[str, str], message: str
) -> None:
    notifier = WebhookNotifier(
        webhook_channel("https://hooks.example/x", secret=secret), environ=environ
    )
    with pytest.raises(ChannelError, match=message) as caught:
        await notifier.start()
    assert caught.value.retryable is False
    with pytest.raises(RuntimeError, match="before start"):
        await notifier.send(Notice(HOLD_CREATED, make_hold().to_json()))


@pytest.mark.parametrize("url", ["ftp://hooks.example/x", "https://", "not a url", ""])
async def test_a_bad_url_fails_the_start_for_good(url: str) -> None:
    notifier = WebhookNotifier(webhook_channel(url), environ=ENV)
    with pytest.raises(ChannelError, match="url") as caught:
        await notifier.start()
    assert caught.value.retryable is False


async def test_an_unknown_event_is_refused_without_posting(receiver: Receiver) -> None:
    async with started(webhook_channel(receiver.url)) as notifier:
        with pytest.raises(ChannelError, match=r"unknown event 'hold\.updated'") as caught:
            await notifier.send(Notice("hold.updated", make_hold().to_json()))
    assert caught.value.retryable is False and receiver.received == []
