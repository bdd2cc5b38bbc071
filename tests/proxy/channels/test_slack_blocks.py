"""The hold's Block Kit, checked against Slack's shapes and limits by the fake's validator."""

from __future__ import annotations

from typing import Any

from policies.model import Action, Decision, HoldSettings, Severity
from proxy.channels import slack_blocks as kit
from proxy.events import EventBus
from proxy.holds import HeldRequest, HoldQueue
from proxy.records import AuditRecord
from tests.proxy.channels.fakeslack import FakeSlack, block_errors, view_errors


class Audit:
    async def append(self, record: AuditRecord) -> int:
        return 1


async def held(
    *,
    agent: str = "deploy-bot",
    path: str = "/v13/deployments",
    body: str | None = '{"target": "production"}',
    reason: str = "Deploys need a person.",
    approvals: int = 1,
    reasons: tuple[str, ...] = (),
) -> tuple[HoldQueue, str]:
    queue = HoldQueue(Audit(), EventBus())
    request = HeldRequest("r_1", agent, "10.0.0.7:5123", "POST", "https", "api.vercel.com", 443,
                          path, "", (), len(body or ""), "", body)  # fmt: skip
    settings = HoldSettings(timeout=300, approvals=approvals, reasons=reasons)
    hold, _ = queue.open(request, Decision(Action.HOLD, "deploys", reason, Severity.HIGH, settings),
                         "k")  # fmt: skip
    queue.announce(hold)
    return queue, hold.id


def snapshot(queue: HoldQueue, hold_id: str) -> dict[str, Any]:
    hold = queue.get(hold_id)
    assert hold is not None
    return hold.to_json()


async def test_a_pending_hold_is_a_valid_message_with_both_buttons() -> None:
    queue, hold_id = await held()
    message = kit.hold_message(snapshot(queue, hold_id))
    assert block_errors(message.blocks, surface="message") == []
    shown = {"blocks": message.blocks, "text": message.text}
    assert FakeSlack.buttons(shown) == {kit.APPROVE_ACTION: hold_id, kit.DENY_ACTION: hold_id}
    assert message.text == "Approval needed: POST api.vercel.com by deploy-bot (1 approval needed)"
    assert '*Body (redacted)*\n```{"target": "production"}```' in FakeSlack.text_of(shown)
    await queue.expire_all("test over")


async def test_huge_values_are_clipped_to_slacks_limits() -> None:
    queue, hold_id = await held(agent="a" * 3000, path="/" + "p" * 10_000, body="b" * 50_000,
                                reason="r" * 5000, approvals=3)  # fmt: skip
    for voter in range(2):
        await queue.decide(
            hold_id, approve=True, by=f"person:slack:U{voter:09d}", channel="slack:x"
        )
    message = kit.hold_message(snapshot(queue, hold_id), escalated=True)
    assert block_errors(message.blocks, surface="message") == []
    assert len(message.text) <= 3000 and "…" in FakeSlack.text_of({"blocks": message.blocks})
    await queue.expire_all("test over")


async def test_slack_markup_in_request_data_is_shown_not_obeyed() -> None:
    queue, hold_id = await held(agent="<!channel>", body="hi <@U0BOSS> & <https://evil|click>")
    message = kit.hold_message(snapshot(queue, hold_id))
    text = FakeSlack.text_of({"blocks": message.blocks, "text": message.text})
    assert "<!channel>" not in text and "&lt;!channel&gt;" in message.text
    assert "<@U0BOSS>" not in text and "&lt;https://evil|click&gt;" in text
    await queue.expire_all("test over")


async def test_votes_are_counted_and_named() -> None:
    queue, hold_id = await held(approvals=2)
    await queue.decide(hold_id, approve=True, by="person:slack:U0ALICE", channel="slack:ops")
    message = kit.hold_message(snapshot(queue, hold_id))
    shown = {"blocks": message.blocks}
    assert "*Approvals:* 1 of 2 approvals (by <@U0ALICE>)" in FakeSlack.text_of(shown)
    assert FakeSlack.buttons(shown)
    await queue.expire_all("test over")


async def test_outcomes_drop_the_buttons_and_say_who_where_and_why() -> None:
    queue, hold_id = await held()
    await queue.decide(hold_id, approve=False, by="person:slack:U0BOB", channel="slack:ops",
                       reason="Use staging.")  # fmt: skip
    denied = kit.hold_message(snapshot(queue, hold_id))
    assert block_errors(denied.blocks, surface="message") == []
    assert FakeSlack.buttons({"blocks": denied.blocks}) == {}
    assert ":no_entry: *Denied* by <@U0BOB> via `slack:ops`\n>Use staging." in FakeSlack.text_of(
        {"blocks": denied.blocks}
    )
    assert denied.text == "Denied: POST api.vercel.com (decided by person:slack:U0BOB)"

    queue, hold_id = await held()
    hold = queue.get(hold_id)
    assert hold is not None
    await queue.expire(hold, "nobody decided before the deadline")
    expired = FakeSlack.text_of({"blocks": kit.hold_message(hold.to_json()).blocks})
    assert ":hourglass: *Expired*\n>nobody decided before the deadline" in expired


def test_deadlines_render_in_each_readers_time_zone_with_a_utc_fallback() -> None:
    assert kit.slack_date(1_700_000_000.4) == (
        "<!date^1700000000^{date_short_pretty} at {time}|2023-11-14 22:13 UTC>"
    )


async def test_the_deny_modal_offers_presets_and_carries_its_message() -> None:
    presets = tuple(f"Preset {n} " + "x" * 200 for n in range(150))
    queue, hold_id = await held(reasons=presets)
    meta = {"notifier": "ops", "hold": hold_id, "channel": "C0OPS", "ts": "1.000001"}
    view = kit.deny_modal(snapshot(queue, hold_id), meta)
    assert view_errors(view) == []
    (select,) = [b for b in view["blocks"] if b.get("block_id") == kit.PRESET_BLOCK]
    assert select["optional"] and len(select["element"]["options"]) == 100
    assert kit.metadata({"view": view}) == meta
    assert view_errors(kit.deny_modal(None, meta)) == []
    await queue.expire_all("test over")


def test_the_deny_reason_joins_the_preset_and_the_text() -> None:
    def submitted(preset: str | None, typed: str | None) -> dict[str, Any]:
        chosen = (
            {"text": {"type": "plain_text", "text": preset}, "value": preset} if preset else None
        )
        return {"state": {"values": {
            kit.PRESET_BLOCK: {kit.PRESET_INPUT: {"type": "static_select", "selected_option": chosen}},
            kit.REASON_BLOCK: {kit.REASON_INPUT: {"type": "plain_text_input", "value": typed}},
        }}}  # fmt: skip

    assert kit.deny_reason(submitted("Not now", " Freeze. ")) == "Not now: Freeze."
    assert kit.deny_reason(submitted(None, "Freeze.")) == "Freeze."
    assert kit.deny_reason(submitted("Not now", "  ")) == "Not now"
    assert kit.deny_reason(submitted(None, "  ")) == ""
    assert kit.deny_reason({}) == ""
