"""The public listener in-process, over a real hold queue and a real audit store."""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from policies.model import Action, Decision, HoldSettings, Severity
from proxy.audit import AuditStore
from proxy.channels.base import Links
from proxy.channels.links import KEY_BYTES, LinkSigner
from proxy.events import EventBus
from proxy.holds import HeldRequest, Hold, HoldQueue
from proxy.outcomes import Outcome
from proxy.public import SECURITY_HEADERS, SlackInteractions, create_public_app

URL = "https://approve.example.com"
CSRF_FIELD = re.compile(r'name="csrf" value="([^"]+)"')


def held_request(n: int) -> HeldRequest:
    return HeldRequest(
        request_id=f"r_{n}", agent="deploy-bot", client="10.0.0.7", method="POST",
        scheme="https", host="api.example.com", port=443, path=f"/deploy/web-{n}",
        query="env=prod", headers=(("content-type", "application/json"),), body_size=41,
        body_sha256="0" * 64, body_preview='{"ref": "main", "note": "<script>x</script>"}',
    )  # fmt: skip


@dataclass
class Public:
    """A public app over real core parts; `client()` is a browser-like client with a cookie jar."""

    store: AuditStore
    holds: HoldQueue
    links: LinkSigner
    app: Starlette

    def hold(
        self, n: int = 1, *, approvals: int = 1, timeout: float = 300, reasons: tuple[str, ...] = ()
    ) -> Hold:
        settings = HoldSettings(timeout=timeout, approvals=approvals, reasons=reasons)
        decision = Decision(Action.HOLD, "deploy-prod", "Deploys to prod need a person.",
                            Severity.HIGH, settings)  # fmt: skip
        hold, _ = self.holds.open(held_request(n), decision, key=f"key-{n}")
        self.holds.announce(hold)
        return hold

    def link(self, hold: Hold, audience: str = "alice", *, expires_at: float | None = None) -> str:
        made = self.links.mint(hold.id, audience=audience, channel="manual",
                               expires_at=hold.deadline if expires_at is None else expires_at)  # fmt: skip
        return path_of(made)

    def client(self, **headers: str) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(self.app, client=("198.51.100.7", 40000))
        return httpx.AsyncClient(transport=transport, base_url=URL, headers=headers)

    async def hold_rows(self) -> list[dict[str, object]]:
        await self.store.flush()
        return await self.store.query(kind="hold")


def path_of(links: Links) -> str:
    assert links.review.startswith(f"{URL}/l/")
    return links.review.removeprefix(URL)


async def open_form(client: httpx.AsyncClient, path: str) -> str:
    page = await client.get(path)
    assert page.status_code == 200, page.text
    found = CSRF_FIELD.search(page.text)
    assert found is not None
    return found.group(1)


async def submit(
    client: httpx.AsyncClient, path: str, action: str, reason: str = "", **extra: str
) -> httpx.Response:
    csrf = await open_form(client, path)
    return await client.post(path, data={"csrf": csrf, "action": action, "reason": reason} | extra)


@pytest.fixture
async def public(tmp_path: Path) -> AsyncIterator[Public]:
    store = await AuditStore.open(tmp_path / "audit.db")
    holds = HoldQueue(store, EventBus())
    links = LinkSigner(secrets.token_bytes(KEY_BYTES), URL)
    try:
        yield Public(store, holds, links, create_public_app(holds=holds, links=links))
    finally:
        await holds.expire_all("test over")
        await store.close()


# -- looking ------------------------------------------------------------------------------------


