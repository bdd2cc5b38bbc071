"""Fixed bypass vectors and properties for host, IP and path normalization."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from policies.normalize import normalize_host, normalize_path, parse_ip, strict_path_variants

# --- parse_ip -------------------------------------------------------------------------------

PARSE_IP_CASES = [
    ("127.0.0.1", "127.0.0.1"),
    ("2130706433", "127.0.0.1"),
    ("0x7f000001", "127.0.0.1"),
    ("0X7F000001", "127.0.0.1"),
    ("0xa9fea9fe", "169.254.169.254"),
    ("0251.0376.0251.0376", "169.254.169.254"),
    ("0177.0.0.1", "127.0.0.1"),
    ("0000000177.0.0.01", "127.0.0.1"),
    ("127.1", "127.0.0.1"),
    ("10.1.1", "10.1.0.1"),
    ("0x7f.1", "127.0.0.1"),
    ("0xA9.0xFE.0xa9.0xfe", "169.254.169.254"),
    ("169.16689662", "169.254.169.254"),
    ("169.254.43518", "169.254.169.254"),
    ("0", "0.0.0.0"),
    ("4294967295", "255.255.255.255"),
    ("1.16777215", "1.255.255.255"),
    ("1.2.65535", "1.2.255.255"),
    ("127.0.0.1.", "127.0.0.1"),
    ("２１３０７０６４３３", "127.0.0.1"),
    ("１２７。０。０。１", "127.0.0.1"),
    ("::1", "::1"),
    ("::", "::"),
    ("[::1]", "::1"),
    ("2001:DB8::1", "2001:db8::1"),
    ("fe80::1%eth0", "fe80::1"),
    ("[fe80::1%25eth0]", "fe80::1"),
    ("::ffff:a9fe:a9fe", "169.254.169.254"),
    ("::ffff:169.254.169.254", "169.254.169.254"),
    ("[::FFFF:7F00:1]", "127.0.0.1"),
    ("::a9fe:a9fe", "169.254.169.254"),
    ("::127.0.0.1", "127.0.0.1"),
    ("64:ff9b::a9fe:a9fe", "169.254.169.254"),
    ("64:ff9b::169.254.169.254", "169.254.169.254"),
    ("64:ff9b::1:0:0", "64:ff9b::1:0:0"),
]


@pytest.mark.parametrize(("host", "expected"), PARSE_IP_CASES, ids=[c[0] for c in PARSE_IP_CASES])
def test_parse_ip_canonicalizes_every_spelling(host: str, expected: str) -> None:
    assert parse_ip(host) == ipaddress.ip_address(expected)


NOT_IPS = [
    "",
    ".",
    "example.com",
    "1.2.3.4.5",
    "256.1.1.1",
    "1.2.3.256",
    "1.16777216",
    "1.2.65536",
    "4294967296",
    "99999999999999999999",
    "0x1g",
    "0x",
    "08",
    "0.09",
    "1..2",
    "1.2.3.4..",
    ".1.2.3",
    "-1",
    "+1",
    "1_0",
    " 1.2.3.4",
    "1.2.3.4 ",
    "0x7f.1.example",
    "[127.0.0.1]",
    "::ffff:1.2.3.256",
    ":::1",
    "[::1",
]


@pytest.mark.parametrize("host", NOT_IPS, ids=[repr(h) for h in NOT_IPS])
def test_parse_ip_returns_none_for_non_literals(host: str) -> None:
    assert parse_ip(host) is None


def _spellings(number: int) -> list[str]:
    """Every spelling of one IPv4 address, formatted here rather than by the code under test."""
    octets = [(number >> shift) & 0xFF for shift in (24, 16, 8, 0)]
    high, low = number >> 16, number & 0xFFFF
    dotted = ".".join(str(octet) for octet in octets)
    spellings = [
        dotted,
        dotted + ".",
        str(number),
        f"0x{number:x}",
        f"0X{number:08X}",
        f"0{number:o}",
        ".".join(f"0{octet:o}" for octet in octets),
        ".".join(f"0x{octet:x}" for octet in octets),
        f"{octets[0]}.{number & 0xFFFFFF}",
        f"0x{octets[0]:x}.0{number & 0xFFFFFF:o}",
        f"{octets[0]}.{octets[1]}.{low}",
        f"::ffff:{high:x}:{low:x}",
        f"[::ffff:{dotted}]",
        f"64:ff9b::{high:x}:{low:x}",
        f"64:ff9b::{dotted}",
    ]
    if number > 1:
        spellings.append(f"::{high:x}:{low:x}")
    return spellings


@settings(max_examples=200)
@given(st.integers(min_value=0, max_value=2**32 - 1))
def test_every_ipv4_spelling_parses_to_the_same_address(number: int) -> None:
    expected = ipaddress.IPv4Address(number)
    canonical = ".".join(str((number >> shift) & 0xFF) for shift in (24, 16, 8, 0))
    for spelling in _spellings(number):
        assert parse_ip(spelling) == expected, spelling
        assert normalize_host(spelling) == canonical, spelling


# --- normalize_host ---------------------------------------------------------------------------

HOST_CASES = [
    ("example.com", "example.com"),
    ("Example.COM.", "example.com"),
    ("ＥＸＡＭＰＬＥ。com", "example.com"),
    ("example。com｡", "example.com"),
    ("bücher.de", "xn--bcher-kva.de"),
    ("BÜCHER.DE", "xn--bcher-kva.de"),
    ("xn--bcher-kva.de", "xn--bcher-kva.de"),
    ("_dmarc.Example.com", "_dmarc.example.com"),
    ("a-b.c-d.io", "a-b.c-d.io"),
    ("localhost", "localhost"),
    ("0x7f.1", "127.0.0.1"),
    ("2130706433", "127.0.0.1"),
    ("127.0.0.1.", "127.0.0.1"),
    ("[::1]", "::1"),
    ("::1", "::1"),
    ("[2001:DB8:0:0:0:0:0:1]", "2001:db8::1"),
    ("[::FFFF:127.0.0.1]", "127.0.0.1"),
    ("[fe80::1%25eth0]", "fe80::1"),
    ("256.1.1.1", "256.1.1.1"),
    ("a" * 63 + ".com", "a" * 63 + ".com"),
    (".".join(["a" * 63] * 3 + ["b" * 61]), ".".join(["a" * 63] * 3 + ["b" * 61])),
]


@pytest.mark.parametrize(("host", "expected"), HOST_CASES, ids=[c[0][:40] for c in HOST_CASES])
def test_normalize_host(host: str, expected: str) -> None:
    assert normalize_host(host) == expected


BAD_HOSTS = [
    ("", "empty"),
    (".", "empty-label"),
    ("..", "dots"),
    ("a..b", "inner-empty-label"),
    (".example.com", "leading-dot"),
    ("example.com..", "two-trailing-dots"),
    ("a" * 64 + ".com", "label-64"),
    (".".join(["a" * 63] * 3 + ["b" * 62]), "host-254"),
    ("exa mple.com", "space"),
    ("example.com:443", "port"),
    ("example.com/x", "slash"),
    ("*.example.com", "star"),
    ("user@example.com", "at"),
    ("[example.com]", "bracketed-name"),
    ("[127.0.0.1]", "bracketed-ipv4"),
    ("::g", "bad-ipv6"),
    ("\u00ad.com", "maps-to-empty-label"),
]


@pytest.mark.parametrize(("host", "why"), BAD_HOSTS, ids=[c[1] for c in BAD_HOSTS])
def test_normalize_host_rejects(host: str, why: str) -> None:
    with pytest.raises(ValueError, match="invalid host") as excinfo:
        normalize_host(host)
    assert repr(host) in str(excinfo.value)


_LABEL = st.text(
    alphabet=st.sampled_from("abcXYZ019-_äöüßÉ"),
    min_size=1,
    max_size=20,
)


@settings(max_examples=200)
@given(st.lists(_LABEL, min_size=1, max_size=4), st.booleans())
def test_normalize_host_is_idempotent(labels: list[str], trailing_dot: bool) -> None:
    host = ".".join(labels) + ("." if trailing_dot else "")
    try:
        once = normalize_host(host)
    except ValueError:
        assume(False)
        raise
    assert normalize_host(once) == once
    assert once == once.lower()
    assert not once.endswith(".")


# --- normalize_path ---------------------------------------------------------------------------

PATH_CASES = [
    ("/repos/a/b/pulls/1/../1/merge", "/repos/a/b/pulls/1/merge"),
    ("/%2e%2e/x", "/x"),
    ("/%2E%2E/%2e/x", "/x"),
    ("/a/.%2e/b", "/b"),
    ("//a///b//", "/a/b"),
    ("/a/%7Euser", "/a/~user"),
    ("/a/%7euser", "/a/~user"),
    ("/%41%62%63-%5F%2D", "/Abc-_-"),
    ("/a%2Fb", "/a%2Fb"),
    ("/a%2fb", "/a%2Fb"),
    ("/a%20b", "/a%20b"),
    ("/%e4%b8%ad", "/%E4%B8%AD"),
    ("/100%", "/100%25"),
    ("/%zz", "/%25zz"),
    ("/a;x=1/b;y", "/a/b"),
    ("/..;/admin", "/admin"),
    ("/a/;x/b", "/a/b"),
    ("/a/b/", "/a/b"),
    ("/a/./b/.", "/a/b"),
    ("/a/b/..", "/a"),
    ("/a/..", "/"),
    ("/../../x", "/x"),
    ("/a//../b", "/b"),
    ("/a?x=/../b", "/a"),
    ("/a/b?", "/a/b"),
    ("a/b", "/a/b"),
    ("", "/"),
    ("/", "/"),
    ("/.", "/"),
    ("/...", "/..."),
    ("/a\\..\\b", "/a\\..\\b"),
]


@pytest.mark.parametrize(("raw", "expected"), PATH_CASES, ids=[c[0] or "empty" for c in PATH_CASES])
def test_normalize_path(raw: str, expected: str) -> None:
    assert normalize_path(raw) == expected


STRICT_CASES = [
    ("/a/b", ("/a/b",)),
    ("/a/b?q=1", ("/a/b",)),
    ("/a/b/", ("/a/b/", "/a/b")),
    ("/a%2Fb", ("/a%2Fb", "/a/b")),
    ("/a%2fb", ("/a%2fb", "/a%2Fb", "/a/b")),
    ("/%252e%252e/admin", ("/%252e%252e/admin", "/admin")),
    ("/a\\..\\admin", ("/a\\..\\admin", "/admin")),
    ("/a//../b", ("/a//../b", "/b", "/a/b")),
    ("/Repos/X/MERGE;jsessionid=1", ("/Repos/X/MERGE;jsessionid=1", "/Repos/X/MERGE")),
]


@pytest.mark.parametrize(("raw", "expected"), STRICT_CASES, ids=[c[0] for c in STRICT_CASES])
def test_strict_path_variants(raw: str, expected: tuple[str, ...]) -> None:
    assert strict_path_variants(raw) == expected


STRICT_CONTAINS = [
    ("/repos/o/r/pulls/1/%2e%2e/1/merge", "/repos/o/r/pulls/1/merge"),
    ("/repos/o/r/pulls/1%2fmerge", "/repos/o/r/pulls/1/merge"),
    ("/repos/o/r/pulls/1/%25%32%65%25%32%65/1/merge", "/repos/o/r/pulls/1/merge"),
    ("/v1\\charges", "/v1/charges"),
    ("/v1/charges%3Fx", "/v1/charges"),
    ("/v1/%2fcharges", "/v1/charges"),
    ("/a/..%2f..%2fadmin", "/admin"),
    ("/a/;x/../b", "/a/b"),
]


@pytest.mark.parametrize(("raw", "expected"), STRICT_CONTAINS, ids=[c[0] for c in STRICT_CONTAINS])
def test_strict_variants_catch_encoded_spellings(raw: str, expected: str) -> None:
    variants = strict_path_variants(raw)
    assert expected in variants
    assert variants[0] == raw.split("?")[0]
    assert len(set(variants)) == len(variants)


@settings(max_examples=200)
@given(st.text(alphabet=st.sampled_from("/.;%?2eEfF7aA~\\x"), max_size=30) | st.text(max_size=30))
def test_normalize_path_is_idempotent(raw: str) -> None:
    once = normalize_path(raw)
    assert normalize_path(once) == once
    assert once.startswith("/")
    assert "//" not in once
    assert once == "/" or not once.endswith("/")
    assert normalize_path(raw) in strict_path_variants(raw)
