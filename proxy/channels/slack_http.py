"""Slack's interactivity endpoint for `mode: http` channels: POST /slack/interactions.

The public listener is reachable from the internet, so a request is read only when it carries a
valid `v0` signature by one channel's signing secret, made within five minutes (no replays).
Slack gets its answer at once; the decision runs in the owning notifier's background task.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from proxy.channels.slack import SlackNotifier, route

log = logging.getLogger(__name__)

WINDOW = 300.0  # seconds a signed request stays acceptable (Slack's recommendation)
MAX_BODY = 1 << 20  # interaction payloads are a few kB; a larger body is not Slack's


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """Slack's `v0` signature: HMAC-SHA256 of `v0:{timestamp}:{body}` keyed by the secret."""
    message = b"v0:" + timestamp.encode() + b":" + body
    return "v0=" + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def verify(
    secret: str, timestamp: str, body: bytes, signed: str, *, now: float, window: float = WINDOW
) -> bool:
    """True for a request signed with `secret` at a time within `window` seconds of `now`."""
    if not (secret and timestamp.isascii() and timestamp.isdigit() and signed.startswith("v0=")):
        return False
    if abs(now - int(timestamp)) > window:
        return False
    expected = signature(secret, timestamp, body).encode()
    return hmac.compare_digest(expected, signed.encode("utf-8", "replace"))


class SlackInteractions:
    """The handler the public listener mounts at POST /slack/interactions.

    `notifiers` returns the running channels (it changes on policy reload); the ones in http
    mode are tried in turn, and the interaction goes to the one whose hold or channel it is.
    """

    def __init__(
        self,
        notifiers: Callable[[], Iterable[object]],
        *,
        clock: Callable[[], float] = time.time,
        window: float = WINDOW,
    ) -> None:
        self.notifiers, self.clock, self.window = notifiers, clock, window

    async def handle(self, request: Request) -> Response:
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BODY:
                return Response("request too large", status_code=413)
        timestamp = request.headers.get("x-slack-request-timestamp", "")
        signed = request.headers.get("x-slack-signature", "")
        now = self.clock()
        signers = [
            n
            for n in self.notifiers()
            if isinstance(n, SlackNotifier)
            and n.signing_secret
            and verify(
                n.signing_secret, timestamp, bytes(body), signed, now=now, window=self.window
            )
        ]
        if not signers:  # unsigned, stale, tampered, or not for any channel of ours
            log.info("interlock: ignored an unsigned or stale call to /slack/interactions")
            return Response(status_code=401)
        payload = _payload(bytes(body))
        if payload is None:
            return Response("expected a form field `payload` holding JSON", status_code=400)
        owner = route(payload, signers)
        if owner is None:
            log.info("interlock: a Slack interaction for no channel of this policy was ignored")
            return Response(status_code=200)
        ack = owner.interaction(payload)
        return JSONResponse(ack) if ack is not None else Response(status_code=200)


def _payload(body: bytes) -> Mapping[str, Any] | None:
    """The JSON `payload` field of Slack's form-encoded interaction request."""
    try:
        fields = parse_qs(body.decode("utf-8"), max_num_fields=20)
        payload = json.loads(fields["payload"][0])
    except (UnicodeDecodeError, ValueError, KeyError, IndexError):
        return None
    return payload if isinstance(payload, dict) else None
