"""Signed links: single-use, expiring URLs to one hold's page on the public listener.

A token is `base64url(payload + mac)`: the payload names the hold, who the link is for, where it
was sent, its expiry and a random nonce; the MAC is a truncated HMAC-SHA256 under a key kept in the
data directory. Spent nonces are kept in memory only, which is enough because holds do not survive
a restart either: after one, every link points to a hold the proxy no longer knows.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import os
import re
import secrets
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from proxy.channels.base import Links
from proxy.outcomes import person

KEY_FILE = "links.key"
KEY_BYTES = 32
MAC_BYTES = 16  # 128 bits: forging one is out of reach, and the URL stays short enough to paste
NONCE_BYTES = 12
VERSION = 1
MANUAL = "manual"  # the channel of a link made with `interlock link`: `manual:MAKER`


class LinkError(Exception):
    """A link that cannot be used; `status` is the HTTP status its page answers with."""

    status = 400


class LinkTampered(LinkError):
    """Not a token this proxy signed: mangled, edited, or signed with another key."""

    status = 404


class LinkExpired(LinkError):
    status = 410


class LinkUsed(LinkError):
    status = 410


class LinkKeyError(ValueError):
    """The key file cannot be read or created, or holds something other than a key."""


@dataclass(frozen=True, slots=True)
class LinkClaim:
    """What a verified token says."""

    hold_id: str
    audience: str  # who decides through it: `decided_by("link", audience)`
    channel: str  # where it was sent: `channel_label("link", channel)`
    expires_at: float
    nonce: bytes


def manual_channel(maker: str) -> str:
    """The channel of a personal link an operator made: the maker is signed into the link."""
    return f"{MANUAL}:{maker}"


def is_personal(claim_channel: str) -> bool:
    """A link made for one named person, as opposed to one sent to all a webhook reaches."""
    return claim_channel == MANUAL or claim_channel.startswith(f"{MANUAL}:")


def people_behind(claim: LinkClaim) -> frozenset[str]:
    """Who a personal link's decision speaks for: its audience, and the operator who made it,
    so that nobody can make a link for someone else and count twice in a quorum."""
    people = {person(claim.audience)}
    maker = claim.channel.partition(":")[2]
    if maker:
        people.add(person(maker))
    return frozenset(people)


# Who a link is for: a webhook channel's name, or a person named to `interlock link --for`.
AUDIENCE_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@+-]{0,63}")
_HEAD = struct.Struct(">BQ")  # version, expiry in whole epoch seconds
_MAC_CONTEXT = b"interlock-link\x00"
_CSRF_CONTEXT = b"interlock-link-csrf\x00"


def check_audience(name: str) -> str:
    """`name` if it can be a link's audience, else ValueError naming it."""
    if not AUDIENCE_PATTERN.fullmatch(name):
        raise ValueError(
            f"invalid link audience {name!r}: use 1-64 letters, digits, '_', '.', '@', '+' or "
            "'-', starting with a letter or digit"
        )
    return name


