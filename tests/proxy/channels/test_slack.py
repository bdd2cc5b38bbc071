"""The Slack channel against a local Slack over real sockets, deciding holds in a real queue."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from policies.model import Action, Channel, Decision, HoldSettings, SecretRef, Severity
from proxy.audit import AuditStore
from proxy.channels import slack_blocks as kit
from proxy.channels.base import HOLD_CREATED, HOLD_DECIDED, HOLD_VOTE, ChannelError, Notice
from proxy.channels.slack import SlackNotifier
from proxy.events import EventBus
from proxy.holds import HeldRequest, Hold, HoldQueue
from proxy.outcomes import Outcome
from proxy.records import AuditRecord, Kind
from tests.proxy.channels.fakeslack import FakeSlack

ALICE, BOB, MALLORY = "U0ALICE", "U0BOB", "U0MALLORY"
SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"


# -- shared with test_slack_http.py -----------------------------------------------------------


@dataclass
class Core:
    """A real hold queue writing to a real audit store, and the event bus it publishes on."""

    store: AuditStore
    events: EventBus
    queue: HoldQueue

    async def hold(
        self,
        n: int = 1,
        *,
        approvals: int = 1,
        reasons: tuple[str, ...] = (),
        body: str | None = '{"target": "production"}',
    ) -> Hold:
        """A held request, recorded and announced as the gate does it."""
        request = HeldRequest(
            request_id=f"r_{n}", agent="deploy-bot", client="10.0.0.7:5123", method="POST",
            scheme="https", host="api.vercel.com", port=443, path="/v13/deployments",
            query="teamId=acme", headers=(("content-type", "application/json"),),
            body_size=len(body or ""), body_sha256="ab" * 32, body_preview=body,
        )  # fmt: skip
        settings = HoldSettings(timeout=300, approvals=approvals, reasons=reasons)
        decision = Decision(
            Action.HOLD, "deploys", "Deploys need a person.", Severity.HIGH, settings
        )
        hold, joined = self.queue.open(request, decision, key=f"key-{n}")
        assert not joined
        await self.store.append(AuditRecord(
            kind=Kind.REQUEST, request_id=request.request_id, agent=request.agent,
            method=request.method, host=request.host, path=request.path, rule="deploys",
            action="hold", outcome="pending", hold_id=hold.id,
        ))  # fmt: skip
        self.queue.announce(hold)
        return hold

    def last(self, event_type: str) -> Notice:
        """The newest `event_type` the queue published, as the hub would hand it to a channel."""
        event = next(e for e in reversed(self.events.since(0) or []) if e.type == event_type)
        return Notice(event.type, event.data)

    async def recorded(self, hold: Hold) -> list[dict[str, Any]]:
        rows = await self.store.trail(hold.request.request_id)
        return [row for row in rows if row["kind"] in (Kind.HOLD, Kind.VOTE)]


@asynccontextmanager
async def running_core(tmp_path: Path) -> AsyncIterator[Core]:
    store = await AuditStore.open(tmp_path / "audit.db")
    events = EventBus()
    queue = HoldQueue(store, events)
    try:
        yield Core(store, events, queue)
    finally:
        await queue.expire_all("test over")
        await store.close()


@asynccontextmanager
async def running_fake() -> AsyncIterator[FakeSlack]:
    slack = await FakeSlack(channels={"C0OPS": "ops", "C0SEC": "security"}).start()
    try:
        yield slack
    finally:
        await slack.close()


def slack_channel(
    fake: FakeSlack,
    *,
    name: str = "ops",
    mode: str = "socket",
    target: str = "#ops",
    approvers: tuple[str, ...] = (ALICE, BOB),
) -> Channel:
    """The channel as policies/loader.py builds it from the policy's YAML."""
    settings: dict[str, object] = {
        "channel": target, "bot_token": SecretRef(env="SLACK_BOT"), "approvers": approvers,
        "mode": mode, "api_url": fake.api_url,
    }  # fmt: skip
    if mode == "socket":
        settings["app_token"] = SecretRef(env="SLACK_APP")
    else:
        settings["signing_secret"] = SecretRef(env="SLACK_SIGNING")
    return Channel(name, "slack", settings)


