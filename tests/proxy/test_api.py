"""The control API in-process: auth, decisions, events, the audit log, lockdown and OpenAPI."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, field
from ipaddress import ip_network
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Route

from policies.model import Action, Decision, HoldSettings
from proxy.api import ApiSettings, create_app
from proxy.audit import AuditStore
from proxy.channels.links import KEY_BYTES, LinkSigner
from proxy.events import EventBus
from proxy.holds import HeldRequest, Hold, HoldQueue
from proxy.lockdown import Lockdown
from proxy.outcomes import Outcome
from proxy.records import AuditRecord, Kind
from proxy.tokens import TokenStore

# -- shared with test_apiserver.py and test_cli_operate.py --------------------------------------


class MemoryAudit:
    """The audit store's read and write surface, kept in a list; `fail` makes appends raise."""

    def __init__(self) -> None:
        self.records: list[AuditRecord] = []
        self.healthy = True
        self.fail = False
        self.queries: list[dict[str, Any]] = []

    async def append(self, record: AuditRecord) -> int:
        if self.fail:
            raise OSError("disk full")
        self.records.append(record)
        return len(self.records)

    def rows(self) -> list[dict[str, Any]]:
        return [asdict(r) | {"seq": seq} for seq, r in enumerate(self.records, 1)]

    async def query(
        self,
        *,
        since: float | None = None,
        until: float | None = None,
        agent: str | None = None,
        host: str | None = None,
        outcome: str | None = None,
        rule: str | None = None,
        kind: str = "request",
        limit: int = 100,
        before_seq: int | None = None,
    ) -> list[dict[str, Any]]:
        asked = {"since": since, "until": until, "agent": agent, "host": host}
        self.queries.append(asked | {"outcome": outcome, "rule": rule, "limit": limit})
        wanted = {"kind": kind, "agent": agent, "host": host, "outcome": outcome, "rule": rule}
        found = [
            row
            for row in reversed(self.rows())
            if all(v is None or row[k] == v for k, v in wanted.items())
            and (since is None or row["at"] >= since)
            and (until is None or row["at"] <= until)
            and (before_seq is None or row["seq"] < before_seq)
        ]
        return found[:limit]

    async def trail(self, request_id: str) -> list[dict[str, Any]]:
        return [row for row in self.rows() if row["request_id"] == request_id]

    async def stats_for_rule(self, rule: str) -> dict[str, Any]:
        return {"rule": rule, "requests": sum(1 for r in self.records if r.rule == rule)}


def held_request(
    n: int = 1, agent: str = "bot", path: str = "/repos/acme/web/merge"
) -> HeldRequest:
    return HeldRequest(
        request_id=f"r_{n}", agent=agent, client="127.0.0.1", method="PUT", scheme="https",
        host="api.github.com", port=443, path=path, query="", headers=(("accept", "*/*"),),
        body_size=0, body_sha256="", body_preview=None,
    )  # fmt: skip


def open_hold(
    holds: HoldQueue, n: int = 1, *, approvals: int = 1, timeout: float = 300, agent: str = "bot"
) -> Hold:
    decision = Decision(
        action=Action.HOLD,
        rule="r",
        reason="why",
        hold=HoldSettings(timeout=timeout, approvals=approvals),
    )
    hold, joined = holds.open(held_request(n, agent), decision, key=f"key-{n}")
    assert not joined
    holds.announce(hold)
    return hold


