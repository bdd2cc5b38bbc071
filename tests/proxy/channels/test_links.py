"""Signed links on their own: what a token carries, and every way a bad one is refused."""

from __future__ import annotations

import base64
import secrets
import stat
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from proxy.channels.links import (
    KEY_BYTES,
    MAC_BYTES,
    LinkClaim,
    LinkExpired,
    LinkKeyError,
    LinkSigner,
    LinkTampered,
    LinkUsed,
)

URL = "https://approve.example.com"
T0 = 1_700_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


def signer(clock: Clock | None = None, key: bytes | None = None) -> LinkSigner:
    return LinkSigner(key or secrets.token_bytes(KEY_BYTES), URL, clock=clock or Clock())


def token_of(url: str) -> str:
    return url.removeprefix(f"{URL}/l/").split("?")[0]


def raw(token: str) -> bytes:
    return base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))


def encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def mint(links: LinkSigner, hold_id: str = "h_0123456789ab", **kw: object) -> str:
    args: dict[str, object] = {"audience": "alice", "channel": "manual", "expires_at": T0 + 300}
    made = links.mint(hold_id, **(args | kw))  # type: ignore[arg-type]
    return token_of(made.review)


def test_a_link_round_trips_its_claim_and_the_buttons_only_preselect() -> None:
    links = signer()
    made = links.mint("h_0123456789ab", audience="ops-hook", channel="ops-hook",
                      expires_at=T0 + 300.7)  # fmt: skip
    token = token_of(made.review)
    assert made.review == f"{URL}/l/{token}" and "=" not in token
    assert (made.approve, made.deny) == (
        f"{made.review}?action=approve",
        f"{made.review}?action=deny",
    )
    claim = links.verify(token)
    assert claim == LinkClaim("h_0123456789ab", "ops-hook", "ops-hook", T0 + 300, claim.nonce)
    assert len(claim.nonce) == 12
    assert links.verify(token_of(made.approve)) == claim  # the query is not part of the token
    other = links.mint(
        "h_0123456789ab", audience="ops-hook", channel="ops-hook", expires_at=T0 + 300
    )
    assert token_of(other.review) != token  # a fresh nonce each time
    assert len(made.review) < 200  # short enough to paste into a chat message


def test_every_byte_and_every_character_is_covered_by_the_signature() -> None:
    links = signer()
    token = mint(links)
    data = raw(token)
    for i in range(len(data)):  # version, expiry, nonce, hold id, audience, channel, MAC
        for flip in (0x01, 0x80):
            edited = bytearray(data)
            edited[i] ^= flip
            with pytest.raises(LinkTampered):
                links.verify(encode(bytes(edited)))
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    for i, char in enumerate(token):  # the last character has spare bits: they count too
        for other in (
            alphabet[(alphabet.index(char) + 1) % 64],
            alphabet[alphabet.index(char) ^ 1],
        ):
            with pytest.raises(LinkTampered):
                links.verify(token[:i] + other + token[i + 1 :])


