"""Canonical forms of hosts, IP literals and request paths, so a rule cannot be spelled around."""

from __future__ import annotations

import functools
import ipaddress
import re
import string
from urllib.parse import unquote

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_NAT64_PREFIX = ipaddress.IPv6Network("64:ff9b::/96")
_IPV4_PART = re.compile(r"0x[0-9a-f]+|0[0-7]*|[1-9][0-9]*")
# The separators Python's idna codec (and so socket.getaddrinfo) treats as dots.
_LABEL_DOTS = re.compile("[.\u3002\uff0e\uff61]")
_HOST_LABEL = re.compile(r"[a-z0-9_-]+")
_MAX_LABEL = 63
_MAX_HOST = 253

_UNRESERVED = frozenset(string.ascii_letters + string.digits + "-._~")
_ESCAPE = re.compile(r"%([0-9A-Fa-f]{2})?")
_DECODE_ROUNDS = 3


def parse_ip(host: str) -> IPAddress | None:
    """Return the address an IP literal in any spelling denotes, or None for a name.

    IPv4 embedded in IPv6 (mapped, compatible, NAT64) comes back as IPv4 so IPv4 rules apply.
    """
    if not host.isascii():
        # getaddrinfo IDNA-encodes first, so fullwidth digits and dots reach the same address.
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            return None
    text = host.lower()
    if text.startswith("[") and text.endswith("]"):
        return _parse_ipv6(text[1:-1])
    if ":" in text:
        return _parse_ipv6(text)
    return _parse_ipv4(text)


def _parse_ipv4(text: str) -> ipaddress.IPv4Address | None:
    """Parse every inet_aton spelling: 1 to 4 parts, decimal, octal or hex, last part filling."""
    if text.endswith("."):
        text = text[:-1]
    parts = text.split(".")
    if not text or len(parts) > 4:
        return None
    values: list[int] = []
    for part in parts:
        if not _IPV4_PART.fullmatch(part):
            return None
        if part.startswith("0x"):
            values.append(int(part[2:], 16))
        elif part.startswith("0"):
            values.append(int(part, 8))
        elif len(part) > 10:  # beyond 2**32, and int() refuses very long decimal strings
            return None
        else:
            values.append(int(part))
    *leading, last = values
    if any(value > 0xFF for value in leading) or last >= 1 << (8 * (5 - len(values))):
        return None
    number = last
    for index, value in enumerate(leading):
        number |= value << (8 * (3 - index))
    return ipaddress.IPv4Address(number)


def _parse_ipv6(text: str) -> IPAddress | None:
    """Parse an IPv6 literal without brackets, dropping a zone id and unwrapping embedded IPv4."""
    try:
        address = ipaddress.IPv6Address(text.split("%", 1)[0])
    except ValueError:
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64_PREFIX or 1 < int(address) <= 0xFFFFFFFF:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address


@functools.lru_cache(maxsize=4096)  # the same few hosts, every request: parsing them costs
def normalize_host(host: str) -> str:
    """Return the canonical host: lowercase IDNA ASCII without trailing dot, or canonical IP text.

    Raises ValueError naming the host when it cannot be a hostname or IP literal.
    """
    if not host:
        raise ValueError("invalid host '': empty")
    if (host.startswith("[") and host.endswith("]")) or ":" in host:
        address = parse_ip(host)
        if address is None:
            raise ValueError(f"invalid host {host!r}: not an IP literal")
        return str(address)
    labels = _LABEL_DOTS.split(host)
    if len(labels) > 1 and not labels[-1]:
        labels.pop()
    ascii_labels = [_label_to_ascii(host, label) for label in labels]
    # Nameprep can map a character to a dot (U+2024 ONE DOT LEADER), so split once more.
    name = ".".join(ascii_labels)
    for label in name.split("."):
        _check_label(host, label)
    if len(name) > _MAX_HOST:
        raise ValueError(f"invalid host {host!r}: longer than {_MAX_HOST} characters")
    address = parse_ip(name)
    return name if address is None else str(address)


