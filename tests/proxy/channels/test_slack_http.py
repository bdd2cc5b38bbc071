"""Slack's HTTP interactivity: only signed, fresh requests are read, and they decide like clicks."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Route

from proxy.channels import slack_blocks as kit
from proxy.channels.base import HOLD_CREATED
from proxy.channels.slack import SlackNotifier
from proxy.channels.slack_http import SlackInteractions, verify
from proxy.outcomes import Outcome
from tests.proxy.channels.fakeslack import FakeSlack
from tests.proxy.channels.test_slack import (
    ALICE,
    BOB,
    MALLORY,
    SIGNING_SECRET,
    Core,
    environ,
    slack_channel,
    until,
)

# The worked example of Slack's "Verifying requests from Slack" (a slash command's body).
DOC_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
DOC_TIMESTAMP = "1531420618"
DOC_BODY = (
    b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V"
    b"&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text="
    b"&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmib"
    b"IGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
)
DOC_SIGNATURE = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"


def test_slacks_documented_signature_verifies() -> None:
    now = float(DOC_TIMESTAMP)
    assert verify(DOC_SECRET, DOC_TIMESTAMP, DOC_BODY, DOC_SIGNATURE, now=now)
    assert verify(DOC_SECRET, DOC_TIMESTAMP, DOC_BODY, DOC_SIGNATURE, now=now + 300)


@pytest.mark.parametrize(
    ("secret", "timestamp", "body", "signature", "now"),
    [
        (DOC_SECRET, DOC_TIMESTAMP, DOC_BODY + b"&x=1", DOC_SIGNATURE, 1531420618),  # tampered
        (DOC_SECRET, "1531420619", DOC_BODY, DOC_SIGNATURE, 1531420618),  # another time
        (DOC_SECRET, DOC_TIMESTAMP, DOC_BODY, DOC_SIGNATURE, 1531420618 + 301),  # stale
        (DOC_SECRET, DOC_TIMESTAMP, DOC_BODY, DOC_SIGNATURE, 1531420618 - 301),  # from the future
        ("another-secret", DOC_TIMESTAMP, DOC_BODY, DOC_SIGNATURE, 1531420618),
        (DOC_SECRET, DOC_TIMESTAMP, DOC_BODY, DOC_SIGNATURE.removeprefix("v0="), 1531420618),
        (DOC_SECRET, DOC_TIMESTAMP, DOC_BODY, DOC_SIGNATURE.upper(), 1531420618),
        (DOC_SECRET, "", DOC_BODY, DOC_SIGNATURE, 1531420618),
        (DOC_SECRET, "-1531420618", DOC_BODY, DOC_SIGNATURE, 1531420618),
        (DOC_SECRET, DOC_TIMESTAMP, DOC_BODY, "v0=ä", 1531420618),
        ("", DOC_TIMESTAMP, DOC_BODY, DOC_SIGNATURE, 1531420618),
    ],
)
def test_anything_else_does_not_verify(
    secret: str, timestamp: str, body: bytes, signature: str, now: float
) -> None:
    assert not verify(secret, timestamp, body, signature, now=now)


@pytest.fixture
async def ops(core: Core, fake: FakeSlack) -> AsyncIterator[SlackNotifier]:
    notifier = SlackNotifier(slack_channel(fake, mode="http"), decide=core.queue.decide,
                             environ=environ(fake))  # fmt: skip
    await notifier.start()
    yield notifier
    await notifier.close()


@pytest.fixture
async def public(ops: SlackNotifier) -> AsyncIterator[httpx.AsyncClient]:
    """The public listener's route, in-process."""
    handler = SlackInteractions(lambda: [ops])
    app = Starlette(routes=[Route("/slack/interactions", handler.handle, methods=["POST"])])
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="https://interlock.example") as c:
        yield c


async def post(
    client: httpx.AsyncClient, payload: dict[str, Any], secret: str = SIGNING_SECRET, **kw: Any
) -> httpx.Response:
    body, headers = FakeSlack.signed(payload, secret, **kw)
    return await client.post("/slack/interactions", content=body, headers=headers)


async def test_http_mode_connects_no_socket(
    core: Core, fake: FakeSlack, ops: SlackNotifier
) -> None:
    assert [m for m, _ in fake.calls] == ["auth.test"] and fake.connections == 0


