"""Slack end to end: a real `interlock run` posts to a local Slack that speaks the Web API and
Socket Mode; a click there releases or refuses the agent's real request, and the webhook and the
Slack message both show the outcome, wherever it was decided."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

import proxy.channels.slack_blocks as kit
from tests.e2e.conftest import Running, Tls, start_interlock
from tests.e2e.test_channels import CSRF_FIELD
from tests.e2e.test_gate import rows, wait_for_hold
from tests.e2e.upstream import Upstream
from tests.e2e.webhooks import HOOK_SECRET, Hook, channel_status
from tests.proxy.channels.fakeslack import FakeSlack

ALICE, BOB, MALLORY = "U0ALICE", "U0BOB", "U0MALLORY"
SIGNING_SECRET = "e2e-signing-secret-0123456789"
POLICY = """version: 1
default: allow
channels:
  ops-slack:
    type: slack
    channel: "#ops"
    api_url: {api}
    bot_token: {{file: {bot}}}
    approvers: [{alice}, {bob}]
    {mode}
  ops-hook:
    type: webhook
    url: {hook}
    secret: {{file: {hook_secret}}}
rules:
  - name: hold-deploy
    action: hold
    reason: Deploys need a person.
    reasons: [Not during the freeze]
    timeout: 30s
    respond_pending_after: 25s
    notify: [ops-slack, ops-hook]
    match: {{method: POST, path: /deploy/**}}
  - name: hold-payout
    action: hold
    reason: Payouts need two people.
    approvals: 2
    timeout: 30s
    respond_pending_after: 25s
    notify: [ops-slack, ops-hook]
    match: {{method: POST, path: /payout/**}}
"""


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    fake = await FakeSlack(channels={"C0OPS": "ops"}).start()
    yield fake
    await fake.close()


async def start(
    tmp_path: Path,
    tls: Tls,
    upstream: Upstream,
    slack: FakeSlack,
    hook: Hook,
    *,
    mode: str,
    bot_token: str | None = None,
) -> Running:
    secrets = {"bot": bot_token or slack.bot_token, "app": slack.app_token, "signing": SIGNING_SECRET,
               "hook_secret": HOOK_SECRET}  # fmt: skip
    paths = {}
    for name, value in secrets.items():
        paths[name] = tmp_path / f"{name}.secret"
        paths[name].write_text(value + "\n")
    if mode == "socket":
        mode_lines = f"app_token: {{file: {paths['app']}}}"
    else:
        mode_lines = f"mode: http\n    signing_secret: {{file: {paths['signing']}}}"
    policy = POLICY.format(api=slack.api_url, bot=paths["bot"], alice=ALICE, bob=BOB,
                           mode=mode_lines, hook=hook.url, hook_secret=paths["hook_secret"])  # fmt: skip
    return await start_interlock(tmp_path, tls, upstream, policy, public_listen=("127.0.0.1", 0))


@pytest.fixture
async def socket_gate(
    tmp_path: Path, tls: Tls, upstream: Upstream, slack: FakeSlack, hook: Hook
) -> AsyncIterator[Running]:
    running = await start(tmp_path, tls, upstream, slack, hook, mode="socket")
    yield running
    await running.interlock.stop()


async def until(check: Callable[[], object], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.02)


def posted(slack: FakeSlack) -> tuple[str, str, dict[str, Any]]:
    return slack.only_message()


async def held_on_slack(
    running: Running, slack: FakeSlack, agent: httpx.AsyncClient, path: str
) -> tuple[asyncio.Task[httpx.Response], dict[str, Any]]:
    task = asyncio.create_task(agent.post(running.url(path), content=b'{"ref": "main"}'))
    (hold,) = await wait_for_hold(running)
    await until(lambda: slack.messages)
    return task, hold


async def click(slack: FakeSlack, user: str, action: str) -> None:
    channel, ts, _ = posted(slack)
    await slack.ack(await slack.push(slack.click(user, channel, ts, action)))


async def test_approve_in_slack_releases_the_request_and_the_webhook_says_so(
    socket_gate: Running, slack: FakeSlack, hook: Hook
) -> None:
    async with socket_gate.client() as agent:
        held, hold = await held_on_slack(socket_gate, slack, agent, "/deploy/1")
        text = slack.text_of(posted(slack)[2])
        assert "hold-deploy" in text and "/deploy/1" in text
        await click(slack, MALLORY, kit.APPROVE_ACTION)  # not an approver: nothing happens
        await until(lambda: slack.ephemerals)
        assert not held.done()
        await click(slack, ALICE, kit.APPROVE_ACTION)
        response = await asyncio.wait_for(held, 10)
    assert response.status_code == 200 and response.headers["X-Interlock-Decision"] == "approved"
    assert socket_gate.upstream.paths().count("/deploy/1") == 1
    decided = await hook.wait_for("hold.decided", hold["id"])
    assert (decided["hold"]["decided_by"], decided["hold"]["channel"]) == (
        f"person:slack:{ALICE}", "slack:ops-slack")  # fmt: skip
    (final,) = rows(socket_gate, kind="hold", hold_id=hold["id"])
    assert (final["outcome"], final["decided_by"]) == ("approved", f"person:slack:{ALICE}")
    await until(lambda: not slack.buttons(posted(slack)[2]))


async def test_deny_in_slack_gives_the_agent_the_reason_from_the_modal(
    socket_gate: Running, slack: FakeSlack
) -> None:
    async with socket_gate.client() as agent:
        held, _ = await held_on_slack(socket_gate, slack, agent, "/deploy/2")
        await click(slack, BOB, kit.DENY_ACTION)
        await until(lambda: slack.views)
        ((view_id, _),) = slack.views.items()
        form = slack.submit(view_id, BOB, {kit.REASON_INPUT: "Ship after the freeze."})
        await slack.ack(await slack.push(form, accepts_response_payload=True))
        response = await asyncio.wait_for(held, 10)
    assert response.status_code == 403
    body = response.json()
    assert body["outcome"] == "denied" and "Ship after the freeze." in body["reason"]
    assert body["decided_by"] == f"person:slack:{BOB}"


async def test_a_decision_in_the_cli_updates_the_slack_message_without_buttons(
    socket_gate: Running, slack: FakeSlack, hook: Hook
) -> None:
    async with socket_gate.client() as agent:
        held, hold = await held_on_slack(socket_gate, slack, agent, "/deploy/3")
        as_first_shown = dict(posted(slack)[2])
        async with socket_gate.api() as api:
            answer = await api.post(f"/v1/holds/{hold['id']}/deny",
                                    json={"reason": "Use staging."},
                                    headers={"X-Interlock-Channel": "cli"})  # fmt: skip
            assert answer.status_code == 200
        assert (await held).status_code == 403
    channel, ts, _ = posted(slack)
    await until(lambda: not slack.buttons(slack.messages[(channel, ts)]))
    shown = slack.text_of(slack.messages[(channel, ts)])
    assert "Denied" in shown and "cli" in shown and "Use staging." in shown
    assert any(c["channel"] == channel and c["ts"] == ts for c in slack.called("chat.update"))
    # A client that still shows the old buttons (Slack may, a while) decides nothing.
    slack.messages[(channel, ts)] = as_first_shown
    await slack.ack(await slack.push(slack.click(ALICE, channel, ts, kit.APPROVE_ACTION)))
    await until(lambda: slack.ephemerals)
    assert "already decided" in slack.ephemerals[-1]["text"]


async def test_a_denial_through_a_link_shows_in_slack_and_the_webhook(
    socket_gate: Running, slack: FakeSlack, hook: Hook
) -> None:
    async with socket_gate.client() as agent, socket_gate.api() as api:
        held, hold = await held_on_slack(socket_gate, slack, agent, "/deploy/6")
        made = (await api.post(f"/v1/holds/{hold['id']}/link", json={"for": "bob"})).json()
        async with httpx.AsyncClient(timeout=10, trust_env=False) as phone:
            page = await phone.get(made["deny"])
            csrf = CSRF_FIELD.search(page.text)
            assert page.status_code == 200 and csrf is not None
            form = {"csrf": csrf.group(1), "action": "deny", "reason": "Not on a Friday."}
            answer = await phone.post(made["review"], data=form)
        assert answer.status_code == 200
        response = await held
    assert response.status_code == 403 and "Not on a Friday." in response.json()["reason"]
    channel, ts, _ = posted(slack)
    await until(lambda: not slack.buttons(slack.messages[(channel, ts)]))
    shown = slack.text_of(slack.messages[(channel, ts)])
    assert "Denied" in shown and "person:link:bob" in shown and "Not on a Friday." in shown
    decided = await hook.wait_for("hold.decided", hold["id"])
    assert decided["hold"]["decided_by"] == "person:link:bob"
    assert decided["hold"]["channel"] == "link:manual:admin"


async def test_a_quorum_takes_one_vote_in_slack_and_one_from_an_operator(
    socket_gate: Running, slack: FakeSlack, hook: Hook
) -> None:
    async with socket_gate.client() as agent:
        held, hold = await held_on_slack(socket_gate, slack, agent, "/payout/1")
        await click(slack, ALICE, kit.APPROVE_ACTION)
        vote = await hook.wait_for("hold.vote", hold["id"])
        assert [v["by"] for v in vote["hold"]["votes"]] == [f"person:slack:{ALICE}"]
        await until(lambda: "1 of 2" in slack.text_of(posted(slack)[2]))
        await click(slack, ALICE, kit.APPROVE_ACTION)  # the same person cannot count twice
        await until(lambda: slack.ephemerals)
        assert not held.done()
        async with socket_gate.api() as api:
            final = await api.post(f"/v1/holds/{hold['id']}/approve", json={})
            assert final.status_code == 200 and final.json()["state"] == "approved"
        assert (await held).status_code == 200
    await until(lambda: not slack.buttons(posted(slack)[2]))
    assert [r["decided_by"] for r in rows(socket_gate, kind="vote")] == [f"person:slack:{ALICE}"]


async def test_http_mode_decides_through_the_public_listener_with_a_signed_call(
    tmp_path: Path, tls: Tls, upstream: Upstream, slack: FakeSlack, hook: Hook
) -> None:
    running = await start(tmp_path, tls, upstream, slack, hook, mode="http")
    try:
        url = f"{running.interlock.remote.public_url}/slack/interactions"
        async with running.client() as agent:
            held, hold = await held_on_slack(running, slack, agent, "/deploy/4")
            channel, ts, _ = posted(slack)
            payload = slack.click(ALICE, channel, ts, kit.APPROVE_ACTION)
            body, headers = slack.signed(payload, "not-the-secret")
            async with httpx.AsyncClient(trust_env=False, timeout=10) as slack_client:
                forged = await slack_client.post(url, content=body, headers=headers)
                stale = slack.signed(payload, SIGNING_SECRET, at=1_000_000_000.0)
                old = await slack_client.post(url, content=stale[0], headers=stale[1])
                assert (forged.status_code, old.status_code) == (401, 401)
                assert not held.done()
                body, headers = slack.signed(payload, SIGNING_SECRET)
                signed = await slack_client.post(url, content=body, headers=headers)
                assert signed.status_code == 200
            response = await asyncio.wait_for(held, 10)
        assert response.status_code == 200
        decided = await hook.wait_for("hold.decided", hold["id"])
        assert decided["hold"]["decided_by"] == f"person:slack:{ALICE}"
    finally:
        await running.interlock.stop()


async def test_slack_refusing_the_token_is_reported_and_the_hold_still_waits(
    tmp_path: Path, tls: Tls, upstream: Upstream, slack: FakeSlack, hook: Hook
) -> None:
    running = await start(tmp_path, tls, upstream, slack, hook, mode="socket",
                          bot_token="xoxb-revoked")  # fmt: skip
    try:
        async with running.client() as agent:
            held = asyncio.create_task(agent.post(running.url("/deploy/5"), content=b"{}"))
            (hold,) = await wait_for_hold(running)
            await hook.wait_for("hold.created", hold["id"])
            async with running.api() as api:
                shown = await channel_status(api, hold["id"], "ops-slack", "failed")
                assert shown["state"] == "pending"
                await api.post(f"/v1/holds/{hold['id']}/approve", json={})
            assert (await held).status_code == 200
        failed = [json.loads(r["detail"]) for r in rows(running, kind="channel")
                  if r["channel"] == "ops-slack"]  # fmt: skip
        assert failed and failed[0]["status"] == "failed"
    finally:
        await running.interlock.stop()