def _label_to_ascii(host: str, label: str) -> str:
    """Encode one label with Python's idna codec, the one socket.getaddrinfo applies."""
    if not label:
        raise ValueError(f"invalid host {host!r}: empty label")
    if label.isascii():
        return label.lower()
    try:
        return label.encode("idna").decode("ascii").lower()
    except UnicodeError as exc:
        raise ValueError(f"invalid host {host!r}: label {label!r} is not valid IDNA") from exc


def _check_label(host: str, label: str) -> None:
    if not label:
        raise ValueError(f"invalid host {host!r}: empty label")
    if len(label) > _MAX_LABEL:
        raise ValueError(f"invalid host {host!r}: label longer than {_MAX_LABEL} characters")
    if not _HOST_LABEL.fullmatch(label):
        raise ValueError(f"invalid host {host!r}: characters not allowed in a hostname")


def normalize_path(raw: str) -> str:
    """Return the normalized request path the engine matches rules against.

    Duplicate slashes are folded before dot segments are removed, as nginx does.
    """
    return _normalize_path(raw, fold_first=True)


def strict_path_variants(raw: str) -> tuple[str, ...]:
    """Return the distinct spellings a deny or hold rule must try, raw first.

    Beyond raw and normalized: fully percent-decoded with backslashes as slashes (for servers
    that decode twice), and dot segments resolved before folding slashes (WHATWG: `/a//../b`
    is `/a/b`).
    """
    path = raw.split("?", 1)[0]
    decoded = path
    for _ in range(_DECODE_ROUNDS):
        once_more = unquote(decoded)
        if once_more == decoded:
            break
        decoded = once_more
    decoded = decoded.replace("\\", "/")
    variants = (
        path,
        _normalize_path(path, fold_first=True),
        _normalize_path(decoded, fold_first=True),
        _normalize_path(path, fold_first=False),
        _normalize_path(decoded, fold_first=False),
    )
    return tuple(dict.fromkeys(variants))


def _normalize_path(raw: str, *, fold_first: bool) -> str:
    """Normalize a path; `fold_first` drops empty segments before `..` can pop them."""
    path = _ESCAPE.sub(_canonical_escape, raw.split("?", 1)[0])
    segments = path.split("/")
    if not segments[0]:
        segments.pop(0)
    kept: list[str] = []
    for segment in segments:
        segment = segment.split(";", 1)[0]
        if segment == "." or (fold_first and not segment):
            continue
        if segment == "..":
            if kept:
                kept.pop()
            continue
        kept.append(segment)
    return "/" + "/".join(segment for segment in kept if segment)


def _canonical_escape(match: re.Match[str]) -> str:
    """Decode an escaped unreserved character, uppercase other escapes, escape a stray '%'."""
    hex_digits = match.group(1)
    if hex_digits is None:
        return "%25"
    char = chr(int(hex_digits, 16))
    return char if char in _UNRESERVED else "%" + hex_digits.upper()


def normalize_host_pattern(pattern: str) -> str:
    """A host glob in the form hosts are matched in; `*` labels kept, others IDNA-lowercased.

    Unlike `normalize_host`, a numeric label stays a label (`*.1.example.com`), never an IP.
    """
    if "*" not in pattern:
        return normalize_host(pattern)
    labels = _LABEL_DOTS.split(pattern.strip())
    if len(labels) > 1 and not labels[-1]:
        labels.pop()
    out = []
    for label in labels:
        if "*" in label:
            if not _HOST_LABEL.fullmatch(label.replace("*", "").lower() or "x"):
                raise ValueError(f"invalid host {pattern!r}: characters not allowed in a hostname")
            out.append(label.lower())
        else:
            ascii_label = _label_to_ascii(pattern, label)
            _check_label(pattern, ascii_label)
            out.append(ascii_label)
    return ".".join(out)
