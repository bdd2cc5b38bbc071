"""The webhook channel: one signed JSON POST per hold event, to a URL the policy names.

The receiver's side (payload, headers, signature, retries) is documented in WEBHOOKS.md.
"""

from __future__ import annotations

import asyncio
import email.utils
import hashlib
import hmac
import json
import os
import re
import time
from collections.abc import Callable, Mapping
from datetime import UTC
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from typing import Any

import httpx

from policies.model import Channel
from proxy.channels.base import NOTICE_EVENTS, ChannelError, Notice, resolve_secret
from proxy.redact import REDACTED, Redactor

DEFAULT_TIMEOUT = 5.0  # seconds for each of connect, write and read; twice that for an attempt
MAX_RETRY_AFTER = 300.0  # a receiver's Retry-After is honoured up to five minutes
MAX_ERROR_TEXT = 200  # characters of a refusing receiver's answer kept in the error message
_ERROR_READ = 4096  # bytes of that answer read, and redacted before cutting

# The part of Hold.to_json() a receiver gets: a summary, never the request's headers.
SUMMARY_KEYS = (
    "id", "request_id", "agent", "method", "url", "host", "rule", "reason", "severity",
    "created_at", "deadline", "approvals_needed", "votes", "state", "decided_by", "channel",
    "decision_reason", "decided_at", "body_preview", "client_gone",
)  # fmt: skip
# Headers Interlock sets itself; a policy's `headers` may not name them.
RESERVED_HEADERS = frozenset({
    "content-type", "content-length", "content-encoding", "transfer-encoding", "host",
    "connection",
})  # fmt: skip
RESERVED_PREFIX = "x-interlock-"
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # an HTTP header name (RFC 9110 token)
_SECONDS = re.compile(r"\d+(?:\.\d+)?")


def _user_agent() -> str:
    try:
        return f"interlock/{package_version('interlock')}"
    except PackageNotFoundError:
        return "interlock/dev"


USER_AGENT = _user_agent()


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The `X-Interlock-Signature` value: HMAC-SHA256 over `timestamp.body`, keyed by the secret."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return f"v1={mac.hexdigest()}"


def delivery_id(channel: str, notice: Notice) -> str:
    """An id that is the same for every attempt at one notice, so receivers can drop repeats."""
    votes = len(notice.hold.get("votes") or ())
    basis = f"{channel}\n{notice.hold_id}\n{notice.event}\n{votes}\n{int(notice.escalated)}"
    return "dlv_" + hashlib.sha256(basis.encode()).hexdigest()[:32]


def payload(notice: Notice, delivery: str, sent_at: int) -> dict[str, Any]:
    """The JSON event for one notice; the hold part is a summary of the redacted hold."""
    links = notice.links
    return {
        "type": notice.event,
        "id": delivery,
        "sent_at": sent_at,
        "escalated": notice.escalated,
        "hold": {key: notice.hold.get(key) for key in SUMMARY_KEYS},
        "links": None
        if links is None
        else {"review": links.review, "approve": links.approve, "deny": links.deny},
    }