async def test_opening_a_link_shows_the_request_and_changes_nothing(public: Public) -> None:
    hold = public.hold(reasons=("Not during the freeze", "Use staging"))
    path = public.link(hold)
    async with public.client() as client:
        page = await client.get(path)
        for method, suffix in [("HEAD", ""), ("GET", "?action=approve"), ("GET", "?action=deny")]:
            assert (await client.request(method, path + suffix)).status_code == 200
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    html = page.text
    for fact in ["deploy-bot", "POST https://api.example.com/deploy/web-1?env=prod", "deploy-prod",
                 "Deploys to prod need a person.", "high", "This link is for alice",
                 "&lt;script&gt;x&lt;/script&gt;", "Not during the freeze", "Use staging",
                 'name="viewport" content="width=device-width']:  # fmt: skip
        assert fact in html
    assert "<script" not in html and "approvals" not in html
    assert re.search(r"Decide within</dt><dd>(4m5\ds|5m) \(by \d\d:\d\d:\d\d UTC\)", html)
    assert hold.pending and hold.votes == [] and await public.hold_rows() == []
    for name, value in SECURITY_HEADERS.items():
        assert page.headers[name] == value
    csp = page.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp and "script" not in csp
    cookie = page.headers["set-cookie"]
    assert cookie.startswith("__Host-interlock_csrf=")
    assert {"HttpOnly", "Secure", "Path=/", "SameSite=strict"} <= {
        part.strip() for part in cookie.split(";")
    }


async def test_a_quorum_page_counts_the_votes(public: Public) -> None:
    hold = public.hold(approvals=2)
    await public.holds.decide(hold.id, approve=True, by="person:carol", channel="cli")
    async with public.client() as client:
        page = await client.get(public.link(hold))
    assert "1 of 2 approvals so far" in page.text


async def test_bad_expired_and_unknown_links_each_say_so(public: Public) -> None:
    hold = public.hold()
    path = public.link(hold)
    gone = public.links.mint("h_000000000000", audience="alice", channel="manual",
                             expires_at=time.time() + 60)  # fmt: skip
    cases = [
        (path[:-2] + ("AA" if not path.endswith("AA") else "BA"), 404, "This link is not valid"),
        ("/l/not-a-token", 404, "This link is not valid"),
        (public.link(hold, expires_at=time.time() - 1), 410, "This link has expired"),
        (path_of(gone), 404, "This request is no longer waiting"),
    ]
    async with public.client() as client:
        for target, status, text in cases:
            for method in ("GET", "POST"):
                answer = await client.request(method, target, data={"action": "approve"})
                assert (answer.status_code, text in answer.text) == (status, True), (target, method)
                assert answer.headers["x-frame-options"] == "DENY"
    assert hold.pending


async def test_a_hold_decided_elsewhere_or_expired_is_not_offered(public: Public) -> None:
    decided, expired = public.hold(1), public.hold(2)
    paths = public.link(decided), public.link(expired)
    stale = public.link(decided, expires_at=time.time() - 1)
    await public.holds.decide(decided.id, approve=False, by="person:carol", channel="cli",
                              reason="wrong branch")  # fmt: skip
    await public.holds.expire(expired, "nobody decided before the deadline")
    async with public.client() as client:
        old = await client.get(stale)
    assert old.status_code == 410 and "This link has expired." in old.text
    assert "The request was denied by person:carol via cli (wrong branch)." in old.text
    async with public.client() as client:
        first, second = await client.get(paths[0]), await client.get(paths[1])
    assert first.status_code == 409
    assert "Already decided: denied by person:carol via cli (wrong branch)." in first.text
    assert second.status_code == 410 and "This request expired" in second.text
    assert 'name="csrf"' not in first.text + second.text


# -- deciding -----------------------------------------------------------------------------------


async def test_approve_through_a_link_is_recorded_and_the_link_is_then_used(
    public: Public,
) -> None:
    hold = public.hold()
    path = public.link(hold, "alice")
    async with public.client() as client:
        answer = await submit(client, path, "approve", "  expected deploy ", Origin=URL)
        assert answer.status_code == 200
        assert "Approved — the request was released." in answer.text
        assert hold.done.result() is Outcome.APPROVED
        assert (hold.decided_by, hold.channel, hold.decision_reason) == (
            "person:link:alice", "link:manual", "expected deploy")  # fmt: skip
        [row] = await public.hold_rows()
        assert (row["outcome"], row["decided_by"], row["channel"], row["reason"]) == (
            "approved", "person:link:alice", "link:manual", "expected deploy")  # fmt: skip
        again = await client.get(path)
        assert again.status_code == 410 and "This link was already used." in again.text
        assert "approved by person:link:alice via link:manual" in again.text
        replay = await client.post(path, data={"action": "deny", "reason": "changed my mind"})
        assert replay.status_code == 410 and hold.state is Outcome.APPROVED