@dataclass
class Core:
    """The real core objects behind one API app, plus tokens for two operators."""

    tmp: Path
    audit: MemoryAudit = field(default_factory=MemoryAudit)
    events: EventBus = field(default_factory=EventBus)
    reload_result: dict[str, Any] = field(
        default_factory=lambda: {"ok": True, "errors": [], "rules": 3, "digest": "abc"}
    )
    settings: ApiSettings = field(default_factory=lambda: ApiSettings(version="9.9"))
    public_url: str | None = "https://approve.example.com"  # None: no public listener

    def __post_init__(self) -> None:
        self.links = LinkSigner(secrets.token_bytes(KEY_BYTES), self.public_url or "")
        self.holds = HoldQueue(self.audit, self.events)
        self.lockdown = Lockdown(self.audit, self.events)
        self.tokens = TokenStore(self.tmp / "tokens.json")
        self.admin = self.tokens.add_operator("alice")
        self.second = self.tokens.add_operator("bob")
        self.viewer = self.tokens.add_operator("eve", read_only=True)

    async def reload_policy(self) -> dict[str, Any]:
        return self.reload_result

    def app(self, **settings: Any) -> Starlette:
        if settings:
            self.settings = ApiSettings(**({"version": "9.9"} | settings))
        return create_app(
            holds=self.holds, lockdown=self.lockdown, events=self.events, audit=self.audit,
            tokens=self.tokens, reload_policy=self.reload_policy, settings=self.settings,
            links=self.links if self.public_url else None,
        )  # fmt: skip


def api_client(
    app: Starlette,
    token: str | None,
    *,
    client: tuple[str, int] = ("127.0.0.1", 5000),
    **headers: str,
) -> httpx.AsyncClient:
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    transport = httpx.ASGITransport(app, client=client)
    return httpx.AsyncClient(transport=transport, base_url="http://interlock", headers=headers)


@pytest.fixture
def core(tmp_path: Path) -> Core:
    return Core(tmp_path)


@pytest.fixture
async def api(core: Core) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(core.app(), core.admin) as client:
        yield client


# -- auth ---------------------------------------------------------------------------------------


async def test_healthz_needs_no_token_and_reports_the_audit_store(core: Core) -> None:
    async with api_client(core.app(), None) as anonymous:
        response = await anonymous.get("/healthz")
        assert response.status_code == 200
        assert response.json() == {"ok": True, "audit": True, "lockdown": False}
        core.audit.healthy = False
        response = await anonymous.get("/healthz")
        assert response.status_code == 503 and response.json()["audit"] is False


