"""Secrets out of headers, query strings, bodies and free text, before anything is stored or logged.

Redaction errs towards hiding: an over-redacted audit row is a nuisance, a stored token is a leak.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote_plus

REDACTED = "[REDACTED]"
TRUNCATED = "…[truncated]"

SENSITIVE_HEADERS = frozenset({
    "authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key", "api-key",
    "x-auth-token", "x-amz-security-token", "x-goog-api-key", "private-token", "x-vault-token",
})  # fmt: skip
# Never redacted, whatever the patterns say: they carry no secrets and the audit needs them.
PLAIN_HEADERS = frozenset({
    "host", ":authority", "content-type", "content-length", "content-encoding", "transfer-encoding",
    "user-agent", "accept", "accept-encoding", "accept-language", "sec-websocket-key",
    "idempotency-key", "x-idempotency-key",
})  # fmt: skip
_HEADER_NAME = re.compile(
    r"auth|token|secret|passw|api-?key|api_key|credential|cookie|session|signature|[-_]key$"
)
# Matched (searched) against lower-cased JSON keys, form fields and query parameters.
_FIELD_NAME = re.compile(
    r"passw|passphrase|secret|credential|cookie|signature|authoriz|authenticat"
    r"|token(?!s|iz|[-_]?(?:type|count|usage|limit|budget)s?$)"
    r"|(?:api|access|secret|private|signing|master|encryption|client|auth|license|subscription"
    r"|account|ssh|gpg|pgp)[-_]?key"
    r"|^(?:key|sig|auth|pwd|pass|session|session[-_]?id|sessionid)$|[-_]auth$|^auth[-_]"
)
_SCHEME = re.compile(r"(?i)(basic|bearer|token)[ \t]+\S")
_PEM = re.compile(
    r"-----BEGIN (?P<label>[A-Z0-9 ]*PRIVATE KEY)-----"
    r"(?:(?P<body>.*?)-----END (?P=label)-----|.*\Z)",
    re.DOTALL,
)
# Substrings without which a pattern cannot match: a cheap `in` test spares most regex scans.
_TOKEN_HINTS = ("AKIA", "ASIA", "ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_", "glpat-",
                "xox", "k_live_", "k_test_", "sk-", "AIza", "hf_", "npm_", "eyJ")  # fmt: skip
_BEARER_HINTS = ("earer", "asic", "EARER", "ASIC")
_TOKENS = re.compile(
    r"(?<![A-Za-z0-9])(?:"
    r"(?:AKIA|ASIA)[0-9A-Z]{16}"  # AWS access key id
    r"|gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,}"  # GitHub
    r"|glpat-[A-Za-z0-9_\-]{20,}"  # GitLab
    r"|xox[abposr]-[A-Za-z0-9\-]{10,}"  # Slack
    r"|[sr]k_(?:live|test)_[A-Za-z0-9]{10,}"  # Stripe
    r"|sk-[A-Za-z0-9_\-]{20,}"  # OpenAI, Anthropic
    r"|AIza[0-9A-Za-z_\-]{35}"  # Google API key
    r"|hf_[A-Za-z0-9]{30,}|npm_[A-Za-z0-9]{36}"  # Hugging Face, npm
    r"|eyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}(?:\.[A-Za-z0-9_\-]*)?"  # JWT
    r")"
)
_USERINFO = re.compile(r"://([^/\s:@\[\]]*:)(?!\[REDACTED\]@)[^/\s@]+@")
_BEARER = re.compile(
    r"\b([Bb]earer|[Bb]asic|BEARER|BASIC)[ \t]+(?!\[REDACTED\])"
    r"(?=[A-Za-z0-9\-._~+/][a-z]*[A-Z0-9\-._~+/=])[A-Za-z0-9\-._~+/]{8,}=*"
)
# Pairs are found from their separator: the name is matched backwards on the reversed text
# (whitespace, an optional closing quote, the name), which keeps the scan fast on long prose.
_SEPARATOR = re.compile(r"[:=]")
_NAME_REVERSED = re.compile(r"""[ \t]*(?P<q>["']?)(?P<name>[\w.\-]+)""")
# Every name _FIELD_NAME matches contains one of these; text without any has no sensitive pair.
_FIELD_HINTS = ("pass", "pwd", "secret", "credential", "cookie", "sig", "auth", "token", "key",
                "session")  # fmt: skip
_VALUE = re.compile(
    r"""[ \t]*(?P<value>(?P<quoted>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')"""
    r"""|(?!(?:(?:bearer|basic|token)[ \t]+)?\[REDACTED\]|null\b)"""  # JSON null: no secret
    r"""(?P<scheme>(?:bearer|basic|token)[ \t]+)?[^\s&;,"'<>(){}\[\]]+"""
    r"""|(?P<open>["'])[^"'\n]*)""",  # a quote left open (a cut preview)
    re.IGNORECASE,
)
_MULTIPART_FIELD = re.compile(
    r"""(name="(?P<name>[^"]*)"[^\r\n]*(?:\r?\n[^\r\n]+)*\r?\n\r?\n)(?P<value>.*?)(?=\r?\n--|\Z)""",
    re.DOTALL,
)
_BINARY_TYPES = ("image/", "audio/", "video/", "font/", "application/octet-stream",
                 "application/zip", "application/gzip", "application/pdf", "application/grpc",
                 "application/x-protobuf", "application/vnd.google.protobuf")  # fmt: skip
_FORM = "application/x-www-form-urlencoded"
_WINDOW_MARGIN = 4096  # chars redacted beyond the preview limit, so no secret is cut mid-match


@dataclass(frozen=True)
class Redactor:
    """Replaces secret values with "[REDACTED]"; the defaults cover common credentials.

    `extra_headers` are exact header names; `extra_fields` are regular expressions searched in
    lower-cased field names (JSON keys, form fields, query parameters).
    """

    extra_headers: frozenset[str] = frozenset()
    extra_fields: tuple[str, ...] = ()
    max_parse_bytes: int = 64 * 1024  # larger bodies are previewed as text, not parsed
    _headers: frozenset[str] = field(init=False, repr=False, compare=False)
    _extra: re.Pattern[str] | None = field(init=False, repr=False, compare=False)
    _cache: dict[str, bool] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        extra = None
        for pattern in self.extra_fields:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"invalid redaction field pattern {pattern!r}: {exc}") from None
        if self.extra_fields:
            extra = re.compile("|".join(f"(?:{p})" for p in self.extra_fields), re.IGNORECASE)
        headers = SENSITIVE_HEADERS | {name.lower() for name in self.extra_headers}
        object.__setattr__(self, "_headers", headers)
        object.__setattr__(self, "_extra", extra)
        object.__setattr__(self, "_cache", {})

    def is_sensitive_header(self, name: str) -> bool:
        lower = name.lower()
        if lower in self._headers:
            return True
        return lower not in PLAIN_HEADERS and _HEADER_NAME.search(lower) is not None

    def is_sensitive_field(self, name: str) -> bool:
        known = self._cache.get(name)
        if known is None:
            lower = name.lower().lstrip("?")
            known = _FIELD_NAME.search(lower) is not None or (
                self._extra is not None and self._extra.search(lower) is not None
            )
            if len(self._cache) > 4096:
                self._cache.clear()
            self._cache[name] = known
        return known

    def headers(self, headers: Sequence[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
        """Headers in order; sensitive values hidden, keeping a Basic/Bearer/token scheme word."""
        out = []
        for name, value in headers:
            if self.is_sensitive_header(name):
                scheme = _SCHEME.match(value)
                value = f"{scheme.group(1)} {REDACTED}" if scheme else REDACTED
            elif name.lower() not in PLAIN_HEADERS:
                value = self.redact_text(value)
            out.append((name, value))
        return tuple(out)

    def query(self, query: str) -> str:
        """A query string with sensitive parameters' values hidden; the rest kept byte for byte."""
        parts = query.split("&")
        for i, part in enumerate(parts):
            name, eq, value = part.partition("=")
            if eq and value and self.is_sensitive_field(unquote_plus(name)):
                parts[i] = f"{name}={REDACTED}"
            elif part:
                parts[i] = self.redact_text(part)
        return "&".join(parts)

    def redact_json(self, value: Any) -> Any:
        """A decoded JSON value with sensitive keys' values hidden, recursively."""
        if isinstance(value, dict):
            return {
                key: REDACTED
                if item is not None and self.is_sensitive_field(str(key))
                else self.redact_json(item)
                for key, item in value.items()
            }
        if isinstance(value, list):
            return [self.redact_json(item) for item in value]
        return self.redact_text(value) if isinstance(value, str) else value

    def redact_text(self, text: str) -> str:
        """Free text with recognisable secrets hidden: keys, tokens, credentials in URLs, pairs."""
        return self._redact_pairs(_redact_values(text))

    def redact_shapes(self, text: str) -> str:
        """Only secrets recognisable by their own shape (keys, tokens, credentials in URLs);
        for text such as URL paths, where `name:value` pairs are not secrets."""
        return _redact_values(text)

    def body_preview(
        self, body: bytes | None, content_type: str | None, limit: int = 2048
    ) -> str | None:
        """A redacted text preview of at most `limit` characters (plus a marker); None if binary.

        Never raises: a body it cannot read safely gets no preview.
        """
        try:
            return self._preview(body, content_type, limit)
        except Exception:
            return None

    def _preview(self, body: bytes | None, content_type: str | None, limit: int) -> str | None:
        if not body:
            return None
        media, _, params = (content_type or "").partition(";")
        media = media.strip().lower()
        if media.startswith(_BINARY_TYPES):
            return None
        whole = len(body) <= self.max_parse_bytes
        window = max(limit, 0) + _WINDOW_MARGIN
        text = _decode(body if whole else body[: window * 4], _charset(params), whole)
        if text is None or "\x00" in text:
            return None
        sniffed = media in ("", "text/plain") and text.lstrip()[:1] in ("{", "[")
        if whole and (_is_json(media) or sniffed):
            try:
                data = json.loads(text)
            except (ValueError, RecursionError):
                pass
            else:
                text = json.dumps(self._hide_keys(data), separators=(",", ":"), ensure_ascii=False)
                return _cut(self.redact_text(text[:window]), limit)  # string values, in one pass
        if media == _FORM:
            return _cut(self.query(text[:window]), limit)
        if media.startswith("multipart/"):
            text = _MULTIPART_FIELD.sub(self._multipart_replacement, text[:window])
        return _cut(self.redact_text(text[:window]), limit)

    def _hide_keys(self, value: Any) -> Any:
        """A decoded JSON value with sensitive keys' values hidden (strings left for later)."""
        if isinstance(value, dict):
            return {
                key: REDACTED
                if item is not None and self.is_sensitive_field(key)
                else self._hide_keys(item)
                for key, item in value.items()
            }
        if isinstance(value, list):
            return [self._hide_keys(item) for item in value]
        return value

    def _redact_pairs(self, text: str) -> str:
        """`name=value`, `name: value`, `"name": "value"` with a sensitive name: value hidden."""
        if self._extra is None and not _contains_any(text.lower(), _FIELD_HINTS):
            return text
        reversed_text, size = text[::-1], len(text)
        out: list[str] = []
        done = 0
        for separator in _SEPARATOR.finditer(text):
            at = separator.start()
            if at < done:
                continue  # inside a value already hidden
            pair = _NAME_REVERSED.match(reversed_text, size - at)
            if pair is None or not self._pair_name(text, pair, size):
                continue
            value = _VALUE.match(text, at + 1)
            if value is None:
                continue
            if value["quoted"]:
                hidden = f"{value['quoted'][0]}{REDACTED}{value['quoted'][0]}"
            elif value["open"]:
                hidden = f"{value['open']}{REDACTED}"
            else:
                hidden = f"{value['scheme'] or ''}{REDACTED}"
            out += [text[done : value.start("value")], hidden]
            done = value.end()
        out.append(text[done:])
        return "".join(out)

    def _pair_name(self, text: str, pair: re.Match[str], size: int) -> bool:
        """Whether a backwards match is a sensitive name: starting a word, quotes balanced."""
        name = pair["name"][::-1]
        start = size - pair.end("name")
        if not (name[0] == "_" or (name[0].isascii() and name[0].isalpha())):
            return False
        if pair["q"] and (start == 0 or text[start - 1] != pair["q"]):
            return False
        return self.is_sensitive_field(name)

    def _multipart_replacement(self, match: re.Match[str]) -> str:
        if self.is_sensitive_field(match["name"]):
            return match.group(1) + REDACTED
        return match.group(0)


def _redact_values(text: str) -> str:
    """Secrets recognisable by their own shape, wherever they appear."""
    if "-----BEGIN" in text:
        text = _PEM.sub(_pem_replacement, text)
    if _contains_any(text, _TOKEN_HINTS):
        text = _TOKENS.sub(REDACTED, text)
    if "://" in text:
        text = _USERINFO.sub(rf"://\1{REDACTED}@", text)
    if _contains_any(text, _BEARER_HINTS):
        text = _BEARER.sub(rf"\1 {REDACTED}", text)
    return text


def _contains_any(text: str, hints: tuple[str, ...]) -> bool:
    for hint in hints:  # noqa: SIM110 - a plain loop is measurably faster than any()
        if hint in text:
            return True
    return False


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: max(limit, 0)] + TRUNCATED


def _pem_replacement(match: re.Match[str]) -> str:
    label = match["label"]
    end = f"-----END {label}-----" if match["body"] is not None else ""
    return f"-----BEGIN {label}-----{REDACTED}{end}"


def _is_json(media: str) -> bool:
    return media in ("application/json", "text/json") or media.endswith("+json")


def _charset(params: str) -> str:
    for param in params.split(";"):
        key, _, value = param.partition("=")
        if key.strip().lower() == "charset":
            name = value.strip().strip("\"'")
            try:
                return codecs.lookup(name).name
            except LookupError:
                break
    return "utf-8"


def _decode(data: bytes, charset: str, final: bool) -> str | None:
    """Text, or None for bytes that are not text in `charset` (a cut last character is dropped)."""
    try:
        return codecs.getincrementaldecoder(charset)("strict").decode(data, final)
    except (UnicodeDecodeError, ValueError, TypeError):
        return None
