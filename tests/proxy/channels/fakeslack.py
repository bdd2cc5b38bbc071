"""A local Slack for tests: the Web API methods Interlock calls, and a Socket Mode WebSocket.

It answers in Slack's real shapes (`{"ok": false, "error": ...}`, HTTP 429 with Retry-After,
`hello`, `interactive` envelopes, acks by envelope_id) and is as strict as Slack where a mistake
would only show in production: tokens by kind, block shapes and length limits, messages that
must exist to be updated, and single-use trigger_ids that expire after 3 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import itertools
import json
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode

from aiohttp import WSMsgType, web

TEAM = {"id": "T0FAKE", "domain": "fake"}
APP_ID, BOT_USER, BOT_ID = "A0FAKE", "U0BOT", "B0FAKE"
TEXT_TYPES = ("plain_text", "mrkdwn")


class Refused(Exception):
    """A Web API call Slack answers with `{"ok": false, "error": ...}`."""

    def __init__(self, error: str, **fields: Any) -> None:
        super().__init__(error)
        self.error, self.fields = error, fields


@dataclass
class Failure:
    error: str
    status: int = 200
    retry_after: int | None = None


class FakeSlack:
    """Start with `await FakeSlack().start()`; point a channel's `api_url` at `api_url`."""

    def __init__(
        self,
        *,
        bot_token: str = "xoxb-fake-bot",
        app_token: str = "xapp-fake-app",
        channels: Mapping[str, str] | None = None,
        trigger_ttl: float = 3.0,
    ) -> None:
        self.bot_token, self.app_token, self.trigger_ttl = bot_token, app_token, trigger_ttl
        self.channels = dict(channels or {"C0OPS": "ops"})  # id -> name
        self.messages: dict[tuple[str, str], dict[str, Any]] = {}
        self.calls: list[tuple[str, dict[str, Any]]] = []  # every accepted call, in order
        self.ephemerals: list[dict[str, Any]] = []
        self.views: dict[str, dict[str, Any]] = {}
        self.acks: dict[str, dict[str, Any] | None] = {}
        self.failures: dict[str, list[Failure]] = {}
        self.delays: dict[str, float] = {}
        self.send_hello = True
        self.connections = 0  # Socket Mode connections ever opened
        self._triggers: dict[str, tuple[float, bool]] = {}  # id -> (expires at, used)
        self._tickets: set[str] = set()
        self._sockets: list[web.WebSocketResponse] = []
        self._acked = asyncio.Condition()
        self._closing = asyncio.Event()
        self._ids = itertools.count(1)
        app = web.Application()
        app.router.add_post("/api/{method}", self._api)
        app.router.add_get("/link/", self._link)
        self._runner = web.AppRunner(app, shutdown_timeout=1.0, handler_cancellation=True)
        self.port = 0

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> FakeSlack:
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    async def close(self) -> None:
        self._closing.set()
        for ws in list(self._sockets):
            await ws.close()
        await self._runner.cleanup()

    @property
    def open_connections(self) -> int:
        return len(self._sockets)

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/"

    def fail(self, method: str, error: str, *, status: int = 200, retry_after: int | None = None,
             times: int = 1) -> None:  # fmt: skip
        """Answer the next `times` calls of `method` with this error."""
        self.failures.setdefault(method, []).extend([Failure(error, status, retry_after)] * times)

    # -- reading what happened ----------------------------------------------------------------

    def called(self, method: str) -> list[dict[str, Any]]:
        return [body for name, body in self.calls if name == method]

    def only_message(self) -> tuple[str, str, dict[str, Any]]:
        assert len(self.messages) == 1, self.messages
        ((channel, ts), message), *_ = self.messages.items()
        return channel, ts, message

    @staticmethod
    def buttons(message: Mapping[str, Any]) -> dict[str, str]:
        """action_id -> value of the message's buttons."""
        return {e["action_id"]: e.get("value", "") for b in message["blocks"]
                if b["type"] == "actions" for e in b["elements"] if e["type"] == "button"}  # fmt: skip

    @staticmethod
    def text_of(message: Mapping[str, Any]) -> str:
        """All the text a reader sees in a message's blocks, joined."""
        parts = [message.get("text", "")]
        for block in message["blocks"]:
            for text in [block.get("text"), *block.get("fields", []), *block.get("elements", [])]:
                if isinstance(text, dict) and text.get("type") in TEXT_TYPES:
                    parts.append(text["text"])
        return "\n".join(parts)

    # -- the Web API --------------------------------------------------------------------------

    async def _api(self, request: web.Request) -> web.StreamResponse:
        method = request.match_info["method"]
        body: dict[str, Any] = dict(request.query)
        raw = await request.read()
        if request.content_type == "application/json" and raw:
            body.update(json.loads(raw))
        elif raw:
            body.update(parse_qsl(raw.decode()))
        if delay := self.delays.get(method):
            with contextlib.suppress(TimeoutError):  # answer late, or at once when closing
                await asyncio.wait_for(self._closing.wait(), delay)
        token = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        expected, other = (self.app_token, self.bot_token) if method == "apps.connections.open" \
            else (self.bot_token, self.app_token)  # fmt: skip
        if not token:
            return _error("not_authed")
        if token == other:
            return _error("not_allowed_token_type")
        if not hmac.compare_digest(token, expected):
            return _error("invalid_auth")
        if queued := self.failures.get(method):
            failure = queued.pop(0)
            headers = {"Retry-After": str(failure.retry_after)} if failure.retry_after else {}
            return _error(failure.error, status=failure.status, headers=headers)
        handler = getattr(self, "_" + method.replace(".", "_"), None)
        if handler is None:
            return _error("unknown_method")
        try:
            fields = handler(body)
        except Refused as refused:
            return _error(refused.error, **refused.fields)
        self.calls.append((method, body))
        return web.json_response({"ok": True, **fields})

    def _auth_test(self, body: dict[str, Any]) -> dict[str, Any]:
        return dict(url="https://fake.slack.com/", team="Fake", user="interlock", team_id=TEAM["id"],
                   user_id=BOT_USER, bot_id=BOT_ID, is_enterprise_install=False)  # fmt: skip

    def _apps_connections_open(self, body: dict[str, Any]) -> dict[str, Any]:
        ticket = secrets.token_hex(8)
        self._tickets.add(ticket)
        return dict(url=f"ws://127.0.0.1:{self.port}/link/?ticket={ticket}&app_id={APP_ID}")

    def _channel(self, ref: Any, *, id_only: bool = False) -> str:
        if ref in self.channels:
            return str(ref)
        by_name = {name: cid for cid, name in self.channels.items()}
        if id_only or not isinstance(ref, str) or ref.removeprefix("#") not in by_name:
            raise Refused("channel_not_found")
        return by_name[ref.removeprefix("#")]

    def _chat_postMessage(self, body: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(body.get("channel"))
        self._check_message(body)
        ts = f"{int(time.time())}.{next(self._ids):06d}"
        message = {"type": "message", "user": BOT_USER, "bot_id": BOT_ID, "ts": ts,
                   "text": body["text"], "blocks": _with_block_ids(body["blocks"])}  # fmt: skip
        self.messages[(channel, ts)] = message
        return dict(channel=channel, ts=ts, message=message)

    def _chat_update(self, body: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(body.get("channel"), id_only=True)  # updates need the ID
        message = self.messages.get((channel, str(body.get("ts"))))
        if message is None:
            raise Refused("message_not_found")
        self._check_message(body)
        message.update(text=body["text"], blocks=_with_block_ids(body["blocks"]), edited=True)
        return dict(channel=channel, ts=message["ts"], text=message["text"], message=message)

    def _chat_postEphemeral(self, body: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(body.get("channel"))
        if not body.get("user"):
            raise Refused("user_not_in_channel")
        if not body.get("text") and not body.get("blocks"):
            raise Refused("no_text")
        self.ephemerals.append({"channel": channel, "user": body["user"], "text": body.get("text")})
        return dict(message_ts=f"{int(time.time())}.{next(self._ids):06d}")

    def _views_open(self, body: dict[str, Any]) -> dict[str, Any]:
        trigger = self._triggers.get(str(body.get("trigger_id")))
        if trigger is None:
            raise Refused("invalid_trigger_id")
        expires, used = trigger
        if used:
            raise Refused("exchanged_trigger_id")
        if time.monotonic() > expires:
            raise Refused("expired_trigger_id")
        view: dict[str, Any] = body.get("view") or {}
        if isinstance(view, str):
            view = json.loads(view)
        errors = view_errors(view)
        if errors:
            raise Refused("invalid_arguments", response_metadata={"messages": errors})
        self._triggers[str(body["trigger_id"])] = (expires, True)
        view_id = f"V{next(self._ids):08d}"
        self.views[view_id] = view = dict(view, id=view_id, team_id=TEAM["id"], app_id=APP_ID,
                                          bot_id=BOT_ID, hash=secrets.token_hex(4))  # fmt: skip
        return dict(view=view)

    def _check_message(self, body: dict[str, Any]) -> None:
        if not body.get("text"):  # stricter than Slack, which only warns: notifications need it
            raise Refused("no_text")
        if isinstance(body.get("blocks"), str):
            body["blocks"] = json.loads(body["blocks"])
        blocks = body.get("blocks")
        errors = block_errors(blocks, surface="message") if blocks is not None else ["no blocks"]
        if errors:
            raise Refused("invalid_blocks", errors=errors,
                          response_metadata={"messages": [f"[ERROR] {e}" for e in errors]})  # fmt: skip

    # -- Socket Mode --------------------------------------------------------------------------

    async def _link(self, request: web.Request) -> web.StreamResponse:
        ticket = request.query.get("ticket", "")
        if ticket not in self._tickets:
            raise web.HTTPUnauthorized(text="invalid ticket")
        self._tickets.discard(ticket)  # a ticket opens one connection
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        self._sockets.append(ws)
        self.connections += 1
        if self.send_hello:
            await ws.send_json({"type": "hello", "num_connections": len(self._sockets),
                                "debug_info": {"host": "applink-fake", "build_number": 1,
                                               "approximate_connection_time": 18060},
                                "connection_info": {"app_id": APP_ID}})  # fmt: skip
        try:
            async for frame in ws:
                if frame.type != WSMsgType.TEXT:
                    continue
                reply = json.loads(frame.data)
                if "envelope_id" in reply:
                    async with self._acked:
                        self.acks[reply["envelope_id"]] = reply.get("payload")
                        self._acked.notify_all()
        finally:
            self._sockets.remove(ws)
        return ws

    async def push(self, payload: dict[str, Any], *, accepts_response_payload: bool = False) -> str:
        """Send an `interactive` envelope on the newest connection; its envelope_id."""
        assert self._sockets, "no Socket Mode connection is open"
        envelope_id = secrets.token_hex(8)
        await self._sockets[-1].send_json({"envelope_id": envelope_id, "payload": payload,
                                           "type": "interactive",
                                           "accepts_response_payload": accepts_response_payload})  # fmt: skip
        return envelope_id

    async def ack(self, envelope_id: str, timeout: float = 5.0) -> dict[str, Any] | None:
        """The payload the app acknowledged `envelope_id` with (None for a bare ack)."""
        async with self._acked:
            await asyncio.wait_for(self._acked.wait_for(lambda: envelope_id in self.acks), timeout)
        return self.acks[envelope_id]

    async def send_frame(self, frame: dict[str, Any]) -> None:
        """Any other frame Slack sends, e.g. `{"type": "disconnect", "reason": "warning"}`."""
        await self._sockets[-1].send_json(frame)

    # -- what people do -----------------------------------------------------------------------

    def click(self, user: str, channel: str, ts: str, action_id: str) -> dict[str, Any]:
        """A block_actions payload for `user` clicking a button that is on the message now."""
        message = self.messages[(channel, ts)]
        for block in message["blocks"]:
            for element in block.get("elements", []) if block["type"] == "actions" else []:
                if element.get("action_id") == action_id:
                    action = {"action_id": action_id, "block_id": block["block_id"],
                              "text": element["text"], "value": element.get("value"),
                              "style": element.get("style"), "type": "button",
                              "action_ts": f"{time.time():.6f}"}  # fmt: skip
                    return {
                        "type": "block_actions", "user": _user(user), "api_app_id": APP_ID,
                        "token": "legacy-verification-token",
                        "container": {"type": "message", "message_ts": ts, "channel_id": channel,
                                      "is_ephemeral": False},
                        "trigger_id": self._trigger(), "team": TEAM, "enterprise": None,
                        "is_enterprise_install": False,
                        "channel": {"id": channel, "name": self.channels[channel]},
                        "message": message, "state": {"values": {}},
                        "response_url": f"https://hooks.slack.com/actions/{TEAM['id']}/1/x",
                        "actions": [action],
                    }  # fmt: skip
        raise AssertionError(f"no button {action_id!r} on the message: {self.buttons(message)}")

    def submit(self, view_id: str, user: str, values: Mapping[str, str]) -> dict[str, Any]:
        """A view_submission payload: `values` maps an input's action_id to the text typed or
        the option chosen; required inputs must be given, as Slack's client insists."""
        view = self.views[view_id]
        state: dict[str, dict[str, Any]] = {}
        for block in view["blocks"]:
            if block["type"] != "input":
                continue
            element, action_id = block["element"], block["element"]["action_id"]
            given = values.get(action_id)
            assert given is not None or block.get("optional"), f"{action_id} is required"
            if element["type"] == "static_select":
                options = {o["value"]: o for o in element["options"]}
                assert given is None or given in options, f"{given!r} is not an option"
                entry = {"type": "static_select", "selected_option": options.get(given or "")}
            else:
                entry = {"type": element["type"], "value": given}
            state[block["block_id"]] = {action_id: entry}
        submitted = dict(view, state={"values": state}, root_view_id=view_id, previous_view_id=None)
        return {"type": "view_submission", "team": TEAM, "user": _user(user), "api_app_id": APP_ID,
                "token": "legacy-verification-token", "trigger_id": self._trigger(),
                "view": submitted, "response_urls": [], "is_enterprise_install": False,
                "enterprise": None}  # fmt: skip

    def _trigger(self) -> str:
        trigger = f"{next(self._ids)}.{secrets.randbelow(10**9)}.{secrets.token_hex(16)}"
        self._triggers[trigger] = (time.monotonic() + self.trigger_ttl, False)
        return trigger

    @staticmethod
    def signed(
        payload: Mapping[str, Any], secret: str, *, at: float | None = None
    ) -> tuple[bytes, dict[str, str]]:
        """An interaction as Slack POSTs it in HTTP mode: a form body and its signed headers."""
        body = urlencode({"payload": json.dumps(payload)}).encode()
        return body, FakeSlack.sign(body, secret, at=at)

    @staticmethod
    def sign(body: bytes, secret: str, *, at: float | None = None) -> dict[str, str]:
        """Slack's headers for `body`: the v0 HMAC-SHA256 of `v0:{timestamp}:{body}`."""
        timestamp = str(int(time.time() if at is None else at))
        digest = hmac.new(secret.encode(), b"v0:%s:%s" % (timestamp.encode(), body), hashlib.sha256)
        return {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Slack-Request-Timestamp": timestamp,
            "X-Slack-Signature": f"v0={digest.hexdigest()}",
        }


def _user(user_id: str) -> dict[str, str]:
    name = user_id.lower()
    return {"id": user_id, "username": name, "name": name, "team_id": TEAM["id"]}


def _error(error: str, *, status: int = 200, headers: Mapping[str, str] | None = None,
           **fields: Any) -> web.Response:  # fmt: skip
    return web.json_response({"ok": False, "error": error, **fields}, status=status,
                             headers=headers)  # fmt: skip


def _with_block_ids(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Slack gives every block without one a block_id of its own."""
    return [b if "block_id" in b else dict(b, block_id=secrets.token_hex(3)) for b in blocks]


# -- Block Kit validation (the limits from Slack's Block Kit reference) ----------------------


def block_errors(blocks: Any, *, surface: str) -> list[str]:
    errors: list[str] = []
    limit = 50 if surface == "message" else 100
    if not isinstance(blocks, list) or not 0 < len(blocks) <= limit:
        return [f"blocks must be a list of 1 to {limit} blocks"]
    block_ids: set[str] = set()
    action_ids: set[str] = set()
    for i, block in enumerate(blocks):
        path = f"/blocks/{i}"
        kind = block.get("type") if isinstance(block, dict) else None
        spec = BLOCKS.get(str(kind))
        if spec is None or (kind == "input" and surface == "message"):
            errors.append(f"{path}: unsupported block type {kind!r}")
            continue
        _keys(block, spec, path, errors)
        block_id = block.get("block_id")
        if block_id is not None:
            _string(block_id, 255, f"{path}/block_id", errors)
            if block_id in block_ids:
                errors.append(f"{path}/block_id: duplicate {block_id!r}")
            block_ids.add(block_id)
        CHECKS[str(kind)](block, path, errors, action_ids)
    return errors


def view_errors(view: Any) -> list[str]:
    if not isinstance(view, dict) or view.get("type") != "modal":
        return ["view must be an object of type modal"]
    errors: list[str] = []
    _keys(view, {"type", "title", "blocks", "close", "submit", "private_metadata", "callback_id",
                 "clear_on_close", "notify_on_close", "external_id", "submit_disabled"},
          "/view", errors)  # fmt: skip
    _text(view.get("title"), 24, "/view/title", errors, plain=True)
    for key in ("close", "submit"):
        if key in view:
            _text(view[key], 24, f"/view/{key}", errors, plain=True)
    blocks = view.get("blocks")
    if isinstance(blocks, list) and any(b.get("type") == "input" for b in blocks) \
            and "submit" not in view:  # fmt: skip
        errors.append("/view: a modal with inputs needs a submit button")
    _string(view.get("private_metadata", ""), 3000, "/view/private_metadata", errors, empty=True)
    _string(view.get("callback_id", ""), 255, "/view/callback_id", errors, empty=True)
    return errors + block_errors(blocks, surface="modal")


def _keys(obj: Mapping[str, Any], allowed: set[str], path: str, errors: list[str]) -> None:
    errors.extend(
        f"{path}: invalid additional property {key!r}" for key in obj if key not in allowed
    )


def _string(value: Any, limit: int, path: str, errors: list[str], *, empty: bool = False) -> None:
    if not isinstance(value, str) or (not value and not empty):
        errors.append(f"{path}: must be a non-empty string")
    elif len(value) > limit:
        errors.append(f"{path}: must be at most {limit} characters, got {len(value)}")


def _text(obj: Any, limit: int, path: str, errors: list[str], *, plain: bool = False) -> None:
    kinds = ("plain_text",) if plain else TEXT_TYPES
    if not isinstance(obj, dict) or obj.get("type") not in kinds:
        errors.append(f"{path}: must be a {'plain_text' if plain else 'text'} object")
        return
    extra = "emoji" if obj["type"] == "plain_text" else "verbatim"
    _keys(obj, {"type", "text", extra}, path, errors)
    _string(obj.get("text"), limit, f"{path}/text", errors)


def _action_id(element: Mapping[str, Any], path: str, errors: list[str], seen: set[str]) -> None:
    action_id = element.get("action_id")
    _string(action_id, 255, f"{path}/action_id", errors)
    if action_id in seen:
        errors.append(f"{path}/action_id: duplicate {action_id!r}")
    seen.add(str(action_id))


def _button(element: Mapping[str, Any], path: str, errors: list[str], seen: set[str]) -> None:
    _keys(element, {"type", "text", "action_id", "value", "style", "url", "confirm",
                    "accessibility_label"}, path, errors)  # fmt: skip
    _text(element.get("text"), 75, f"{path}/text", errors, plain=True)
    _action_id(element, path, errors, seen)
    if "value" in element:
        _string(element["value"], 2000, f"{path}/value", errors)
    if element.get("style", "primary") not in ("primary", "danger"):
        errors.append(f"{path}/style: must be primary or danger")


def _select(element: Mapping[str, Any], path: str, errors: list[str], seen: set[str]) -> None:
    _keys(element, {"type", "action_id", "options", "placeholder", "initial_option", "confirm",
                    "focus_on_load"}, path, errors)  # fmt: skip
    _action_id(element, path, errors, seen)
    if "placeholder" in element:
        _text(element["placeholder"], 150, f"{path}/placeholder", errors, plain=True)
    options = element.get("options")
    if not isinstance(options, list) or not 0 < len(options) <= 100:
        errors.append(f"{path}/options: must list 1 to 100 options")
        return
    for j, option in enumerate(options):
        _keys(option, {"text", "value", "description"}, f"{path}/options/{j}", errors)
        _text(option.get("text"), 75, f"{path}/options/{j}/text", errors, plain=True)
        _string(option.get("value"), 150, f"{path}/options/{j}/value", errors)


def _text_input(element: Mapping[str, Any], path: str, errors: list[str], seen: set[str]) -> None:
    _keys(element, {"type", "action_id", "multiline", "min_length", "max_length", "placeholder",
                    "initial_value", "focus_on_load", "dispatch_action_config"}, path, errors)  # fmt: skip
    _action_id(element, path, errors, seen)
    if "placeholder" in element:
        _text(element["placeholder"], 150, f"{path}/placeholder", errors, plain=True)
    if not 0 < element.get("max_length", 3000) <= 3000:
        errors.append(f"{path}/max_length: must be 1 to 3000")


ELEMENTS = {"button": _button, "static_select": _select, "plain_text_input": _text_input}


def _check_header(block: dict[str, Any], path: str, errors: list[str], seen: set[str]) -> None:
    _text(block.get("text"), 150, f"{path}/text", errors, plain=True)


def _check_section(block: dict[str, Any], path: str, errors: list[str], seen: set[str]) -> None:
    if "text" not in block and "fields" not in block:
        errors.append(f"{path}: a section needs text or fields")
    if "text" in block:
        _text(block["text"], 3000, f"{path}/text", errors)
    fields = block.get("fields", [])
    if not isinstance(fields, list) or len(fields) > 10:
        errors.append(f"{path}/fields: at most 10")
    for j, field in enumerate(fields if isinstance(fields, list) else []):
        _text(field, 2000, f"{path}/fields/{j}", errors)


def _check_context(block: dict[str, Any], path: str, errors: list[str], seen: set[str]) -> None:
    elements = block.get("elements")
    if not isinstance(elements, list) or not 0 < len(elements) <= 10:
        errors.append(f"{path}/elements: must hold 1 to 10 elements")
        return
    for j, element in enumerate(elements):
        _text(element, 2000, f"{path}/elements/{j}", errors)


def _check_actions(block: dict[str, Any], path: str, errors: list[str], seen: set[str]) -> None:
    elements = block.get("elements")
    if not isinstance(elements, list) or not 0 < len(elements) <= 25:
        errors.append(f"{path}/elements: must hold 1 to 25 elements")
        return
    for j, element in enumerate(elements):
        kind = str(element.get("type"))
        check = ELEMENTS.get(kind) if kind != "plain_text_input" else None
        if check is None:
            errors.append(f"{path}/elements/{j}: unsupported element {element.get('type')!r}")
        else:
            check(element, f"{path}/elements/{j}", errors, seen)


def _check_input(block: dict[str, Any], path: str, errors: list[str], seen: set[str]) -> None:
    _text(block.get("label"), 2000, f"{path}/label", errors, plain=True)
    element = block.get("element") or {}
    kind = str(element.get("type"))
    check = ELEMENTS.get(kind) if kind != "button" else None
    if check is None:
        errors.append(f"{path}/element: unsupported element {element.get('type')!r}")
    else:
        check(element, f"{path}/element", errors, seen)


def _check_divider(block: dict[str, Any], path: str, errors: list[str], seen: set[str]) -> None:
    pass


BLOCKS = {
    "header": {"type", "block_id", "text"},
    "section": {"type", "block_id", "text", "fields", "accessory"},
    "context": {"type", "block_id", "elements"},
    "actions": {"type", "block_id", "elements"},
    "divider": {"type", "block_id"},
    "input": {"type", "block_id", "label", "element", "hint", "optional", "dispatch_action"},
}
CHECKS = {"header": _check_header, "section": _check_section, "context": _check_context,
          "actions": _check_actions, "divider": _check_divider, "input": _check_input}  # fmt: skip
