"""Decode and parse request bodies for inspection, reporting anything unreadable as a problem.

The engine treats a problem as "could not evaluate": a match for deny and hold rules, a miss for
allow rules (LANGUAGE.md, "Bodies fail closed"). So nothing here raises on hostile input, and
nothing decodes more than the inspection limit, whatever the compression ratio.
"""

from __future__ import annotations

import json
import zlib
from typing import Any
from urllib.parse import parse_qsl

INSPECT_LIMIT = 1024 * 1024
"""Decoded bytes the engine inspects; a longer body is a problem, never silently truncated."""

_CODINGS = {"gzip": "gzip", "x-gzip": "gzip", "deflate": "deflate", "br": "br", "zstd": "zstd"}
_NO_OP_CODINGS = frozenset({"", "identity"})
# More stacked codings than any real client sends; each stage costs up to a full limit of work.
_MAX_CODINGS = 4
# Compression barely expands incompressible data, so an encoded body this much larger than the
# limit cannot decode within it; refusing early bounds the CPU a hostile body can cost.
_MAX_ENCODED_FACTOR = 2

# Gzip members and zstd frames may be concatenated; real bodies have a few, and each costs a fresh
# decoder, so thousands of empty ones are only a way to burn CPU.
_MAX_STREAMS = 1024
_INFLATE_CHUNK = 64 * 1024  # bounds zlib's copy of the input left after each gzip member
_GZIP_MAGIC = b"\x1f\x8b"
# Brotli 1.1 has no output cap; one input byte can still yield a 16 MiB meta-block, but larger
# chunks let several complete at once (64 bytes of a stock 200 MiB bomb yield 40 MiB).
_BROTLI_CHUNK = 16
# A zstd block is at most 128 KiB and an RLE block takes 4 bytes: at most 2 MiB per chunk.
_ZSTD_CHUNK = 64
# RFC 9659: the zstd content coding uses windows of at most 8 MB; larger ones cost memory.
_ZSTD_MAX_WINDOW = 8 * 1024 * 1024


class _Undecodable(Exception):
    """A coding's data is corrupt, truncated or followed by garbage; the message says which."""


class _OverLimit(Exception):
    """Decoding produced more than the inspection limit."""


def decode_body(
    raw: bytes, content_encoding: str | None, *, limit: int = INSPECT_LIMIT
) -> tuple[bytes | None, str | None]:
    """Undo every Content-Encoding of `raw`: `(decoded, None)` or `(None, problem)`."""
    codings = _parse_codings(content_encoding)
    if isinstance(codings, str):
        return None, codings
    over = f"body over the inspection limit ({limit} bytes)"
    data = raw
    if not codings and len(data) > limit:
        return None, over
    # Codings are listed in the order they were applied, so the last one is undone first.
    for coding in reversed(codings):
        if not data:
            continue  # an empty body decodes to nothing, as in mitmproxy's decoders
        if len(data) > _MAX_ENCODED_FACTOR * limit:
            return None, over
        try:
            data = _DECODERS[coding](data, limit)
        except _OverLimit:
            return None, over
        except _Undecodable as exc:
            return None, f"undecodable {coding} body: {exc}"
    return data, None


def _parse_codings(header: str | None) -> list[str] | str:
    """The canonical codings named by a Content-Encoding value, or the problem with it."""
    if header is None:
        return []
    codings: list[str] = []
    for token in header.split(","):
        name = token.strip()
        lowered = name.lower() if name.isascii() else name
        if lowered in _NO_OP_CODINGS:
            continue
        if lowered not in _CODINGS:
            return f"unsupported content-encoding {name!r}"
        codings.append(_CODINGS[lowered])
    if len(codings) > _MAX_CODINGS:
        return f"too many content-codings ({len(codings)}, at most {_MAX_CODINGS})"
    return codings


def _gunzip(data: bytes, limit: int) -> bytes:
    """Decode every gzip member, as gzip(1), Go and Node do, so none can hide after the first."""
    view = memoryview(data)
    out = bytearray()
    pos = members = 0
    while pos < len(view):
        if pos and view[pos : pos + 2] != _GZIP_MAGIC:
            raise _Undecodable("trailing data after the gzip stream")
        if members == _MAX_STREAMS:
            raise _Undecodable(f"more than {_MAX_STREAMS} members")
        members += 1
        member, pos = _inflate(view, pos, zlib.MAX_WBITS | 16, limit - len(out))
        out += member
    return bytes(out)


def _inflate_deflate(data: bytes, limit: int) -> bytes:
    """Decode zlib-wrapped deflate, falling back to raw deflate as browsers do."""
    view = memoryview(data)
    try:
        return _inflate_whole(view, zlib.MAX_WBITS, limit)
    except _Undecodable as wrapped_problem:
        try:
            return _inflate_whole(view, -zlib.MAX_WBITS, limit)
        except _Undecodable as raw_problem:
            raise (wrapped_problem if _looks_like_zlib(data) else raw_problem) from None


