"""The contract between the hub and one channel: what it is told, how it fails, how it decides."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from policies.model import SecretRef
from proxy.outcomes import person

# Events a channel is told about, in the order they can happen for one hold.
HOLD_CREATED = "hold.created"
HOLD_VOTE = "hold.vote"
HOLD_DECIDED = "hold.decided"
HOLD_EXPIRED = "hold.expired"
NOTICE_EVENTS = (HOLD_CREATED, HOLD_VOTE, HOLD_DECIDED, HOLD_EXPIRED)


class ChannelError(Exception):
    """A delivery that failed. `retryable` is false for what waiting will not fix (a bad token, an
    unknown Slack channel); `retry_after` is the delay the service asked for, in seconds."""

    def __init__(
        self, message: str, *, retryable: bool = True, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class Links:
    """Signed links to one hold's review page on the public listener, for one audience."""

    review: str  # the page: summary, Approve and Deny
    approve: str  # the same page with Approve preselected (nothing happens on GET)
    deny: str  # the same page with Deny and its reason box preselected


@dataclass(frozen=True, slots=True)
class Notice:
    """One thing to tell a channel about one hold.

    `hold` is `Hold.to_json()`: already redacted, safe to send. `links` is set when the proxy has
    a public URL and the channel shows links (webhooks do; Slack has its own buttons).
    """

    event: str  # one of NOTICE_EVENTS
    hold: dict[str, Any]
    links: Links | None = None
    escalated: bool = False  # told because nobody decided in time on the channels before it

    @property
    def hold_id(self) -> str:
        return str(self.hold["id"])

    @property
    def final(self) -> bool:
        return self.event in (HOLD_DECIDED, HOLD_EXPIRED)


class Decide(Protocol):
    """`HoldQueue.decide`: raises HoldError subclasses (404, 409, 400) a channel must report."""

    async def __call__(
        self,
        hold_id: str,
        *,
        approve: bool,
        by: str,
        channel: str,
        reason: str | None = None,
        people: Iterable[str] = (),
    ) -> Any: ...


class Notifier(Protocol):
    """One configured channel. `send` raises ChannelError; the hub retries and reports it."""

    @property
    def name(self) -> str: ...

    @property
    def wants_links(self) -> bool: ...

    async def start(self) -> None: ...

    async def send(self, notice: Notice) -> None: ...

    async def close(self) -> None: ...


def decided_by(kind: str, who: str) -> str:
    """The `decided_by` of a decision taken on a remote channel: `person:slack:U012AB3CD`."""
    return person(f"{kind}:{who}")


def channel_label(kind: str, name: str) -> str:
    """The audit `channel` of a decision taken on a remote channel: `slack:oncall`."""
    return f"{kind}:{name}"


def resolve_secret(ref: object, environ: Mapping[str, str] = os.environ) -> str:
    """The value a policy's secret reference points to, or ChannelError naming what is missing.

    Read when a channel starts (and again on policy reload), never stored in the policy.
    """
    if not isinstance(ref, SecretRef):
        raise ChannelError(
            "a secret must be a reference {env: NAME} or {file: PATH}", retryable=False
        )
    if ref.env is not None:
        value = environ.get(ref.env, "")
        if not value.strip():
            raise ChannelError(f"environment variable {ref.env} is not set", retryable=False)
        return value.strip()
    assert ref.file is not None
    try:
        value = Path(ref.file).read_text(encoding="utf-8")
    except (OSError, UnicodeError) as exc:
        raise ChannelError(f"cannot read secret file {ref.file}: {exc}", retryable=False) from exc
    if not value.strip():
        raise ChannelError(f"secret file {ref.file} is empty", retryable=False)
    return value.strip()