async def test_a_deny_needs_a_reason_and_a_preset_is_one(public: Public) -> None:
    hold = public.hold(reasons=("Not during the freeze",))
    path = public.link(hold)
    async with public.client() as client:
        for reason in ["", "   "]:
            refused = await submit(client, path, "deny", reason)
            assert refused.status_code == 400
            assert "A denial needs a reason" in refused.text and 'name="csrf"' in refused.text
        assert hold.pending and await public.hold_rows() == []
        too_long = await submit(client, path, "deny", "x" * 1001)
        assert too_long.status_code == 400 and "under 1000 characters" in too_long.text
        unknown = await submit(client, path, "maybe")
        assert unknown.status_code == 400 and "Choose Approve or Deny." in unknown.text
        forged = await submit(client, path, "deny", preset="not one of the presets")
        assert forged.status_code == 400 and hold.pending
        denied = await submit(client, path, "deny", preset="Not during the freeze")
    assert denied.status_code == 200 and "The agent was told: Not during the freeze" in denied.text
    assert (hold.state, hold.decision_reason) == (Outcome.DENIED, "Not during the freeze")


async def test_a_typed_reason_wins_over_a_preset(public: Public) -> None:
    hold = public.hold(reasons=("Not during the freeze",))
    async with public.client() as client:
        await submit(
            client, public.link(hold), "deny", "use staging", preset="Not during the freeze"
        )
    assert hold.decision_reason == "use staging"


async def test_a_post_without_the_pages_csrf_proof_decides_nothing(public: Public) -> None:
    hold, other = public.hold(1), public.hold(2)
    path = public.link(hold)
    async with public.client() as client, public.client() as stranger:
        csrf = await open_form(client, path)
        other_csrf = await open_form(client, public.link(other))
        await open_form(stranger, path)  # a cookie of its own, but not the victim's field
        attempts = [
            (client, {"action": "approve"}, {}),
            (client, {"action": "approve", "csrf": "x" + csrf[1:]}, {}),
            (client, {"action": "approve", "csrf": other_csrf}, {}),
            (stranger, {"action": "approve", "csrf": csrf}, {}),
            (client, {"action": "approve", "csrf": csrf}, {"Origin": "https://evil.example"}),
            (client, {"action": "approve", "csrf": csrf}, {"Origin": "null"}),
            (client, {"action": "approve", "csrf": csrf}, {"Referer": "https://evil.example/x"}),
            (client, {"action": "approve", "csrf": csrf}, {"Origin": "http://approve.example.com"}),
        ]
        for who, form, headers in attempts:
            answer = await who.post(path, data=form, headers=headers)
            assert answer.status_code == 403, (form, headers)
            assert "Nothing was decided" in answer.text
        assert hold.pending and await public.hold_rows() == []
        cookieless = httpx.AsyncClient(transport=httpx.ASGITransport(public.app), base_url=URL)
        async with cookieless:
            answer = await cookieless.post(path, data={"action": "approve", "csrf": csrf})
            assert answer.status_code == 403 and "cookie" in answer.text
        kind = await client.post(path, content=b"action=approve&csrf=" + csrf.encode(),
                                 headers={"Content-Type": "text/plain"})  # fmt: skip
        assert kind.status_code == 415
        huge = await client.post(path, data={"action": "approve", "csrf": csrf, "x": "y" * 20_000})
        assert huge.status_code == 413 and hold.pending
        referred = await client.post(path, data={"action": "approve", "csrf": csrf},
                                     headers={"Referer": f"{URL}{path}?action=approve"})  # fmt: skip
    assert referred.status_code == 200 and hold.state is Outcome.APPROVED