async def test_a_signed_click_approves(
    core: Core, fake: FakeSlack, ops: SlackNotifier, public: httpx.AsyncClient
) -> None:
    hold = await core.hold()
    await ops.send(core.last(HOLD_CREATED))
    channel, ts, _ = fake.only_message()
    answer = await post(public, fake.click(ALICE, channel, ts, kit.APPROVE_ACTION))
    assert (answer.status_code, answer.content) == (200, b"")
    assert await core.queue.wait(hold, 5) is Outcome.APPROVED
    assert (hold.decided_by, hold.channel) == (f"person:slack:{ALICE}", "slack:ops")
    await until(lambda: not fake.buttons(fake.only_message()[2]))


async def test_unsigned_stale_or_tampered_calls_are_ignored(
    core: Core, fake: FakeSlack, ops: SlackNotifier, public: httpx.AsyncClient
) -> None:
    hold = await core.hold()
    await ops.send(core.last(HOLD_CREATED))
    channel, ts, _ = fake.only_message()
    click = fake.click(ALICE, channel, ts, kit.APPROVE_ACTION)
    body, headers = FakeSlack.signed(click, SIGNING_SECRET)
    unsigned = await public.post("/slack/interactions", content=body,
                                 headers={"Content-Type": headers["Content-Type"]})  # fmt: skip
    stale = await post(public, click, at=time.time() - 400)
    tampered_body = body.replace(ALICE.encode(), MALLORY.encode())
    tampered = await public.post("/slack/interactions", content=tampered_body, headers=headers)
    other_app = await post(public, click, secret="not-our-signing-secret")
    statuses = [r.status_code for r in (unsigned, stale, tampered, other_app)]
    assert statuses == [401, 401, 401, 401]
    assert hold.pending and fake.ephemerals == [] and await core.recorded(hold) == []


async def test_deny_over_http_opens_the_modal_and_answers_its_errors(
    core: Core, fake: FakeSlack, ops: SlackNotifier, public: httpx.AsyncClient
) -> None:
    hold = await core.hold(reasons=("Not now",))
    await ops.send(core.last(HOLD_CREATED))
    channel, ts, _ = fake.only_message()
    assert (await post(public, fake.click(BOB, channel, ts, kit.DENY_ACTION))).status_code == 200
    await until(lambda: fake.views)
    (view_id,) = fake.views

    blank = await post(public, fake.submit(view_id, BOB, {kit.REASON_INPUT: " "}))
    assert blank.status_code == 200 and blank.json()["response_action"] == "errors"
    outsider = await post(public, fake.submit(view_id, MALLORY, {kit.REASON_INPUT: "no"}))
    assert outsider.json()["errors"][kit.REASON_BLOCK].startswith("You are not an approver")
    assert hold.pending

    sent = fake.submit(view_id, BOB, {kit.PRESET_INPUT: "Not now", kit.REASON_INPUT: "Freeze."})
    assert (await post(public, sent)).status_code == 200
    assert await core.queue.wait(hold, 5) is Outcome.DENIED
    assert hold.decision_reason == "Not now: Freeze."


async def test_each_channel_reads_only_calls_signed_with_its_secret(
    core: Core, fake: FakeSlack, ops: SlackNotifier
) -> None:
    """Two Slack apps, two signing secrets: a click goes to the app that signed it."""
    other = SlackNotifier(
        slack_channel(fake, name="security", mode="http", target="C0SEC", approvers=("U0SEC",)),
        decide=core.queue.decide, environ=environ(fake, SLACK_SIGNING="security-app-secret"),
    )  # fmt: skip
    await other.start()
    handler = SlackInteractions(lambda: [object(), ops, other])
    app = Starlette(routes=[Route("/slack/interactions", handler.handle, methods=["POST"])])
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="https://interlock.example") as client:  # fmt: skip
            hold = await core.hold()
            await other.send(core.last(HOLD_CREATED))
            channel, ts, _ = fake.only_message()
            click = fake.click("U0SEC", channel, ts, kit.APPROVE_ACTION)
            assert (await post(client, click)).status_code == 200  # signed by ops's app
            assert hold.pending and fake.ephemerals == []
            assert (await post(client, click, secret="security-app-secret")).status_code == 200
            assert await core.queue.wait(hold, 5) is Outcome.APPROVED
            assert hold.channel == "slack:security"
    finally:
        await other.close()


async def test_a_signed_body_without_a_payload_is_400(public: httpx.AsyncClient) -> None:
    body = b"payload=not-json"
    headers = FakeSlack.sign(body, SIGNING_SECRET)
    answer = await public.post("/slack/interactions", content=body, headers=headers)
    assert answer.status_code == 400