@pytest.mark.parametrize(
    "mangle",
    [
        lambda t: t[:-1], lambda t: t + "A", lambda t: t + "==", lambda t: t[: len(t) // 2],
        lambda t: "", lambda t: "A" * 22, lambda t: t.replace(t[3], "é", 1),
        lambda t: t[:5] + "+" + t[6:], lambda t: t[:5] + "/" + t[6:], lambda t: t[:5] + "." + t[6:],
        lambda t: encode(raw(t)[-MAC_BYTES:]), lambda t: t + "AAAA", lambda t: t + t,
    ],
)  # fmt: skip
def test_mangled_tokens_are_refused(mangle: Callable[[str], str]) -> None:
    links = signer()
    with pytest.raises(LinkTampered):
        links.verify(mangle(mint(links)))


def test_a_link_for_one_hold_cannot_be_turned_into_one_for_another() -> None:
    links = signer()
    first, second = raw(mint(links, "h_aaaaaaaaaaaa")), raw(mint(links, "h_bbbbbbbbbbbb"))
    swapped = first.replace(b"h_aaaaaaaaaaaa", b"h_bbbbbbbbbbbb")
    assert swapped != first
    with pytest.raises(LinkTampered):
        links.verify(encode(swapped))
    spliced = first[:-MAC_BYTES] + second[-MAC_BYTES:]  # someone else's valid MAC
    with pytest.raises(LinkTampered):
        links.verify(encode(spliced))
    longer = raw(mint(links, audience="bob"))[:-MAC_BYTES] + b"x" + first[-MAC_BYTES:]
    with pytest.raises(LinkTampered):
        links.verify(encode(longer))


def test_another_key_does_not_verify() -> None:
    token = mint(signer())
    with pytest.raises(LinkTampered):
        signer().verify(token)
    assert signer().claim_of(token) is None


def test_a_link_expires_at_its_second() -> None:
    clock = Clock()
    links = signer(clock)
    token = mint(links, expires_at=T0 + 60)
    clock.now = T0 + 59.9
    assert links.verify(token).expires_at == T0 + 60
    clock.now = T0 + 60
    with pytest.raises(LinkExpired):
        links.verify(token)
    claim = links.claim_of(token)  # still readable, to say what became of the hold
    assert claim is not None and claim.hold_id == "h_0123456789ab"


def test_a_spent_link_is_used_and_a_refund_gives_it_back() -> None:
    clock = Clock()
    links = signer(clock)
    token, other = mint(links), mint(links)
    claim = links.verify(token)
    links.spend(claim)
    with pytest.raises(LinkUsed):
        links.verify(token)
    with pytest.raises(LinkUsed):
        links.spend(claim)
    assert links.verify(other).hold_id == claim.hold_id  # its own nonce: not spent
    links.refund(claim)
    assert links.verify(token) == claim
    links.spend(claim)
    clock.now = T0 + 301  # spent links are forgotten once they would have expired anyway
    links.spend(links.verify(mint(links, expires_at=T0 + 900)))
    assert len(links._spent) == 1
    with pytest.raises(LinkExpired):
        links.verify(token)


def test_key_file_is_created_once_private_and_checked(tmp_path: Path) -> None:
    path = tmp_path / "links.key"
    first = LinkSigner.load_or_create(path, URL)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and len(path.read_bytes()) == KEY_BYTES
    again = LinkSigner.load_or_create(path, URL)
    token = mint(first, expires_at=time.time() + 300)
    assert again.verify(token).audience == "alice"  # links survive a restart's key load
    path.write_bytes(b"short")
    with pytest.raises(LinkKeyError, match=rf"{path} holds 5 bytes, not 32"):
        LinkSigner.load_or_create(path, URL)
    with pytest.raises(LinkKeyError, match="cannot create the link key"):
        LinkSigner.load_or_create(tmp_path / "missing" / "links.key", URL)


def test_public_url_and_audience_are_checked() -> None:
    links = signer()
    for bad in ["ftp://x", "https://", "approve.example", "https://x/?a=1", "https://u:p@x"]:
        with pytest.raises(ValueError, match="public URL"):
            links.public_url = bad
    links.public_url = "http://127.0.0.1:8443/"
    assert (links.public_url, links.origin, links.secure) == (
        "http://127.0.0.1:8443", "http://127.0.0.1:8443", False)  # fmt: skip
    links.public_url = "https://approve.example.com/interlock"
    assert (links.origin, links.secure) == ("https://approve.example.com", True)
    made = links.mint("h_1", audience="alice", channel="manual", expires_at=T0 + 60)
    assert made.review.startswith("https://approve.example.com/interlock/l/")
    for audience in ["", "-x", "a b", "x" * 65, "é"]:
        with pytest.raises(ValueError, match="invalid link audience"):
            mint(links, audience=audience)
    assert mint(links, audience="alice@example.com")
    with pytest.raises(ValueError, match="channel must be 1 to 255 bytes"):
        mint(links, channel="")
    unset = LinkSigner(secrets.token_bytes(KEY_BYTES))
    with pytest.raises(RuntimeError, match="public listener's URL"):
        mint(unset)


def test_the_csrf_field_binds_the_cookie_to_the_link() -> None:
    links = signer()
    token, other = mint(links), mint(links)
    field = links.csrf_field("cookie-one-value", token)
    assert links.csrf_ok("cookie-one-value", token, field)
    assert not links.csrf_ok("cookie-two-value", token, field)
    assert not links.csrf_ok("cookie-one-value", other, field)
    assert not links.csrf_ok("", token, links.csrf_field("", token))
    assert not links.csrf_ok("cookie-one-value", token, "")
    assert not links.csrf_ok("cookie-one-value", token, "é" + field[1:])
    assert signer().csrf_field("cookie-one-value", token) != field  # keyed
