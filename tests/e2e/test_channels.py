"""Remote channels end to end: a real `interlock run`, a held request from a real client, a real
webhook receiver and the public listener's signed links. The first final decision on any channel
releases or refuses the request, and every channel shows the same outcome."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import Running, Tls, start_interlock
from tests.e2e.test_gate import rows, wait_for_hold
from tests.e2e.upstream import Upstream
from tests.e2e.webhooks import HOOK_SECRET as SECRET
from tests.e2e.webhooks import Hook, channel_status, closed_port

CSRF_FIELD = re.compile(r'name="csrf" value="([^"]+)"')
POLICY = """version: 1
default: allow
channels:
  ops-hook:
    type: webhook
    url: {hook}
    secret: {{file: {secret}}}
  dead-hook:
    type: webhook
    url: http://127.0.0.1:{dead}/hook
    secret: {{file: {secret}}}
rules:
  - name: hold-deploy
    action: hold
    reason: Deploys need a person.
    timeout: 30s
    respond_pending_after: 25s
    notify: [ops-hook, dead-hook]
    match: {{method: POST, path: /deploy/**}}
  - name: hold-escalate
    action: hold
    reason: Nobody on the first channel answers in time.
    timeout: 30s
    respond_pending_after: 25s
    notify: [dead-hook]
    escalate: [{{after: 1s, notify: [ops-hook]}}]
    match: {{method: POST, path: /escalate/**}}
  - name: hold-payout
    action: hold
    reason: Payouts need two people.
    approvals: 2
    timeout: 30s
    respond_pending_after: 25s
    notify: [ops-hook]
    match: {{method: POST, path: /payout/**}}
"""


@pytest.fixture
async def running(
    tmp_path: Path, tls: Tls, upstream: Upstream, hook: Hook
) -> AsyncIterator[Running]:
    secret = tmp_path / "hook.secret"
    secret.write_text(SECRET)
    policy = POLICY.format(hook=hook.url, secret=secret, dead=closed_port())
    running = await start_interlock(tmp_path, tls, upstream, policy, public_listen=("127.0.0.1", 0))
    yield running
    await running.interlock.stop()


async def decide_by_link(review: str, action: str, reason: str = "") -> httpx.Response:
    """What a phone's browser does: open the page (no effect), then post its form."""
    async with httpx.AsyncClient(timeout=10, trust_env=False) as phone:
        page = await phone.get(review)
        assert page.status_code == 200, page.text
        found = CSRF_FIELD.search(page.text)
        assert found is not None
        form = {"csrf": found.group(1), "action": action, "reason": reason}
        return await phone.post(review.partition("?")[0], data=form)


async def test_a_webhook_link_releases_the_request_and_every_channel_shows_it(
    running: Running, hook: Hook
) -> None:
    async with running.client() as agent:
        held = asyncio.create_task(agent.post(running.url("/deploy/1"), content=b"{}"))
        (hold,) = await wait_for_hold(running)
        created = await hook.wait_for("hold.created", hold["id"])
        assert created["hold"]["rule"] == "hold-deploy" and created["links"] is not None
        assert "headers" not in created["hold"]
        answer = await decide_by_link(created["links"]["approve"], "approve")
        assert answer.status_code == 200, answer.text
        response = await held
    assert response.status_code == 200 and response.headers["X-Interlock-Decision"] == "approved"
    assert running.upstream.paths().count("/deploy/1") == 1
    decided = await hook.wait_for("hold.decided", hold["id"])
    assert decided["hold"]["state"] == "approved"
    assert decided["hold"]["decided_by"] == "person:link:ops-hook"
    assert decided["hold"]["channel"] == "link:ops-hook"
    (final,) = rows(running, kind="hold", hold_id=hold["id"])
    assert (final["outcome"], final["decided_by"]) == ("approved", "person:link:ops-hook")
    async with httpx.AsyncClient(timeout=10, trust_env=False) as phone:
        again = await phone.get(created["links"]["review"])
    assert again.status_code == 410 and "already used" in again.text.lower()


async def test_a_dead_channel_is_reported_and_does_not_stop_the_others(
    running: Running, hook: Hook
) -> None:
    async with running.client() as agent:
        held = asyncio.create_task(agent.post(running.url("/deploy/2"), content=b"{}"))
        (hold,) = await wait_for_hold(running)
        await hook.wait_for("hold.created", hold["id"])
        async with running.api() as api:
            shown = await channel_status(api, hold["id"], "dead-hook", "retrying")
            assert shown["state"] == "pending"
            assert shown["channels"]["ops-hook"]["state"] == "delivered"
            assert "127.0.0.1" in shown["channels"]["dead-hook"]["error"]
            denied = await api.post(
                f"/v1/holds/{hold['id']}/deny",
                json={"reason": "Not during the freeze."},
                headers={"X-Interlock-Channel": "cli"},
            )
            assert denied.status_code == 200
        response = await held
    assert response.status_code == 403 and response.json()["outcome"] == "denied"
    decided = await hook.wait_for("hold.decided", hold["id"])
    assert decided["hold"]["decision_reason"] == "Not during the freeze."
    assert decided["hold"]["channel"] == "cli"
    failures = [r for r in rows(running, kind="channel", hold_id=hold["id"])
                if r["channel"] == "dead-hook"]  # fmt: skip
    assert failures and all("127.0.0.1" in r["reason"] for r in failures)
    events = [e.type for e in running.interlock.events.since(0) or []]
    assert "channel.failed" in events and "channel.delivered" in events


async def test_a_quorum_needs_two_named_people_whatever_the_channel(
    running: Running, hook: Hook
) -> None:
    carol = running.interlock.tokens.add_operator("carol")
    async with running.client() as agent, running.api() as admin:
        held = asyncio.create_task(agent.post(running.url("/payout/1"), content=b"{}"))
        (hold,) = await wait_for_hold(running)
        created = await hook.wait_for("hold.created", hold["id"])
        # A webhook's link reaches everyone the webhook reaches: it is nobody in particular.
        shared = await decide_by_link(created["links"]["approve"], "approve")
        assert shared.status_code == 403 and "named person" in shared.text
        # A personal link, made by the operator `admin` for bob, counts as bob...
        made = await admin.post(f"/v1/holds/{hold['id']}/link", json={"for": "bob"})
        first = await decide_by_link(made.json()["approve"], "approve")
        assert first.status_code == 200 and "1 of 2" in first.text
        vote = await hook.wait_for("hold.vote", hold["id"])
        assert [v["by"] for v in vote["hold"]["votes"]] == ["person:link:bob"]
        # ...and as admin, who made it: admin cannot approve again in person.
        again = await admin.post(f"/v1/holds/{hold['id']}/approve", json={})
        assert again.status_code == 422 and "person:admin already approved" in again.text
        assert not held.done()
        headers = {"Authorization": f"Bearer {carol}"}
        second = await admin.post(f"/v1/holds/{hold['id']}/approve", json={}, headers=headers)
        assert second.status_code == 200 and second.json()["state"] == "approved"
        assert (await held).status_code == 200
    decided = await hook.wait_for("hold.decided", hold["id"])
    assert decided["hold"]["decided_by"] == "person:carol"
    (vote_row,) = rows(running, kind="vote")
    assert (vote_row["decided_by"], vote_row["channel"]) == ("person:link:bob", "link:manual:admin")
    assert json.loads(vote_row["detail"])["people"] == ["person:admin", "person:bob"]


async def test_an_agent_cannot_open_its_own_approval_link(running: Running, hook: Hook) -> None:
    async with running.client() as agent:
        held = asyncio.create_task(agent.post(running.url("/deploy/3"), content=b"{}"))
        (hold,) = await wait_for_hold(running)
        created = await hook.wait_for("hold.created", hold["id"])
        review = created["links"]["review"]
        assert review.startswith(running.interlock.remote.public_url or "-")
        through_proxy = await agent.get(review)
        assert through_proxy.status_code == 403
        assert through_proxy.headers["X-Interlock-Decision"] == "denied"
        async with running.api() as api:
            assert (await api.get(f"/v1/holds/{hold['id']}")).json()["state"] == "pending"
        held.cancel()


async def test_the_public_url_by_name_is_refused_before_any_connection(
    tmp_path: Path, tls: Tls, upstream: Upstream, hook: Hook
) -> None:
    secret = tmp_path / "hook.secret"
    secret.write_text(SECRET)
    policy = POLICY.format(hook=hook.url, secret=secret, dead=closed_port())
    running = await start_interlock(
        tmp_path,
        tls,
        upstream,
        policy,
        public_listen=("127.0.0.1", 0),
        public_url="https://approve.example.test",
    )
    try:
        assert running.interlock.remote.public_url == "https://approve.example.test"
        async with running.client() as agent:
            with pytest.raises(httpx.ProxyError, match="403"):
                await agent.get("https://approve.example.test/l/anything")
        (refused,) = rows(running, kind="request", host="approve.example.test")
        assert refused["outcome"] == "denied" and "own" in refused["reason"]
    finally:
        await running.interlock.stop()


async def test_escalation_tells_the_next_channel_after_its_delay(
    running: Running, hook: Hook
) -> None:
    async with running.client() as agent:
        held = asyncio.create_task(agent.post(running.url("/escalate/1"), content=b"{}"))
        (hold,) = await wait_for_hold(running)
        async with running.api() as api:
            shown = (await api.get(f"/v1/holds/{hold['id']}")).json()
        assert shown["channels"]["ops-hook"]["state"] == "scheduled"
        assert not any(e["hold"]["id"] == hold["id"] for e in hook.events)  # not yet
        created = await hook.wait_for("hold.created", hold["id"], timeout=5)
        assert created["escalated"] is True and created["links"] is not None
        assert created["sent_at"] >= int(hold["created_at"] + 1)  # whole seconds: not before
        answer = await decide_by_link(created["links"]["approve"], "approve")
        assert answer.status_code == 200
        assert (await held).status_code == 200
    decided = await hook.wait_for("hold.decided", hold["id"])
    assert decided["hold"]["decided_by"] == "person:link:ops-hook"