async def test_a_quorum_takes_links_for_different_people(public: Public) -> None:
    hold = public.hold(approvals=2)
    async with public.client() as client:
        first = await submit(client, public.link(hold, "alice"), "approve")
        assert first.status_code == 200
        assert "Your approval was counted: 1 of 2 approvals." in first.text and hold.pending
        again = public.link(hold, "alice")
        twice = await submit(client, again, "approve")
        assert twice.status_code == 422 and "already approved" in twice.text
        assert public.links.verify(again.rsplit("/", 1)[1])  # not spent: alice may still deny
        second = await submit(client, public.link(hold, "bob"), "approve")
    assert second.status_code == 200 and "Approved — the request was released." in second.text
    assert hold.state is Outcome.APPROVED and hold.decided_by == "person:link:bob"
    assert [v.by for v in hold.votes] == ["person:link:alice"]


async def test_an_unrecorded_decision_releases_nothing(public: Public) -> None:
    hold = public.hold()
    path = public.link(hold)
    async with public.client() as client:
        csrf = await open_form(client, path)
        await public.store.close()
        answer = await client.post(path, data={"action": "approve", "csrf": csrf})
    assert answer.status_code == 503 and "could not be recorded" in answer.text
    assert hold.state is Outcome.ERROR


# -- nothing else -------------------------------------------------------------------------------


async def test_nothing_of_the_control_api_is_here(public: Public) -> None:
    hold = public.hold()
    async with public.client(Authorization="Bearer ilo_anything") as client:
        for method, path in [
            ("GET", "/v1/holds"), ("GET", f"/v1/holds/{hold.id}"), ("POST", f"/v1/holds/{hold.id}/approve"),
            ("POST", f"/v1/holds/{hold.id}/link"), ("GET", "/openapi.json"), ("GET", "/docs"),
            ("GET", "/v1/events"), ("POST", "/v1/lockdown"), ("GET", "/"), ("GET", "/l/"),
            ("GET", "/slack/interactions"), ("POST", "/slack/interactions"),
        ]:  # fmt: skip
            answer = await client.request(method, path)
            assert answer.status_code in (404, 405), (method, path)
            assert answer.headers["content-type"].startswith("text/html")
            assert hold.id not in answer.text and "openapi" not in answer.text.lower()
            assert (
                answer.headers["content-security-policy"]
                == SECURITY_HEADERS["Content-Security-Policy"]
            )
        health = await client.get("/healthz")
    assert health.status_code == 200 and health.json() == {"ok": True}
    assert hold.pending


class EchoSlack:
    """Stands in for the Slack channel's endpoint, which checks Slack's signature itself."""

    def __init__(self) -> None:
        self.seen: list[bytes] = []

    async def handle(self, request: Request) -> Response:
        self.seen.append(await request.body())
        return JSONResponse({"ok": True})


async def test_slack_interactions_are_handed_to_the_slack_channel(public: Public) -> None:
    slack: SlackInteractions = EchoSlack()
    app = create_public_app(holds=public.holds, links=public.links, slack=slack)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url=URL) as client:
        answer = await client.post("/slack/interactions", content=b"payload=%7B%7D")
    assert answer.status_code == 200 and answer.json() == {"ok": True}
    assert isinstance(slack, EchoSlack) and slack.seen == [b"payload=%7B%7D"]
    assert answer.headers["cache-control"] == "no-store"


async def test_plain_http_listener_uses_a_plain_cookie(public: Public) -> None:
    public.links.public_url = "http://127.0.0.1:8080"
    hold = public.hold()
    made = public.links.mint(hold.id, audience="alice", channel="manual", expires_at=hold.deadline)
    async with public.client() as client:
        page = await client.get(made.review.removeprefix("http://127.0.0.1:8080"))
    cookie = page.headers["set-cookie"]
    assert cookie.startswith("interlock_csrf=") and "Secure" not in cookie