def retry_after(value: str | None, now: float) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date), capped; None if absent."""
    if not value or not value.strip():
        return None
    value = value.strip()
    if _SECONDS.fullmatch(value):
        seconds = float(value)
    else:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = when.timestamp() - now
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


def is_retryable(status: int) -> bool:
    """Whether waiting may fix a refusal: timeouts, rate limits and server errors, not the rest."""
    return status in (408, 425, 429) or status >= 500


class WebhookNotifier:
    """POSTs each notice once, signed; `send` raises ChannelError and the hub retries."""

    def __init__(
        self,
        channel: Channel,
        *,
        environ: Mapping[str, str] = os.environ,
        client: httpx.AsyncClient | None = None,
        clock: Callable[[], float] = time.time,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self.channel = channel
        self.environ = environ
        self.clock = clock
        self.timeout = timeout
        self._client = client
        self._owns_client = False
        self._secret: str | None = None
        self._url = httpx.URL()
        self._headers: dict[str, str] = {}
        self._redactor = Redactor()

    @property
    def name(self) -> str:
        return self.channel.name

    @property
    def wants_links(self) -> bool:
        return True

    async def start(self) -> None:
        """Check the settings and read the secret; a problem is a ChannelError naming it."""
        settings = self.channel.settings
        self._url = self._parse_url(settings.get("url"))
        self._headers = self._extra_headers(settings.get("headers"))
        self._secret = resolve_secret(settings.get("secret"), self.environ)
        if self._client is None:
            # The proxy's own environment may point HTTP(S)_PROXY at itself: never use it.
            self._client = httpx.AsyncClient(
                timeout=httpx.Timeout(self.timeout), follow_redirects=False, trust_env=False
            )
            self._owns_client = True

    async def send(self, notice: Notice) -> None:
        """One attempt at delivering `notice`; returns when the receiver answered 2xx."""
        if self._client is None or self._secret is None:
            raise RuntimeError(f"webhook channel {self.name}: send() before start()")
        if notice.event not in NOTICE_EVENTS:
            raise ChannelError(f"unknown event {notice.event!r}", retryable=False)
        now = self.clock()
        timestamp = str(int(now))
        delivery = delivery_id(self.name, notice)
        body = json.dumps(
            payload(notice, delivery, int(now)), ensure_ascii=False, separators=(",", ":")
        ).encode()
        headers = {
            **self._headers,
            "User-Agent": self._headers.get("User-Agent", USER_AGENT),
            "Content-Type": "application/json",
            "X-Interlock-Event": notice.event,
            "X-Interlock-Delivery": delivery,
            "X-Interlock-Timestamp": timestamp,
            "X-Interlock-Signature": sign(self._secret, timestamp, body),
        }
        target = self._target()
        try:
            async with (
                asyncio.timeout(2 * self.timeout),
                self._client.stream("POST", self._url, content=body, headers=headers) as response,
            ):
                if 200 <= response.status_code < 300:
                    return
                text = await self._answer(response)
        except (httpx.TimeoutException, TimeoutError):
            raise ChannelError(f"{target} did not answer within {self.timeout:g} s") from None
        except httpx.UnsupportedProtocol as exc:
            raise ChannelError(f"cannot post to {target}: {exc}", retryable=False) from None
        except httpx.HTTPError as exc:
            reason = self._scrub(str(exc) or type(exc).__name__)
            raise ChannelError(f"cannot reach {target}: {reason}") from None
        status = response.status_code
        message = f"{target} answered {status} {response.reason_phrase}".rstrip()
        if 300 <= status < 400:
            message += " (redirects are not followed: set the url to the final address)"
        if text:
            message += f": {text}"
        if not is_retryable(status):
            raise ChannelError(message, retryable=False)
        delay = retry_after(response.headers.get("Retry-After"), now)
        raise ChannelError(message, retry_after=delay)

    async def close(self) -> None:
        if self._owns_client and self._client is not None:
            await self._client.aclose()
            self._client = None
            self._owns_client = False

    # -- helpers ------------------------------------------------------------------------------

    def _parse_url(self, value: object) -> httpx.URL:
        if not isinstance(value, str) or not value:
            raise ChannelError("webhook url must be an http(s) URL", retryable=False)
        try:
            url = httpx.URL(value)
        except httpx.InvalidURL as exc:
            raise ChannelError(f"webhook url is not a valid URL: {exc}", retryable=False) from None
        if url.scheme not in ("http", "https") or not url.host:
            raise ChannelError("webhook url must be an http(s) URL with a host", retryable=False)
        return url

    def _extra_headers(self, value: object) -> dict[str, str]:
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise ChannelError("webhook headers must be a mapping of strings", retryable=False)
        headers: dict[str, str] = {}
        for name, text in value.items():
            if not isinstance(name, str) or not _TOKEN.fullmatch(name):
                raise ChannelError(f"webhook header name {name!r} is not valid", retryable=False)
            lower = name.lower()
            if lower in RESERVED_HEADERS or lower.startswith(RESERVED_PREFIX):
                raise ChannelError(
                    f"webhook header {name} is set by Interlock and cannot be overridden",
                    retryable=False,
                )
            if not isinstance(text, str) or any(c in text for c in "\r\n\0"):
                raise ChannelError(f"webhook header {name} has an invalid value", retryable=False)
            headers["User-Agent" if lower == "user-agent" else name] = text
        return headers

    def _target(self) -> str:
        """Scheme, host and port only: a webhook URL's path or query is often itself a secret."""
        port = f":{self._url.port}" if self._url.port is not None else ""
        host = f"[{self._url.host}]" if ":" in self._url.host else self._url.host
        return f"{self._url.scheme}://{host}{port}"

    async def _answer(self, response: httpx.Response) -> str:
        """The start of a refusing receiver's answer, on one line, with secrets hidden."""
        data = b""
        async for chunk in response.aiter_bytes():
            data += chunk
            if len(data) >= _ERROR_READ:
                break
        text = " ".join(data[:_ERROR_READ].decode("utf-8", "replace").split())
        text = self._scrub(text)
        return text if len(text) <= MAX_ERROR_TEXT else text[:MAX_ERROR_TEXT] + "…"

    def _scrub(self, text: str) -> str:
        """Text with secrets hidden, the webhook's own secret and full URL included."""
        text = text.replace(str(self._url), self._target())
        text = self._redactor.redact_text(text)
        if self._secret:
            text = text.replace(self._secret, REDACTED)
        return text
