"""The channel hub with a real hold queue, event bus and audit store.

The notifier here is scripted (it records what it is told and fails on cue), because these tests
are about the hub's own promises: order per hold, retries with backoff, escalation, and a failing
channel never holding anything up. The real channels are tested against their real protocols in
test_webhook.py and test_slack.py, and together in tests/e2e/test_channels.py.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from policies.model import Action, Channel, Decision, Escalation, HoldSettings
from proxy.audit import AuditStore
from proxy.channels.base import ChannelError, Links, Notice
from proxy.channels.hub import ChannelHub
from proxy.events import EventBus
from proxy.holds import HeldRequest, Hold, HoldQueue
from proxy.outcomes import Outcome


@dataclass
class Scripted:
    """A channel that records notices and raises the errors queued in `failures`, in order."""

    name: str
    wants_links: bool = False
    failures: list[BaseException] = field(default_factory=list)
    told: list[Notice] = field(default_factory=list)
    attempts: int = 0
    started: int = 0
    closed: int = 0
    delay: float = 0.0

    async def start(self) -> None:
        self.started += 1

    async def send(self, notice: Notice) -> None:
        self.attempts += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.failures:
            raise self.failures.pop(0)
        self.told.append(notice)

    async def close(self) -> None:
        self.closed += 1

    def events(self) -> list[str]:
        return [n.event for n in self.told]


class FixedLinks:
    def mint(self, hold_id: str, *, audience: str, channel: str, expires_at: float) -> Links:
        base = f"https://gate.example/l/{hold_id}.{audience}"
        return Links(base, f"{base}?action=approve", f"{base}?action=deny")


@dataclass
class Rig:
    holds: HoldQueue
    events: EventBus
    audit: AuditStore
    hub: ChannelHub
    channels: dict[str, Scripted]
    db: Path

    async def hold(self, settings: HoldSettings, n: int = 1) -> Hold:
        request = HeldRequest(f"r_{n}", "bot", "127.0.0.1:1", "POST", "https", "api.example",
                              443, f"/deploy/{n}", "", (), 0, "", None)  # fmt: skip
        decision = Decision(Action.HOLD, "deploy", "Deploys need a person.", hold=settings)
        hold, _ = self.holds.open(request, decision, f"key-{n}")
        self.holds.announce(hold)
        return hold

    def rows(self, status: str | None = None) -> list[sqlite3.Row]:
        with sqlite3.connect(self.db) as conn:
            conn.row_factory = sqlite3.Row
            rows = conn.execute(
                "SELECT * FROM audit WHERE kind = 'channel' ORDER BY seq"
            ).fetchall()
        return [r for r in rows if status is None or json.loads(r["detail"])["status"] == status]


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    db = tmp_path / "audit.db"
    audit = await AuditStore.open(db)
    events = EventBus()
    holds = HoldQueue(audit, events)
    channels = {n: Scripted(n, wants_links=(n == "hook")) for n in ("hook", "slack", "pager")}
    hub = ChannelHub(holds, events, audit, build=lambda c: channels[c.name], links=FixedLinks(),
                     backoff=(0.01, 0.02, 0.04))  # fmt: skip
    await hub.configure({n: Channel(n, "webhook") for n in channels})
    hub.start()
    yield Rig(holds, events, audit, hub, channels, db)
    await holds.expire_all("test over")
    await hub.stop(grace=1)
    await audit.close()


async def until(check: object, timeout: float = 3.0) -> None:
    assert callable(check)
    for _ in range(int(timeout / 0.01)):
        if check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached in time")


async def test_every_notify_channel_hears_of_the_hold_and_its_outcome_in_order(rig: Rig) -> None:
    hook, slack = rig.channels["hook"], rig.channels["slack"]
    hold = await rig.hold(HoldSettings(timeout=60, notify=("hook", "slack"), approvals=2))
    await until(lambda: hook.told and slack.told)
    await rig.holds.decide(hold.id, approve=True, by="person:ann", channel="cli")
    await until(lambda: len(hook.told) == 2 and len(slack.told) == 2)  # the vote is shown
    await rig.holds.decide(hold.id, approve=True, by="person:bob", channel="tui")
    await until(lambda: len(hook.told) == 3 and len(slack.told) == 3)
    assert hook.events() == slack.events() == ["hold.created", "hold.vote", "hold.decided"]
    assert hook.told[0].links is not None and hook.told[0].links.review.endswith(f"{hold.id}.hook")
    assert slack.told[0].links is None  # Slack has its own buttons
    assert (
        hook.told[-1].hold["state"] == "approved"
        and hook.told[-1].hold["decided_by"] == "person:bob"
    )
    assert rig.channels["pager"].told == []  # not listed: never told
    await until(lambda: len(rig.rows("delivered")) == 6)
    assert {r["request_id"] for r in rig.rows()} == {"r_1"}


async def test_a_failing_channel_is_retried_reported_and_holds_nothing_up(rig: Rig) -> None:
    hook, slack = rig.channels["hook"], rig.channels["slack"]
    hook.failures = [ChannelError("HTTP 503"), ChannelError("HTTP 503")]
    slack.failures = [ChannelError("invalid_auth", retryable=False)]
    with rig.events.subscribe() as stream:
        hold = await rig.hold(HoldSettings(timeout=60, notify=("hook", "slack")))
        await until(lambda: len(hook.told) == 1)
        failed = []
        while not stream.empty():
            event = stream.get_nowait()
            if event is not None and event.type == "channel.failed":
                failed.append(event.data)
    assert hook.attempts == 3  # two failures, then delivered
    assert [(f["channel"], f["attempt"], f["final"]) for f in failed] == [
        ("hook", 1, False), ("slack", 1, True), ("hook", 2, False)]  # fmt: skip
    assert hold.channels["hook"]["state"] == "delivered"
    assert hold.channels["slack"] == {"state": "failed", "event": "hold.created",
                                      "error": "invalid_auth", "at": hold.channels["slack"]["at"]}  # fmt: skip
    assert hold.pending  # still waiting for a person on the channels that work
    await rig.holds.decide(hold.id, approve=True, by="person:ann", channel="cli")
    assert hold.state is Outcome.APPROVED
    await until(lambda: len(rig.rows("retrying")) == 2 and len(rig.rows("failed")) == 1)
    assert "invalid_auth" in rig.rows("failed")[0]["reason"]


async def test_retries_give_up_after_the_backoff_and_stop_once_the_hold_is_decided(
    rig: Rig,
) -> None:
    hook = rig.channels["hook"]
    hook.failures = [ChannelError("down")] * 10
    hold = await rig.hold(HoldSettings(timeout=60, notify=("hook",)))
    await until(lambda: hook.attempts == 4)  # the first try and three retries
    await asyncio.sleep(0.1)
    assert hook.attempts == 4 and hold.channels["hook"]["state"] == "failed"
    slow = await rig.hold(HoldSettings(timeout=60, notify=("hook",)), n=2)
    hook.failures = [ChannelError("rate limited", retry_after=0.3)]
    await until(lambda: hook.attempts == 5)
    await rig.holds.decide(slow.id, approve=False, by="person:ann", channel="cli", reason="no")
    await until(lambda: hook.told)
    await asyncio.sleep(0.4)
    # The created notice is dropped (decided during the pause it was asked for); the final one
    # goes out once, after it.
    assert [(n.hold_id, n.event) for n in hook.told] == [(slow.id, "hold.decided")]
    assert hook.attempts == 6


async def test_escalation_tells_the_next_channel_only_if_nobody_decided(rig: Rig) -> None:
    pager = rig.channels["pager"]
    esc = (Escalation(after=0.2, notify=("pager",)),)
    decided = await rig.hold(HoldSettings(timeout=60, notify=("hook",), escalate=esc), n=1)
    waiting = await rig.hold(HoldSettings(timeout=60, notify=("hook",), escalate=esc), n=2)
    await until(lambda: "pager" in waiting.channels)
    assert waiting.channels["pager"]["state"] == "scheduled"
    await rig.holds.decide(decided.id, approve=True, by="person:ann", channel="cli")
    await until(lambda: pager.told)
    await asyncio.sleep(0.3)
    assert [(n.hold_id, n.event, n.escalated) for n in pager.told] == [
        (waiting.id, "hold.created", True)]  # fmt: skip
    await rig.holds.expire(waiting, "nobody decided before the deadline")
    await until(lambda: len(pager.told) == 2)
    assert pager.told[-1].event == "hold.expired"


async def test_a_slow_channel_does_not_delay_another_or_the_decision(rig: Rig) -> None:
    rig.channels["slack"].delay = 10.0  # far longer than anything below may take
    hold = await rig.hold(HoldSettings(timeout=60, notify=("slack", "hook")))
    await until(lambda: rig.channels["hook"].told, timeout=3)
    await asyncio.wait_for(
        rig.holds.decide(hold.id, approve=True, by="person:ann", channel="cli"), 3
    )
    assert rig.channels["slack"].told == []  # still sending, and nobody waited for it


async def test_a_reload_keeps_unchanged_channels_and_closes_removed_ones(rig: Rig) -> None:
    hold = await rig.hold(HoldSettings(timeout=60, notify=("hook", "slack")))
    await until(lambda: rig.channels["hook"].told and rig.channels["slack"].told)
    await rig.hub.configure({"hook": Channel("hook", "webhook")})
    assert rig.channels["slack"].closed == 1 and rig.channels["hook"].closed == 0
    await rig.holds.decide(hold.id, approve=True, by="person:ann", channel="cli")
    await until(lambda: hold.channels.get("slack", {}).get("event") == "hold.decided")
    assert hold.channels["slack"]["state"] == "failed"
    assert "not configured" in hold.channels["slack"]["error"]
    assert rig.channels["hook"].events() == ["hold.created", "hold.decided"]
    assert rig.channels["hook"].started == 1


class BrokenLinks:
    def mint(self, hold_id: str, *, audience: str, channel: str, expires_at: float) -> Links:
        raise RuntimeError("signed links need the public listener's URL, which is not set")


async def test_a_channel_is_told_without_links_when_none_can_be_made(rig: Rig) -> None:
    rig.hub.links = BrokenLinks()
    await rig.hold(HoldSettings(timeout=60, notify=("hook",)))
    await until(lambda: rig.channels["hook"].told)
    assert rig.channels["hook"].told[0].links is None