def _looks_like_zlib(data: bytes) -> bool:
    """Whether the first two bytes are a valid zlib header (RFC 1950), to pick the error to show."""
    return len(data) >= 2 and data[0] & 0x0F == 8 and (data[0] << 8 | data[1]) % 31 == 0


def _inflate_whole(view: memoryview, wbits: int, limit: int) -> bytes:
    out, end = _inflate(view, 0, wbits, limit)
    if end != len(view):
        raise _Undecodable("trailing data after the deflate stream")
    return out


def _inflate(view: memoryview, start: int, wbits: int, budget: int) -> tuple[bytes, int]:
    """Inflate one stream starting at `start`; return its output and where the stream ended."""
    inflater = zlib.decompressobj(wbits)
    out = bytearray()
    pos = start
    try:
        while not inflater.eof:
            if pos >= len(view):
                raise _Undecodable("truncated stream")
            chunk = view[pos : pos + _INFLATE_CHUNK]
            produced = inflater.decompress(chunk, budget + 1 - len(out))
            out += produced
            if len(out) > budget:
                raise _OverLimit
            consumed = len(chunk) - len(inflater.unconsumed_tail)
            if not consumed and not produced:
                raise _Undecodable("stream makes no progress")
            pos += consumed
    except zlib.error as exc:
        raise _Undecodable(str(exc)) from None
    return bytes(out), pos - len(inflater.unused_data)


def _unbrotli(data: bytes, limit: int) -> bytes:
    try:
        import brotli
    except ImportError:
        raise _Undecodable("brotli support is not installed") from None
    decompressor = brotli.Decompressor()
    try:
        if hasattr(decompressor, "can_accept_more_data"):  # Brotli >= 1.2 can cap its output
            out = _brotli_capped(decompressor, data, limit)
        else:
            out = _brotli_chunked(decompressor, data, limit)
    except brotli.error as exc:
        raise _Undecodable(str(exc) or "corrupt stream") from None
    if not decompressor.is_finished():
        raise _Undecodable("truncated stream")
    return out


def _brotli_capped(decompressor: Any, data: bytes, limit: int) -> bytes:
    out = bytearray(decompressor.process(data, output_buffer_limit=limit + 1))
    while len(out) <= limit and not decompressor.can_accept_more_data():
        more = decompressor.process(b"", output_buffer_limit=limit + 1 - len(out))
        if not more:
            raise _Undecodable("stream makes no progress")
        out += more
    if len(out) > limit:
        raise _OverLimit
    return bytes(out)


def _brotli_chunked(decompressor: Any, data: bytes, limit: int) -> bytes:
    out = bytearray()
    for start in range(0, len(data), _BROTLI_CHUNK):
        if decompressor.is_finished():
            raise _Undecodable("trailing data after the br stream")
        out += decompressor.process(data[start : start + _BROTLI_CHUNK])
        if len(out) > limit:
            raise _OverLimit
    return bytes(out)


def _unzstd(data: bytes, limit: int) -> bytes:
    """Decode every frame (RFC 8878 allows several), feeding small chunks to bound each output."""
    try:
        import zstandard
    except ImportError:
        raise _Undecodable("zstd support is not installed") from None
    decompressor = zstandard.ZstdDecompressor(max_window_size=_ZSTD_MAX_WINDOW)
    out = bytearray()
    pos = frames = 0
    try:
        while pos < len(data):
            if frames == _MAX_STREAMS:
                raise _Undecodable(f"more than {_MAX_STREAMS} frames")
            frames += 1
            frame = decompressor.decompressobj()
            while not frame.eof:
                if pos >= len(data):
                    raise _Undecodable("truncated stream")
                out += frame.decompress(data[pos : pos + _ZSTD_CHUNK])
                pos += _ZSTD_CHUNK
                if len(out) > limit:
                    raise _OverLimit
            pos = min(pos, len(data)) - len(frame.unused_data)
    except zstandard.ZstdError as exc:
        raise _Undecodable(str(exc)) from None
    return bytes(out)


_DECODERS = {"gzip": _gunzip, "deflate": _inflate_deflate, "br": _unbrotli, "zstd": _unzstd}


def parse_form(body: bytes) -> list[tuple[str, str]] | None:
    """The fields of an urlencoded form, in order, or None when the body is not one."""
    try:
        text = body.decode("utf-8")
        return parse_qsl(text, keep_blank_values=True, encoding="utf-8", errors="strict")
    except ValueError:  # UnicodeDecodeError, raw or percent-encoded
        return None


def parse_json(body: bytes) -> tuple[bool, object]:
    """`(True, value)`, or `(False, None)` when the body is not unambiguous UTF-8 JSON.

    Duplicate object keys count as not JSON: parsers disagree on which one wins, and a policy must
    see the value the server will use.
    """
    try:
        text = body.decode("utf-8-sig")
        return True, json.loads(
            text, parse_constant=_reject_constant, object_pairs_hook=_unique_keys
        )
    except (ValueError, RecursionError):  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        return False, None


def _reject_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON")


def _unique_keys(pairs: list[tuple[str, object]]) -> dict[str, object]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise ValueError("duplicate object key")
    return obj
