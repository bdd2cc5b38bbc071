"""WEBHOOKS.md is code: its receiver runs against real deliveries and its test vector holds."""

from __future__ import annotations

import hashlib
import hmac
import importlib.util
import io
import json
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import HTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest

import proxy.channels
from proxy.channels.base import (
    HOLD_CREATED,
    HOLD_DECIDED,
    HOLD_VOTE,
    NOTICE_EVENTS,
    ChannelError,
    Notice,
)
from proxy.channels.hub import BACKOFF
from proxy.channels.hub import MAX_RETRY_AFTER as HUB_MAX_RETRY_AFTER
from proxy.channels.webhook import DEFAULT_TIMEOUT, MAX_RETRY_AFTER, RESERVED_HEADERS, sign
from proxy.holds import Vote
from proxy.outcomes import Outcome
from tests.proxy.channels.test_webhook import (
    LINKS,
    SECRET,
    make_hold,
    started,
    webhook_channel,
)

DOC = Path(proxy.channels.__file__).parent / "WEBHOOKS.md"
TEXT = DOC.read_text(encoding="utf-8")
PROSE = " ".join(TEXT.split())  # line breaks undone, to find phrases


def blocks(language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```$", TEXT, re.DOTALL | re.MULTILINE)


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> ModuleType:
    """The doc's receiver, imported as the module a reader would save it as."""
    (code,) = blocks("python")
    path = tmp_path_factory.mktemp("doc") / "interlock_receiver.py"
    path.write_text(code, encoding="utf-8")
    spec = importlib.util.spec_from_file_location("interlock_receiver", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclass
class DocServer:
    """The doc's `Receiver` served on 127.0.0.1, with what reached it recorded."""

    url: str = ""
    deliveries: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)


@pytest.fixture
def doc_server(example: ModuleType) -> Iterator[DocServer]:
    record = DocServer()

    class Handler(example.Receiver):  # type: ignore[name-defined,misc]
        secret = SECRET
        seen: dict[str, float] = {}  # noqa: RUF012 - one test's memory, as in the doc

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            record.deliveries.append((dict(self.headers.items()), body))
            self.rfile = io.BytesIO(body)  # the doc's code reads the body as it arrived
            super().do_POST()

        def send_response(self, code: int, message: str | None = None) -> None:
            record.statuses.append(code)
            super().send_response(code, message)

        def handle_event(self, event: dict[str, Any]) -> None:
            record.events.append(event)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    record.url = f"http://127.0.0.1:{server.server_address[1]}/interlock"
    try:
        yield record
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def vector() -> dict[str, str]:
    """The known-answer vector: `name: value` lines in the doc's text block."""
    (text,) = [b for b in blocks("text") if "signature:" in b]
    pairs = (line.split(":", 1) for line in text.splitlines())
    return {name: value.strip() for name, value in pairs}


def test_the_known_answer_vector_holds(example: ModuleType) -> None:
    v = vector()
    signed = v["timestamp"].encode() + b"." + v["body"].encode()
    independent = hmac.new(v["secret"].encode(), signed, hashlib.sha256).hexdigest()
    assert v["signature"] == f"v1={independent}"
    assert sign(v["secret"], v["timestamp"], v["body"].encode()) == v["signature"]
    event = example.verify(
        v["secret"], v["body"].encode(), v["timestamp"], v["signature"], now=int(v["timestamp"])
    )
    assert event == json.loads(v["body"])
    command = (
        f"printf '%s' '{v['timestamp']}.{v['body']}' | openssl dgst -sha256 -hmac {v['secret']}"
    )
    assert f"`{command}`" in TEXT
    if shutil.which("openssl"):
        out = subprocess.run(command, shell=True, capture_output=True, text=True, check=True)
        assert out.stdout.strip().endswith(independent)


async def test_the_receiver_takes_real_deliveries_once_each(doc_server: DocServer) -> None:
    hold = make_hold(approvals=2)
    async with started(webhook_channel(doc_server.url)) as notifier:
        await notifier.send(Notice(HOLD_CREATED, hold.to_json(), LINKS))
        hold.votes.append(Vote("person:alice", "tui", time.time(), None))
        vote = Notice(HOLD_VOTE, hold.to_json())
        await notifier.send(vote)
        await notifier.send(vote)  # a retry whose first answer was lost
        hold.state, hold.decided_by, hold.channel = Outcome.DENIED, "person:bob", "tui"
        await notifier.send(Notice(HOLD_DECIDED, hold.to_json()))
    assert doc_server.statuses == [204, 204, 204, 204]
    assert [e["type"] for e in doc_server.events] == [HOLD_CREATED, HOLD_VOTE, HOLD_DECIDED]
    assert doc_server.events[0]["links"]["approve"] == LINKS.approve
    assert doc_server.events[2]["hold"]["state"] == "denied"


async def test_the_receiver_refuses_a_tampered_delivery(
    doc_server: DocServer, example: ModuleType
) -> None:
    async with started(webhook_channel(doc_server.url)) as notifier:
        await notifier.send(Notice(HOLD_CREATED, make_hold().to_json(), LINKS))
    ((headers, body),) = doc_server.deliveries
    forged_body = body.replace(b'"ci-bot"', b'"ci-bob"')
    forged_time = {
        **headers,
        "X-Interlock-Timestamp": str(int(headers["X-Interlock-Timestamp"]) + 1),
    }
    async with httpx.AsyncClient(trust_env=False) as client:
        for forged_headers, forged in ((headers, forged_body), (forged_time, body)):
            answer = await client.post(doc_server.url, content=forged, headers=forged_headers)
            assert answer.status_code == 401
    assert doc_server.statuses == [204, 401, 401] and len(doc_server.events) == 1
    with pytest.raises(example.InvalidDelivery, match="no valid v1 signature"):
        example.verify(
            SECRET, forged_body, headers["X-Interlock-Timestamp"], headers["X-Interlock-Signature"]
        )


async def test_the_receiver_refuses_another_secret(
    doc_server: DocServer, example: ModuleType
) -> None:
    async with started(
        webhook_channel(doc_server.url), environ={"HOOK_SECRET": "not-it"}
    ) as notifier:
        with pytest.raises(ChannelError, match=" answered 401 ") as caught:
            await notifier.send(Notice(HOLD_CREATED, make_hold().to_json()))
    assert caught.value.retryable is False  # a wrong secret is not fixed by waiting
    assert doc_server.events == []
    ((headers, body),) = doc_server.deliveries
    assert example.verify(
        "not-it", body, headers["X-Interlock-Timestamp"], headers["X-Interlock-Signature"]
    )
    with pytest.raises(example.InvalidDelivery):
        example.verify(
            SECRET, body, headers["X-Interlock-Timestamp"], headers["X-Interlock-Signature"]
        )


@pytest.mark.parametrize(("skew", "accepted"), [(-290, True), (-301, False), (301, False)])
async def test_the_receiver_enforces_the_replay_window(
    doc_server: DocServer, example: ModuleType, skew: float, accepted: bool
) -> None:
    async with started(
        webhook_channel(doc_server.url), clock=lambda: time.time() + skew
    ) as notifier:
        if accepted:
            await notifier.send(Notice(HOLD_CREATED, make_hold().to_json()))
        else:
            with pytest.raises(ChannelError, match=" answered 401 ") as caught:
                await notifier.send(Notice(HOLD_CREATED, make_hold().to_json()))
            assert caught.value.retryable is False
    assert len(doc_server.events) == int(accepted)
    ((headers, body),) = doc_server.deliveries
    sent = int(headers["X-Interlock-Timestamp"])
    args = (SECRET, body, headers["X-Interlock-Timestamp"], headers["X-Interlock-Signature"])
    assert example.verify(*args, now=sent + 299)
    with pytest.raises(example.InvalidDelivery, match="replay window"):
        example.verify(*args, now=sent + 301)


async def test_the_example_payload_has_the_shape_of_a_real_one(doc_server: DocServer) -> None:
    async with started(webhook_channel(doc_server.url)) as notifier:
        await notifier.send(Notice(HOLD_CREATED, make_hold().to_json(), LINKS))
    (real,) = doc_server.events
    (documented,) = (json.loads(b) for b in blocks("json"))
    assert list(documented) == list(real)
    assert list(documented["hold"]) == list(real["hold"])
    assert list(documented["links"]) == list(real["links"])
    assert re.fullmatch(r"dlv_[0-9a-f]{32}", documented["id"])


async def test_the_doc_names_every_event_header_and_limit(
    doc_server: DocServer, example: ModuleType
) -> None:
    async with started(webhook_channel(doc_server.url)) as notifier:
        await notifier.send(Notice(HOLD_CREATED, make_hold().to_json()))
    ((headers, _),) = doc_server.deliveries
    for event in NOTICE_EVENTS:
        assert f"| `{event}` |" in TEXT
    sent = {name for name in headers if name.lower().startswith("x-interlock-")}
    assert len(sent) == 4
    for name in sent:
        assert f"| `{name}` |" in TEXT
    for name in RESERVED_HEADERS:
        assert name in TEXT.lower()
    delays = [f"{d:g}" for d in BACKOFF]
    assert f"after {', '.join(delays[:-1])} and {delays[-1]} seconds" in PROSE
    assert len(BACKOFF) + 1 == 7 and "(seven attempts)" in PROSE
    assert MAX_RETRY_AFTER == HUB_MAX_RETRY_AFTER == 300 and "up to five minutes" in PROSE
    assert (
        f"waits {DEFAULT_TIMEOUT:g} seconds" in PROSE
        and f"{2 * DEFAULT_TIMEOUT:g} seconds" in PROSE
    )
    assert example.TOLERANCE == 300 and "within five minutes" in PROSE