def environ(fake: FakeSlack, **overrides: str) -> dict[str, str]:
    return {"SLACK_BOT": fake.bot_token, "SLACK_APP": fake.app_token,
            "SLACK_SIGNING": SIGNING_SECRET, **overrides}  # fmt: skip


async def until(condition: Callable[[], object], timeout: float = 5.0) -> None:
    """Wait for a background effect (an interaction runs after its acknowledgement)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        await asyncio.sleep(0.01)


@pytest.fixture
async def notifier(core: Core, fake: FakeSlack) -> AsyncIterator[SlackNotifier]:
    slack = SlackNotifier(slack_channel(fake), decide=core.queue.decide, environ=environ(fake))
    await slack.start()
    yield slack
    await slack.close()


async def posted(core: Core, notifier: SlackNotifier, fake: FakeSlack, **kw: Any) -> Hold:
    hold = await core.hold(**kw)
    await notifier.send(core.last(HOLD_CREATED))
    return hold


def message(fake: FakeSlack) -> Mapping[str, Any]:
    return fake.only_message()[2]


async def click(fake: FakeSlack, user: str, action_id: str) -> dict[str, Any] | None:
    channel, ts, _ = fake.only_message()
    envelope = await fake.push(fake.click(user, channel, ts, action_id))
    return await fake.ack(envelope)


# -- posting ------------------------------------------------------------------------------------


async def test_a_hold_is_posted_with_what_who_why_and_the_two_buttons(
    core: Core, fake: FakeSlack, notifier: SlackNotifier
) -> None:
    hold = await posted(core, notifier, fake)
    assert [m for m, _ in fake.calls] == ["auth.test", "apps.connections.open", "chat.postMessage"]
    assert fake.called("chat.postMessage")[0]["channel"] == "#ops"
    channel, _, shown = fake.only_message()
    assert channel == "C0OPS"
    assert fake.buttons(shown) == {kit.APPROVE_ACTION: hold.id, kit.DENY_ACTION: hold.id}
    text = fake.text_of(shown)
    for fact in ("deploy-bot", "POST https://api.vercel.com/v13/deployments?teamId=acme",
                 "deploys", "Deploys need a person.", "high", "1 approval needed",
                 '{"target": "production"}', f"<!date^{int(hold.deadline)}^"):  # fmt: skip
        assert fact in text, fact


async def test_a_repeated_created_notice_updates_instead_of_posting_twice(
    core: Core, fake: FakeSlack, notifier: SlackNotifier
) -> None:
    await posted(core, notifier, fake)
    escalated = core.last(HOLD_CREATED)
    await notifier.send(Notice(HOLD_CREATED, escalated.hold, escalated=True))
    assert len(fake.called("chat.postMessage")) == 1
    assert "Escalated" in fake.text_of(message(fake))


# -- deciding from Slack --------------------------------------------------------------------------


async def test_an_approvers_click_over_socket_mode_approves_the_hold(
    core: Core, fake: FakeSlack, notifier: SlackNotifier
) -> None:
    hold = await posted(core, notifier, fake)
    assert await click(fake, ALICE, kit.APPROVE_ACTION) is None  # a bare ack, at once
    assert await core.queue.wait(hold, 5) is Outcome.APPROVED
    assert (hold.decided_by, hold.channel) == (f"person:slack:{ALICE}", "slack:ops")
    (row,) = await core.recorded(hold)
    assert (row["outcome"], row["decided_by"], row["channel"]) == (
        "approved",
        "person:slack:U0ALICE",
        "slack:ops",
    )
    await until(lambda: not fake.buttons(message(fake)))  # the click's own update
    assert f"Approved* by <@{ALICE}> via `slack:ops`" in fake.text_of(message(fake))


async def test_a_non_approvers_click_decides_nothing(
    core: Core, fake: FakeSlack, notifier: SlackNotifier
) -> None:
    hold = await posted(core, notifier, fake)
    await click(fake, MALLORY, kit.APPROVE_ACTION)
    await until(lambda: fake.ephemerals)
    assert fake.ephemerals == [{"channel": "C0OPS", "user": MALLORY,
                                "text": "You are not an approver for this Interlock channel, "
                                        "so nothing was decided."}]  # fmt: skip
    assert hold.pending and await core.recorded(hold) == []
    assert fake.buttons(message(fake))  # still waiting for someone who may decide


async def test_deny_asks_for_a_reason_in_a_modal_and_denies_with_it(
    core: Core, fake: FakeSlack, notifier: SlackNotifier
) -> None:
    hold = await posted(core, notifier, fake, reasons=("Use the staging project first",))
    await click(fake, BOB, kit.DENY_ACTION)
    await until(lambda: fake.views)
    ((view_id, view),) = fake.views.items()
    assert view["callback_id"] == kit.DENY_CALLBACK
    assert hold.pending  # nothing is decided until the form is sent

    blank = fake.submit(view_id, BOB, {kit.REASON_INPUT: "   "})
    assert await fake.ack(await fake.push(blank, accepts_response_payload=True)) == {
        "response_action": "errors",
        "errors": {kit.REASON_BLOCK: "Say why, so the agent knows what to do instead."},
    }
    assert hold.pending

    sent = fake.submit(view_id, BOB, {kit.PRESET_INPUT: "Use the staging project first",
                                      kit.REASON_INPUT: "Freeze until Monday."})  # fmt: skip
    assert await fake.ack(await fake.push(sent, accepts_response_payload=True)) is None
    assert await core.queue.wait(hold, 5) is Outcome.DENIED
    assert hold.decision_reason == "Use the staging project first: Freeze until Monday."
    assert hold.decided_by == f"person:slack:{BOB}"


async def test_deny_without_preset_reasons_offers_only_the_reason_box(
    core: Core, fake: FakeSlack, notifier: SlackNotifier
) -> None:
    await posted(core, notifier, fake)
    await click(fake, BOB, kit.DENY_ACTION)
    await until(lambda: fake.views)
    (view,) = fake.views.values()
    assert [b.get("block_id") for b in view["blocks"] if b["type"] == "input"] == [kit.REASON_BLOCK]


async def test_a_deny_too_late_for_the_trigger_says_so(core: Core) -> None:
    slow = await FakeSlack(trigger_ttl=0.0).start()  # the person's 3 s are already over
    slack = SlackNotifier(slack_channel(slow), decide=core.queue.decide, environ=environ(slow))
    try:
        await slack.start()
        hold = await core.hold()
        await slack.send(core.last(HOLD_CREATED))
        await click(slow, BOB, kit.DENY_ACTION)
        await until(lambda: slow.ephemerals)
        assert "click Deny again" in slow.ephemerals[0]["text"] and hold.pending
        assert slow.views == {}
    finally:
        await slack.close()
        await slow.close()


async def test_a_decision_elsewhere_removes_the_buttons_and_says_who(
    core: Core, fake: FakeSlack, notifier: SlackNotifier
) -> None:
    hold = await posted(core, notifier, fake)
    channel, ts, _ = fake.only_message()
    stale_click = fake.click(
        ALICE, channel, ts, kit.APPROVE_ACTION
    )  # on screen before the decision
    await core.queue.decide(hold.id, approve=False, by="person:carol", channel="cli",
                            reason="Not during the incident.")  # fmt: skip
    await notifier.send(core.last(HOLD_DECIDED))
    shown = message(fake)
    assert fake.buttons(shown) == {}
    assert "Denied* by carol via `cli`" in fake.text_of(shown)
    assert "Not during the incident." in fake.text_of(shown)

    await fake.ack(await fake.push(stale_click))
    await until(lambda: fake.ephemerals)
    assert "already decided: denied by person:carol" in fake.ephemerals[0]["text"]
    assert hold.state is Outcome.DENIED and hold.decided_by == "person:carol"


async def test_a_slack_user_mapped_to_an_operator_counts_once_across_channels(
    core: Core, fake: FakeSlack
) -> None:
    channel = slack_channel(fake)
    channel.settings["approver_names"] = {ALICE: "alice"}  # as the loader maps {U0ALICE: alice}
    notifier = SlackNotifier(channel, decide=core.queue.decide, environ=environ(fake))
    await notifier.start()
    try:
        hold = await posted(core, notifier, fake, approvals=2)
        await core.queue.decide(hold.id, approve=True, by="person:alice", channel="tui")
        await click(fake, ALICE, kit.APPROVE_ACTION)  # alice again, now in Slack
        await until(lambda: fake.ephemerals)
        assert "person:alice already approved" in fake.ephemerals[0]["text"]
        assert hold.pending and [v.by for v in hold.votes] == ["person:alice"]
        await click(fake, BOB, kit.APPROVE_ACTION)  # bob has no name: his Slack ID is his own
        assert await core.queue.wait(hold, 5) is Outcome.APPROVED
        assert hold.decided_by == f"person:slack:{BOB}"
    finally:
        await notifier.close()


async def test_two_approvals_are_needed_and_one_person_counts_once(
    core: Core, fake: FakeSlack, notifier: SlackNotifier
) -> None:
    hold = await posted(core, notifier, fake, approvals=2)
    await click(fake, ALICE, kit.APPROVE_ACTION)
    await until(lambda: "1 of 2 approvals" in fake.text_of(message(fake)))
    assert hold.pending and f"(by <@{ALICE}>)" in fake.text_of(message(fake))
    assert fake.buttons(message(fake))  # still open to the second approver
    vote = core.last(HOLD_VOTE)

    await click(fake, ALICE, kit.APPROVE_ACTION)
    await until(lambda: fake.ephemerals)
    assert "already approved" in fake.ephemerals[0]["text"]
    assert hold.pending and len(hold.votes) == 1

    await click(fake, BOB, kit.APPROVE_ACTION)
    assert await core.queue.wait(hold, 5) is Outcome.APPROVED
    assert [r["kind"] for r in await core.recorded(hold)] == [Kind.VOTE, Kind.HOLD]
    await until(lambda: not fake.buttons(message(fake)))
    await notifier.send(vote)  # the hub's late vote notice must not bring the buttons back
    await notifier.send(core.last(HOLD_DECIDED))
    text = fake.text_of(message(fake))
    assert not fake.buttons(message(fake))
    assert f"Approved* by <@{BOB}>" in text and f"Earlier approvals: <@{ALICE}>" in text


async def test_a_vote_from_elsewhere_updates_the_count(
    core: Core, fake: FakeSlack, notifier: SlackNotifier
) -> None:
    hold = await posted(core, notifier, fake, approvals=2)
    await core.queue.decide(hold.id, approve=True, by="person:carol", channel="tui")
    await notifier.send(core.last(HOLD_VOTE))
    assert "1 of 2 approvals (by carol)" in fake.text_of(message(fake))
    assert fake.buttons(message(fake))


async def test_notices_arriving_out_of_order_never_show_older_news(
    core: Core, fake: FakeSlack, notifier: SlackNotifier
) -> None:
    hold = await posted(core, notifier, fake, approvals=3)
    await core.queue.decide(hold.id, approve=True, by="person:carol", channel="tui")
    first = core.last(HOLD_VOTE)
    await core.queue.decide(hold.id, approve=True, by="person:dave", channel="cli")
    await notifier.send(core.last(HOLD_VOTE))
    await notifier.send(first)  # e.g. a retried delivery that finally got through
    assert "2 of 3 approvals (by carol, dave)" in fake.text_of(message(fake))
    assert len(fake.called("chat.update")) == 1


async def test_an_outcome_for_a_hold_never_posted_changes_nothing(
    core: Core, fake: FakeSlack, notifier: SlackNotifier
) -> None:
    hold = await core.hold()
    await core.queue.expire(hold, "nobody decided before the deadline")
    await notifier.send(core.last("hold.expired"))
    assert fake.called("chat.update") == [] and fake.called("chat.postMessage") == []


async def test_interactions_go_to_the_channel_whose_message_was_clicked(
    core: Core, fake: FakeSlack
) -> None:
    """Two channels of one Slack app share its connections: Slack hands a click to either."""
    security = SlackNotifier(
        slack_channel(fake, name="security", target="C0SEC", approvers=("U0SEC",)),
        decide=core.queue.decide, environ=environ(fake),
    )  # fmt: skip
    ops = SlackNotifier(slack_channel(fake), decide=core.queue.decide, environ=environ(fake))
    try:
        await security.start()
        await ops.start()  # the newest connection: the fake pushes there
        hold = await core.hold()
        await security.send(core.last(HOLD_CREATED))
        await click(fake, ALICE, kit.APPROVE_ACTION)  # an approver of ops, not of security
        await until(lambda: fake.ephemerals)
        assert hold.pending and fake.ephemerals[0]["channel"] == "C0SEC"
        await click(fake, "U0SEC", kit.APPROVE_ACTION)
        assert await core.queue.wait(hold, 5) is Outcome.APPROVED
        assert hold.channel == "slack:security"
    finally:
        await ops.close()
        await security.close()


async def test_socket_mode_reconnects_when_slack_asks(
    core: Core, fake: FakeSlack, notifier: SlackNotifier
) -> None:
    hold = await posted(core, notifier, fake)
    await fake.send_frame({"type": "disconnect", "reason": "refresh_requested",
                           "debug_info": {"host": "applink-fake"}})  # fmt: skip
    await until(lambda: fake.connections == 2 and fake.open_connections == 1)
    await click(fake, ALICE, kit.APPROVE_ACTION)
    assert await core.queue.wait(hold, 5) is Outcome.APPROVED


# -- failures the hub must see --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        (
            {"SLACK_BOT": "xoxb-revoked"},
            "auth.test failed: invalid_auth (Slack refused the bot_token)",
        ),
        ({"SLACK_BOT": "xapp-fake-app"}, "auth.test failed: not_allowed_token_type"),
        (
            {"SLACK_APP": "xapp-wrong"},
            "apps.connections.open failed: invalid_auth (Slack refused the app_token)",
        ),
        ({"SLACK_BOT": ""}, "bot_token: environment variable SLACK_BOT is not set"),
    ],
)
async def test_bad_tokens_fail_start_for_good(
    core: Core, fake: FakeSlack, override: dict[str, str], expected: str
) -> None:
    slack = SlackNotifier(slack_channel(fake), decide=core.queue.decide,
                          environ=environ(fake, **override))  # fmt: skip
    with pytest.raises(ChannelError) as caught:
        await slack.start()
    assert expected in str(caught.value) and caught.value.retryable is False
    await slack.close()


async def test_start_gives_up_on_a_slack_that_does_not_answer(core: Core, fake: FakeSlack) -> None:
    fake.delays["auth.test"] = 30
    slack = SlackNotifier(slack_channel(fake), decide=core.queue.decide, environ=environ(fake),
                          timeout=0.3)  # fmt: skip
    started = time.monotonic()
    with pytest.raises(ChannelError, match=r"auth\.test failed") as caught:
        await slack.start()
    assert caught.value.retryable and time.monotonic() - started < 3


async def test_start_gives_up_on_a_socket_without_hello(core: Core, fake: FakeSlack) -> None:
    fake.send_hello = False
    slack = SlackNotifier(slack_channel(fake), decide=core.queue.decide, environ=environ(fake),
                          timeout=0.3)  # fmt: skip
    with pytest.raises(ChannelError, match=r"Socket Mode did not connect within 0\.3 s"):
        await slack.start()


async def test_a_rate_limit_carries_retry_after_and_the_next_attempt_posts(
    core: Core, fake: FakeSlack, notifier: SlackNotifier
) -> None:
    await core.hold()
    fake.fail("chat.postMessage", "ratelimited", status=429, retry_after=7)
    with pytest.raises(ChannelError) as caught:
        await notifier.send(core.last(HOLD_CREATED))
    assert (caught.value.retryable, caught.value.retry_after) == (True, 7.0)
    assert fake.messages == {}  # one attempt: the hub waits and retries
    await notifier.send(core.last(HOLD_CREATED))
    assert len(fake.messages) == 1


@pytest.mark.parametrize(
    ("error", "hint"),
    [("not_in_channel", "invite the app to the channel"), ("invalid_auth", "bot_token")],
)
async def test_lasting_post_errors_are_not_retried(
    core: Core, fake: FakeSlack, notifier: SlackNotifier, error: str, hint: str
) -> None:
    await core.hold()
    fake.fail("chat.postMessage", error)
    with pytest.raises(ChannelError, match=hint) as caught:
        await notifier.send(core.last(HOLD_CREATED))
    assert caught.value.retryable is False


async def test_an_unknown_channel_is_reported_by_slack(core: Core, fake: FakeSlack) -> None:
    slack = SlackNotifier(slack_channel(fake, target="#nope"), decide=core.queue.decide,
                          environ=environ(fake))  # fmt: skip
    await slack.start()
    try:
        await core.hold()
        with pytest.raises(ChannelError, match=r"channel_not_found \(check `channel`") as caught:
            await slack.send(core.last(HOLD_CREATED))
        assert caught.value.retryable is False
    finally:
        await slack.close()