@pytest.mark.parametrize("authorization", [None, "Bearer ", "Basic abc", "Bearer ilo_wrong"])
async def test_missing_or_bad_token_is_401_with_a_bearer_challenge(
    core: Core, authorization: str | None
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    async with api_client(core.app(), None, **headers) as client:
        for method, path in [("GET", "/v1/holds"), ("POST", "/v1/lockdown"), ("GET", "/nowhere")]:
            response = await client.request(method, path)
            assert response.status_code == 401
            assert response.headers["WWW-Authenticate"] == "Bearer"
            assert response.json()["error"] == "unauthorized" and response.json()["detail"]


async def test_read_only_operator_may_read_but_not_change(core: Core) -> None:
    hold = open_hold(core.holds)
    async with api_client(core.app(), core.viewer) as viewer:
        assert (await viewer.get("/v1/holds")).status_code == 200
        assert (await viewer.get("/v1/lockdown")).status_code == 200
        for path in [f"/v1/holds/{hold.id}/approve", "/v1/lockdown", "/v1/policy/reload"]:
            response = await viewer.post(path, json={"on": True, "reason": "x"})
            assert response.status_code == 403
            assert response.json() == {
                "error": "read_only",
                "detail": "operator 'eve' may only read",
            }
    assert hold.pending and not core.lockdown.on


async def test_clients_outside_the_allow_list_are_refused_before_auth(core: Core) -> None:
    app = core.app(allow=(ip_network("127.0.0.0/8"), ip_network("fd00::/8")))
    async with api_client(app, None, client=("10.1.2.3", 4444)) as stranger:
        for path in ["/healthz", "/v1/holds"]:
            response = await stranger.get(path)
            assert response.status_code == 403
            assert (
                response.json()["detail"]
                == "client 10.1.2.3 is not in the control API's allow list"
            )
    async with api_client(app, core.admin, client=("10.1.2.3", 4444)) as stranger_with_token:
        assert (await stranger_with_token.get("/v1/holds")).status_code == 403
    for address in ["127.0.0.1", "::ffff:127.0.0.2", "fd00::5"]:
        async with api_client(app, None, client=(address, 4444)) as neighbour:
            assert (await neighbour.get("/healthz")).status_code == 200
            assert (await neighbour.get("/v1/holds")).status_code == 401  # on to auth


# -- holds --------------------------------------------------------------------------------------


async def test_lists_pending_holds_oldest_first_and_reads_one(
    core: Core, api: httpx.AsyncClient
) -> None:
    first, second = open_hold(core.holds, 1), open_hold(core.holds, 2)
    second.created_at = first.created_at + 1
    response = await api.get("/v1/holds")
    assert [h["id"] for h in response.json()["holds"]] == [first.id, second.id]
    one = (await api.get(f"/v1/holds/{first.id}")).json()
    assert one == first.to_json() and one["url"] == "https://api.github.com/repos/acme/web/merge"
    missing = await api.get("/v1/holds/h_nope")
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"


async def test_approve_releases_the_waiting_request(core: Core, api: httpx.AsyncClient) -> None:
    hold = open_hold(core.holds)
    response = await api.post(f"/v1/holds/{hold.id}/approve")
    assert response.status_code == 200
    body = response.json()
    assert body["state"] == "approved" and body["decided_by"] == "person:alice"
    assert body["channel"] == "api" and body["decision_reason"] is None
    assert await asyncio.wait_for(hold.done, 1) is Outcome.APPROVED
    assert core.holds.pending() == []
    assert (await api.get("/v1/holds")).json() == {"holds": []}


@pytest.mark.parametrize(
    ("claimed", "recorded"), [("cli", "cli"), ("TUI", "tui"), ("slack", "api")]
)
async def test_channel_header_is_believed_only_for_cli_and_tui(
    core: Core, claimed: str, recorded: str
) -> None:
    hold = open_hold(core.holds)
    async with api_client(core.app(), core.admin, **{"X-Interlock-Channel": claimed}) as client:
        response = await client.post(f"/v1/holds/{hold.id}/approve", json={"reason": "looks fine"})
    assert response.json()["channel"] == recorded
    assert response.json()["decision_reason"] == "looks fine"
    assert core.audit.records[-1].channel == recorded


@pytest.mark.parametrize("body", [None, {}, {"reason": "   "}])
async def test_deny_needs_a_reason(core: Core, api: httpx.AsyncClient, body: Any) -> None:
    hold = open_hold(core.holds)
    response = await api.post(f"/v1/holds/{hold.id}/deny", json=body)
    assert response.status_code == 400 and response.json()["error"] == "reason_required"
    assert hold.pending


async def test_deny_with_a_reason_refuses_the_request(core: Core, api: httpx.AsyncClient) -> None:
    hold = open_hold(core.holds)
    response = await api.post(f"/v1/holds/{hold.id}/deny", json={"reason": "use the staging repo"})
    assert response.status_code == 200
    assert response.json()["state"] == "denied"
    assert response.json()["decision_reason"] == "use the staging repo"
    assert await asyncio.wait_for(hold.done, 1) is Outcome.DENIED


@pytest.mark.parametrize(
    ("content", "detail"),
    [(b"{not json", "the request body is not JSON"), (b"[1]", "must be a JSON object"),
     (b'{"reason": 5}', "'reason' must be a string")],
)  # fmt: skip
async def test_malformed_decision_bodies_are_400(
    core: Core, api: httpx.AsyncClient, content: bytes, detail: str
) -> None:
    hold = open_hold(core.holds)
    response = await api.post(f"/v1/holds/{hold.id}/approve", content=content)
    assert response.status_code == 400 and detail in response.json()["detail"]
    assert hold.pending


async def test_second_decision_is_409_naming_who_decided_first(core: Core) -> None:
    hold = open_hold(core.holds)
    async with api_client(core.app(), core.second, **{"X-Interlock-Channel": "tui"}) as bob:
        assert (
            await bob.post(f"/v1/holds/{hold.id}/deny", json={"reason": "no"})
        ).status_code == 200
    async with api_client(core.app(), core.admin) as alice:
        response = await alice.post(f"/v1/holds/{hold.id}/approve")
    assert response.status_code == 409
    body = response.json()
    assert body["error"] == "already_decided"
    assert (body["state"], body["decided_by"], body["channel"]) == ("denied", "person:bob", "tui")
    assert "already decided: denied by person:bob" in body["detail"]
    assert hold.done.result() is Outcome.DENIED


async def test_unknown_hold_is_404_for_decisions(api: httpx.AsyncClient) -> None:
    response = await api.post("/v1/holds/h_missing/approve")
    assert response.status_code == 404
    assert response.json() == {"error": "not_found", "detail": "no hold 'h_missing'"}


async def test_quorum_vote_is_202_then_the_last_approval_is_200(core: Core) -> None:
    hold = open_hold(core.holds, approvals=2)
    app = core.app()
    async with api_client(app, core.admin) as alice, api_client(app, core.second) as bob:
        vote = await alice.post(f"/v1/holds/{hold.id}/approve")
        assert vote.status_code == 202
        assert vote.json()["votes"] == 1 and vote.json()["needed"] == 2
        assert vote.json()["hold"]["state"] == "pending" and not hold.done.done()
        again = await alice.post(f"/v1/holds/{hold.id}/approve")
        assert (again.status_code, again.json()["error"]) == (422, "already_voted")
        assert "person:alice already approved" in again.json()["detail"]
        final = await bob.post(f"/v1/holds/{hold.id}/approve")
        late = await alice.post(f"/v1/holds/{hold.id}/approve")  # 409 once it is final
    assert (late.status_code, late.json()["error"]) == (409, "already_decided")
    assert final.status_code == 200 and final.json()["state"] == "approved"
    assert [v["by"] for v in final.json()["votes"]] == ["person:alice"]
    assert hold.done.result() is Outcome.APPROVED


async def test_an_unrecorded_decision_is_503_and_releases_nothing(
    core: Core, api: httpx.AsyncClient
) -> None:
    hold = open_hold(core.holds)
    core.audit.fail = True
    response = await api.post(f"/v1/holds/{hold.id}/approve")
    assert response.status_code == 503 and response.json()["error"] == "not_recorded"
    assert "could not be recorded" in response.json()["detail"]
    assert hold.done.result() is Outcome.ERROR


# -- events -------------------------------------------------------------------------------------


class SseProbe:
    """Calls the app's /v1/events over raw ASGI, so each chunk is seen as it is sent."""

    def __init__(
        self, app: Starlette, token: str, *, after: int | None = None, raw_id: str | None = None
    ) -> None:
        """`after` is an event number of this app (1, 2, ...); `raw_id` goes on the wire as is."""
        self.base: int = app.state.event_id_base
        headers = [(b"authorization", f"Bearer {token}".encode())]
        if after is not None:
            raw_id = str(self.base + after)
        if raw_id is not None:
            headers.append((b"last-event-id", raw_id.encode()))
        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
            "scheme": "http", "path": "/v1/events", "raw_path": b"/v1/events", "query_string": b"",
            "headers": headers, "client": ("127.0.0.1", 5000), "server": ("interlock", 80),
            "root_path": "",
        }  # fmt: skip
        self.status: int | None = None
        self.headers: dict[str, str] = {}
        self.chunks: asyncio.Queue[bytes] = asyncio.Queue()
        self.leave = asyncio.Event()
        self._asked = False
        self._buffer = ""
        self.task = asyncio.ensure_future(app(scope, self._receive, self._send))

    async def _receive(self) -> dict[str, Any]:
        if not self._asked:
            self._asked = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await self.leave.wait()
        return {"type": "http.disconnect"}

    async def _send(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            self.headers = {k.decode(): v.decode() for k, v in message["headers"]}
        else:
            await self.chunks.put(message.get("body", b""))

    async def frame(self) -> str:
        while "\n\n" not in self._buffer:
            self._buffer += (await asyncio.wait_for(self.chunks.get(), 2)).decode()
        frame, self._buffer = self._buffer.split("\n\n", 1)
        return frame

    async def event(self) -> tuple[int, str, Any]:
        frame = await self.frame()
        while frame.startswith(":"):
            frame = await self.frame()
        event_id, kind, data = parse_frame(frame)
        return event_id - self.base, kind, data

    async def ended(self) -> None:
        await asyncio.wait_for(self.task, 2)


def parse_frame(frame: str) -> tuple[int, str, Any]:
    fields = dict(line.split(": ", 1) for line in frame.splitlines())
    return int(fields["id"]), fields["event"], json.loads(fields["data"])


async def test_events_stream_live_hold_changes(core: Core, api: httpx.AsyncClient) -> None:
    probe = SseProbe(core.app(), core.admin)
    assert await probe.frame() == ": connected"
    assert probe.status == 200 and probe.headers["content-type"].startswith("text/event-stream")
    hold = open_hold(core.holds)
    assert await probe.event() == (1, "hold.created", hold.to_json())
    await api.post(f"/v1/holds/{hold.id}/approve")
    event_id, kind, data = await probe.event()
    assert (event_id, kind, data["state"], data["decided_by"]) == (
        2,
        "hold.decided",
        "approved",
        "person:alice",
    )
    probe.leave.set()
    await probe.ended()


async def test_events_replay_history_after_last_event_id(core: Core) -> None:
    holds = [open_hold(core.holds, n) for n in (1, 2, 3)]
    app = core.app()
    probe = SseProbe(app, core.admin, after=1)
    assert [(await probe.event())[:2] for _ in range(2)] == [
        (2, "hold.created"),
        (3, "hold.created"),
    ]
    core.events.publish("lockdown", {"on": True})
    assert (await probe.event())[:2] == (4, "lockdown")
    app.state.shutdown.set()
    await probe.ended()
    # The query parameter works like the header (for clients that cannot set headers).
    async with api_client(app, core.admin) as client:
        after = str(probe.base + 2)
        response = await client.get("/v1/events", params={"last_event_id": after})
    frames = [f for f in response.text.split("\n\n") if f and not f.startswith(":")]
    assert [parse_frame(f)[0] - probe.base for f in frames] == [3, 4]
    assert parse_frame(frames[0])[2]["id"] == holds[2].id


@pytest.mark.parametrize("when", ["too old", "from the future", "from before a restart"])
async def test_resync_when_history_no_longer_reaches_back(tmp_path: Path, when: str) -> None:
    core = Core(tmp_path, events=EventBus(history=2))
    for n in range(5):
        core.events.publish("hold.updated", {"n": n})
    app = core.app()
    base = app.state.event_id_base
    last_seen = {"too old": base + 1, "from the future": base + 99, "from before a restart": 77}
    probe = SseProbe(app, core.admin, raw_id=str(last_seen[when]))
    event_id, kind, data = await probe.event()
    assert (event_id, kind, data["last_id"]) == (5, "resync", base + 5)
    core.events.publish("hold.updated", {"n": 5})
    assert (await probe.event())[:2] == (6, "hold.updated")
    probe.leave.set()
    await probe.ended()


async def test_bad_last_event_id_is_400(api: httpx.AsyncClient) -> None:
    response = await api.get("/v1/events", headers={"Last-Event-ID": "yesterday"})
    assert response.status_code == 400 and "yesterday" in response.json()["detail"]


async def test_quiet_streams_get_keep_alive_comments(core: Core) -> None:
    probe = SseProbe(core.app(keepalive=0.05), core.admin)
    assert await probe.frame() == ": connected"
    assert await probe.frame() == ": keep-alive"
    probe.leave.set()
    await probe.ended()


async def test_stream_ends_when_the_client_leaves_or_the_server_stops(core: Core) -> None:
    app = core.app()
    leaving, staying = SseProbe(app, core.admin), SseProbe(app, core.admin)
    await leaving.frame(), await staying.frame()
    assert len(core.events._subscribers) == 2
    leaving.leave.set()
    await leaving.ended()
    assert len(core.events._subscribers) == 1
    app.state.shutdown.set()
    await staying.ended()
    assert core.events._subscribers == set()


async def test_a_subscriber_that_falls_behind_is_cut_and_can_resume(tmp_path: Path) -> None:
    core = Core(tmp_path, events=EventBus(queue_size=2))
    app = core.app()
    probe = SseProbe(app, core.admin)
    await probe.frame()
    for n in range(5):  # no await in between: the stream cannot keep up
        core.events.publish("hold.updated", {"n": n})
    await probe.ended()
    resumed = SseProbe(app, core.admin, after=2)
    assert [(await resumed.event())[0] for _ in range(3)] == [3, 4, 5]
    resumed.leave.set()
    await resumed.ended()


# -- audit log ----------------------------------------------------------------------------------


def audit_rows(core: Core) -> None:
    now = time.time()
    for n, (agent, outcome, age) in enumerate(
        [("bot", "allowed", 9000), ("bot", "denied", 3000), ("ci", "allowed", 2000),
         ("bot", "allowed", 1000), ("bot", "approved", 10)], 1,
    ):  # fmt: skip
        core.audit.records.append(
            AuditRecord(
                kind=Kind.REQUEST,
                request_id=f"r_{n}",
                at=now - age,
                agent=agent,
                host="api.github.com",
                outcome=outcome,
                rule="gh",
            )
        )
    core.audit.records.append(AuditRecord(kind=Kind.COMPLETION, request_id="r_5", status=200))


async def test_requests_pages_newest_first(core: Core, api: httpx.AsyncClient) -> None:
    audit_rows(core)
    first = (await api.get("/v1/requests", params={"agent": "bot", "limit": "2"})).json()
    assert [r["request_id"] for r in first["requests"]] == ["r_5", "r_4"]
    assert first["next"] == 4
    rest = (await api.get("/v1/requests", params={"agent": "bot", "before": "4"})).json()
    assert [r["request_id"] for r in rest["requests"]] == ["r_2", "r_1"]
    assert rest["next"] is None


async def test_requests_filters_reach_the_store(core: Core, api: httpx.AsyncClient) -> None:
    audit_rows(core)
    params = {"since": "1h", "until": str(time.time()), "host": "api.github.com",
              "outcome": "allowed", "rule": "gh"}  # fmt: skip
    body = (await api.get("/v1/requests", params=params)).json()
    assert [r["request_id"] for r in body["requests"]] == ["r_4", "r_3"]
    asked = core.audit.queries[-1]
    assert abs(asked["since"] - (time.time() - 3600)) < 5
    assert (asked["host"], asked["outcome"], asked["rule"], asked["limit"]) == (
        "api.github.com",
        "allowed",
        "gh",
        101,
    )


@pytest.mark.parametrize(
    ("params", "detail"),
    [({"since": "last tuesday"}, "since='last tuesday'"), ({"limit": "1001"}, "between 1 and 1000"),
     ({"limit": "ten"}, "expected a whole number"), ({"before": "-1"}, "before=-1")],
)  # fmt: skip
async def test_bad_request_filters_are_400(
    api: httpx.AsyncClient, params: dict[str, str], detail: str
) -> None:
    response = await api.get("/v1/requests", params=params)
    assert response.status_code == 400 and detail in response.json()["detail"]


async def test_request_trail_and_404(core: Core, api: httpx.AsyncClient) -> None:
    audit_rows(core)
    body = (await api.get("/v1/requests/r_5")).json()
    assert body["request_id"] == "r_5" and [r["kind"] for r in body["trail"]] == [
        "request",
        "completion",
    ]
    missing = await api.get("/v1/requests/r_404")
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"
    assert (await api.get("/v1/rules/gh/stats")).json() == {"rule": "gh", "requests": 5}


async def test_requests_and_trail_from_the_real_audit_store(core: Core, tmp_path: Path) -> None:
    store = await AuditStore.open(tmp_path / "audit.db")
    try:
        for n in (1, 2, 3):
            record = AuditRecord(kind=Kind.REQUEST, request_id=f"r_{n}", agent="bot",
                                 host="api.github.com", outcome="allowed", rule="gh")  # fmt: skip
            await store.append(record)
        await store.append(AuditRecord(kind=Kind.COMPLETION, request_id="r_3", status=201))
        core.audit = store  # type: ignore[assignment]
        async with api_client(core.app(), core.admin) as api:
            first = (await api.get("/v1/requests", params={"limit": "2", "agent": "bot"})).json()
            assert [r["request_id"] for r in first["requests"]] == ["r_3", "r_2"]
            assert first["requests"][0]["status"] == 201
            rest = (await api.get("/v1/requests", params={"before": first["next"]})).json()
            assert [r["request_id"] for r in rest["requests"]] == ["r_1"] and rest["next"] is None
            everything = (await api.get("/v1/requests", params={"limit": "1000"})).json()
            assert len(everything["requests"]) == 3 and everything["next"] is None
            trail = (await api.get("/v1/requests/r_3")).json()["trail"]
            assert [row["kind"] for row in trail] == ["request", "completion"]
            assert (await api.get("/v1/rules/gh/stats")).json()["decisions"] == 0
            await store.close()
            closed = await api.get("/v1/requests")
            assert closed.status_code == 503 and closed.json()["error"] == "audit_unavailable"
            assert (await api.get("/healthz")).status_code == 503
    finally:
        await store.close()


# -- signed links -------------------------------------------------------------------------------


async def test_a_signed_link_is_made_for_a_named_person(core: Core, api: httpx.AsyncClient) -> None:
    hold = open_hold(core.holds, timeout=600)
    answer = await api.post(f"/v1/holds/{hold.id}/link", json={"for": "bob@example.com"})
    assert answer.status_code == 200
    links = answer.json()
    assert links["review"].startswith("https://approve.example.com/l/")
    assert links["approve"] == links["review"] + "?action=approve"
    assert links["deny"] == links["review"] + "?action=deny"
    assert links["expires_at"] == int(hold.deadline)
    claim = core.links.verify(links["review"].rsplit("/", 1)[1])
    assert (claim.hold_id, claim.audience, claim.channel) == (
        hold.id,
        "bob@example.com",
        "manual:alice",
    )
    assert hold.pending  # making a link decides nothing, but who made it for whom is kept
    (made,) = core.audit.records
    assert (made.kind, made.decided_by, made.channel, made.reason, made.hold_id) == (
        "link", "person:alice", "link:manual:alice", "signed link for bob@example.com", hold.id)  # fmt: skip
    again = (await api.post(f"/v1/holds/{hold.id}/link", json={"for": "bob@example.com"})).json()
    assert again["review"] != links["review"]  # each link is its own single use
    document = (await api.get("/openapi.json")).json()
    assert document["paths"]["/v1/holds/{hold_id}/link"]["post"]["requestBody"]["required"]


async def test_signed_link_refusals(core: Core, api: httpx.AsyncClient) -> None:
    hold = open_hold(core.holds)
    for body in [{}, {"for": 3}, {"for": ""}, {"for": "two words"}, {"for": "x" * 65}]:
        answer = await api.post(f"/v1/holds/{hold.id}/link", json=body)
        assert answer.status_code == 400 and answer.json()["error"] == "bad_request", body
    missing = await api.post("/v1/holds/h_nope/link", json={"for": "bob"})
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"
    await core.holds.decide(hold.id, approve=True, by="person:alice", channel="cli")
    late = await api.post(f"/v1/holds/{hold.id}/link", json={"for": "bob"})
    assert late.status_code == 409 and late.json()["error"] == "already_decided"
    assert late.json()["decided_by"] == "person:alice"
    async with api_client(core.app(), core.viewer) as viewer:
        other = open_hold(core.holds, 2)
        refused = await viewer.post(f"/v1/holds/{other.id}/link", json={"for": "bob"})
        assert refused.status_code == 403 and refused.json()["error"] == "read_only"


async def test_no_signed_links_without_a_public_listener(tmp_path: Path) -> None:
    core = Core(tmp_path, public_url=None)
    hold = open_hold(core.holds)
    async with api_client(core.app(), core.admin) as api:
        answer = await api.post(f"/v1/holds/{hold.id}/link", json={"for": "bob"})
    assert answer.status_code == 409 and answer.json()["error"] == "no_public_url"
    assert "--public-listen" in answer.json()["detail"]


# -- policy, lockdown, errors, OpenAPI ----------------------------------------------------------


async def test_policy_reload_ok_is_200_and_invalid_is_422(
    core: Core, api: httpx.AsyncClient
) -> None:
    ok = await api.post("/v1/policy/reload")
    assert ok.status_code == 200 and ok.json() == core.reload_result
    core.reload_result = {
        "ok": False,
        "errors": ["p.yaml:3: unknown key 'hots'"],
        "rules": 0,
        "digest": None,
    }
    bad = await api.post("/v1/policy/reload")
    assert bad.status_code == 422
    assert bad.json()["error"] == "invalid_policy" and bad.json()["errors"] == [
        "p.yaml:3: unknown key 'hots'"
    ]
    assert "running policy is unchanged" in bad.json()["detail"]


async def test_lockdown_on_and_off_is_recorded(core: Core, api: httpx.AsyncClient) -> None:
    assert (await api.get("/v1/lockdown")).json()["on"] is False
    response = await api.post("/v1/lockdown", json={"on": True, "reason": "agent went rogue"})
    assert response.status_code == 200
    assert response.json()["on"] is True and response.json()["by"] == "person:alice"
    assert core.lockdown.on and (await api.get("/healthz")).json()["lockdown"] is True
    record = core.audit.records[-1]
    assert (record.kind, record.decided_by, record.channel, record.reason) == (
        "lockdown", "person:alice", "api", "agent went rogue")  # fmt: skip
    assert (await api.post("/v1/lockdown", json={"on": False})).json()["on"] is False
    for body in [{}, {"on": "yes"}, {"on": True, "reason": 3}]:
        assert (await api.post("/v1/lockdown", json=body)).status_code == 400
    assert not core.lockdown.on


async def test_routing_errors_are_json(api: httpx.AsyncClient) -> None:
    missing = await api.get("/v2/holds")
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"
    wrong = await api.delete("/v1/holds")
    assert wrong.status_code == 405 and wrong.json()["error"] == "method_not_allowed"


async def test_openapi_lists_every_route_with_bearer_security(
    core: Core, api: httpx.AsyncClient
) -> None:
    document = (await api.get("/openapi.json")).json()
    assert document["openapi"].startswith("3.1") and document["info"]["version"] == "9.9"
    assert document["components"]["securitySchemes"]["bearer"] == {
        "type": "http",
        "scheme": "bearer",
    }
    app_routes = {
        (method.lower(), route.path.replace(":path}", "}"))
        for route in core.app().routes
        if isinstance(route, Route)
        for method in route.methods or ()
        if method != "HEAD"
    }
    documented = {(m, path) for path, ops in document["paths"].items() for m in ops}
    assert app_routes == documented and len(app_routes) == 16
    assert document["paths"]["/healthz"]["get"]["security"] == []
    approve = document["paths"]["/v1/holds/{hold_id}/approve"]["post"]
    assert {"200", "202", "401", "404", "409"} <= set(approve["responses"])
    assert approve["parameters"][0]["name"] == "hold_id"


async def test_rule_stats_take_namespaced_rule_names(core: Core, api: httpx.AsyncClient) -> None:
    answer = await api.get("/v1/rules/github%2Fmerge-pull-request/stats")
    assert answer.status_code == 200
    assert answer.json()["rule"] == "github/merge-pull-request"