def check_public_url(url: str) -> str:
    """The public URL without a trailing slash, or ValueError naming what is wrong with it."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"public URL {url!r}: expected http(s)://HOST[:PORT][/PATH]")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ValueError(f"public URL {url!r}: no query, fragment or credentials allowed")
    return url.strip().rstrip("/")


class LinkSigner:
    """Mints and verifies signed links, and remembers which ones were spent."""

    def __init__(
        self, key: bytes, public_url: str = "", *, clock: Callable[[], float] = time.time
    ) -> None:
        if len(key) < KEY_BYTES:
            raise ValueError(f"a link key needs at least {KEY_BYTES} bytes, not {len(key)}")
        self._key = key
        self._csrf_key = hmac.digest(key, _CSRF_CONTEXT, "sha256")
        self.public_url = public_url
        self.clock = clock
        self._spent: dict[bytes, float] = {}  # nonce -> expiry, dropped once expired

    @property
    def public_url(self) -> str:
        """Where the public listener is reached; empty until known (port 0 binds first)."""
        return self._public_url

    @public_url.setter
    def public_url(self, url: str) -> None:
        self._public_url = check_public_url(url) if url else ""
        parts = urlsplit(self._public_url)
        self.origin = f"{parts.scheme}://{parts.netloc}" if url else ""
        self.secure = parts.scheme == "https"

    @classmethod
    def load_or_create(cls, path: Path, public_url: str = "") -> LinkSigner:
        """The signer whose key is in `path`, creating the key (mode 0600) on first use."""
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        except FileExistsError:
            pass  # made before, or by another process a moment ago
        except OSError as exc:
            raise LinkKeyError(f"cannot create the link key {path}: {exc}") from exc
        else:
            with os.fdopen(fd, "wb") as file:
                file.write(secrets.token_bytes(KEY_BYTES))
                file.flush()
                os.fsync(file.fileno())
        try:
            key = path.read_bytes()
        except OSError as exc:
            raise LinkKeyError(f"cannot read the link key {path}: {exc}") from exc
        if len(key) != KEY_BYTES:
            raise LinkKeyError(
                f"the link key {path} holds {len(key)} bytes, not {KEY_BYTES}: delete it to "
                "make a new one (links already sent stop working)"
            )
        return cls(key, public_url)

    # -- tokens ---------------------------------------------------------------------------------

    def mint(self, hold_id: str, *, audience: str, channel: str, expires_at: float) -> Links:
        """Links to `hold_id`'s page for `audience`, sent through `channel`, until `expires_at`."""
        if not self._public_url:
            raise RuntimeError("signed links need the public listener's URL, which is not set")
        fields = [hold_id.encode(), check_audience(audience).encode(), channel.encode()]
        for name, value in zip(("hold id", "audience", "channel"), fields, strict=True):
            if not 0 < len(value) < 256:
                raise ValueError(f"a link's {name} must be 1 to 255 bytes, not {len(value)}")
        payload = _HEAD.pack(VERSION, int(expires_at)) + secrets.token_bytes(NONCE_BYTES)
        payload += b"".join(bytes([len(value)]) + value for value in fields)
        token = _b64encode(payload + self._mac(payload))
        review = f"{self.public_url}/l/{token}"
        return Links(review=review, approve=f"{review}?action=approve",
                     deny=f"{review}?action=deny")  # fmt: skip

    def verify(self, token: str) -> LinkClaim:
        """The claim of a token this proxy signed that is neither spent nor expired.

        Raises LinkTampered, LinkUsed or LinkExpired, checked in that order.
        """
        claim = self._decode(token)
        if claim.nonce in self._spent:
            raise LinkUsed("this link was already used")
        if self.clock() >= claim.expires_at:
            raise LinkExpired("this link has expired")
        return claim

    def claim_of(self, token: str) -> LinkClaim | None:
        """What a genuine token says even when spent or expired (to say what became of its hold)."""
        try:
            return self._decode(token)
        except LinkTampered:
            return None

    def spend(self, claim: LinkClaim) -> None:
        """Mark a link used before its decision is taken, so two submits cannot both count.

        Raises LinkUsed if it already was; `refund` undoes it when the decision was refused.
        """
        now = self.clock()
        for nonce in [n for n, expiry in self._spent.items() if expiry <= now]:
            del self._spent[nonce]  # an expired link is refused for that reason anyway
        if claim.nonce in self._spent:
            raise LinkUsed("this link was already used")
        self._spent[claim.nonce] = claim.expires_at

    def refund(self, claim: LinkClaim) -> None:
        self._spent.pop(claim.nonce, None)

    def _mac(self, payload: bytes) -> bytes:
        return hmac.digest(self._key, _MAC_CONTEXT + payload, "sha256")[:MAC_BYTES]

    def _decode(self, token: str) -> LinkClaim:
        tampered = LinkTampered("this link is not valid")
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except (binascii.Error, ValueError):
            raise tampered from None
        # Only the canonical spelling counts: no padding, no stray bits in the last character.
        if len(raw) <= MAC_BYTES or _b64encode(raw) != token:
            raise tampered
        payload, mac = raw[:-MAC_BYTES], raw[-MAC_BYTES:]
        if not hmac.compare_digest(mac, self._mac(payload)):
            raise tampered
        try:
            version, expires_at = _HEAD.unpack_from(payload)
            nonce = payload[_HEAD.size : _HEAD.size + NONCE_BYTES]
            fields, at = [], _HEAD.size + NONCE_BYTES
            for _ in range(3):
                size = payload[at]
                fields.append(payload[at + 1 : at + 1 + size].decode())
                at += 1 + size
        except (IndexError, struct.error, UnicodeError):
            raise tampered from None  # signed by us but not a shape we write: refuse all the same
        if version != VERSION or at != len(payload):
            raise tampered
        hold_id, audience, channel = fields
        return LinkClaim(hold_id, audience, channel, float(expires_at), nonce)

    # -- the form's CSRF field ------------------------------------------------------------------

    def csrf_field(self, cookie: str, token: str) -> str:
        """The hidden form field that pairs the browser's CSRF cookie with this link."""
        message = cookie.encode() + b"\x00" + token.encode()
        return _b64encode(hmac.digest(self._csrf_key, message, "sha256")[:MAC_BYTES])

    def csrf_ok(self, cookie: str, token: str, field: str) -> bool:
        if not cookie or not field:
            return False
        return hmac.compare_digest(self.csrf_field(cookie, token).encode(), field.encode())


def new_csrf_cookie() -> str:
    return secrets.token_urlsafe(16)


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")
