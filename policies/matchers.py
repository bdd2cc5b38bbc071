"""Conditions of a `match` block, each a small object the engine tests against a request's facts.

`strict` is True for `deny` and `hold` rules: they must not be dodged by another spelling, and a
body they cannot read counts as matched. For `allow` rules it is False and doubt means no match.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from functools import cached_property
from typing import Any
from urllib.parse import parse_qsl

from policies import body as bodies
from policies.globs import compile_host_glob, compile_path_glob, compile_value_glob
from policies.model import RequestView
from policies.normalize import normalize_path, parse_ip, strict_path_variants

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class Level(Enum):
    HOST = "host"  # known at CONNECT time
    REQUEST = "request"  # needs the request line and headers
    BODY = "body"  # needs the body


_UNREADABLE = object()


class Facts:
    """Lazily derived views of one request, computed at most once per decision."""

    def __init__(self, view: RequestView) -> None:
        self.view = view

    @cached_property
    def ip(self) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
        return parse_ip(self.view.host)

    @cached_property
    def path(self) -> str:
        return normalize_path(self.view.path)

    @cached_property
    def strict_paths(self) -> tuple[str, ...]:
        return strict_path_variants(self.view.path)

    @cached_property
    def query(self) -> list[tuple[str, str]]:
        return parse_qsl(self.view.query, keep_blank_values=True)

    @cached_property
    def form(self) -> list[tuple[str, str]] | None:
        if self.view.body is None:
            return None
        return bodies.parse_form(self.view.body)

    @cached_property
    def json(self) -> Any:
        """The parsed body, or `_UNREADABLE`."""
        if self.view.body is None:
            return _UNREADABLE
        ok, document = bodies.parse_json(self.view.body)
        return document if ok else _UNREADABLE

    @cached_property
    def text(self) -> str | None:
        if self.view.body is None:
            return None
        return self.view.body.decode("utf-8", errors="replace")


@dataclass(frozen=True, slots=True)
class Pattern:
    """A glob or `{regex: ...}` from the policy, compiled for normal and strict matching."""

    source: str
    is_regex: bool
    normal: re.Pattern[str]
    strict: re.Pattern[str]

    def matches(self, value: str, strict: bool) -> bool:
        compiled = self.strict if strict else self.normal
        if self.is_regex:
            return compiled.search(value) is not None
        return compiled.fullmatch(value) is not None

    def __str__(self) -> str:
        return f"regex {self.source!r}" if self.is_regex else repr(self.source)


def value_pattern(source: str, *, is_regex: bool) -> Pattern:
    if is_regex:
        return Pattern(source, True, re.compile(source), re.compile(source))
    return Pattern(source, False, compile_value_glob(source), compile_value_glob(source))


def path_pattern(source: str, *, is_regex: bool) -> Pattern:
    if is_regex:
        return Pattern(source, True, re.compile(source), re.compile(source, re.IGNORECASE))
    return Pattern(
        source, False, compile_path_glob(source), compile_path_glob(source, ignore_case=True)
    )


def _show(patterns: Sequence[object]) -> str:
    return str(patterns[0]) if len(patterns) == 1 else "any of " + ", ".join(map(str, patterns))


def _values_match(values: Sequence[str], patterns: Sequence[Pattern], strict: bool) -> bool:
    """Strict: any value may match; otherwise every value must (a repeated field cannot sneak)."""
    if not values:
        return False
    hits = (any(p.matches(v, strict) for p in patterns) for v in values)
    return any(hits) if strict else all(hits)


class Condition:
    key: str
    level: Level

    @cached_property
    def signature(self) -> str:
        """What the condition tests, as text; equal signatures mean equal conditions."""
        return self.describe()

    def test(self, facts: Facts, strict: bool) -> bool:
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError


class HostCondition(Condition):
    key, level = "host", Level.HOST

    def __init__(self, patterns: Sequence[str]) -> None:
        self.patterns = tuple(patterns)
        self._exact = frozenset(p for p in self.patterns if "*" not in p)
        self._globs = tuple(compile_host_glob(p) for p in self.patterns if "*" in p)

    def matches_host(self, host: str) -> bool:
        return host in self._exact or any(g.fullmatch(host) is not None for g in self._globs)

    def test(self, facts: Facts, strict: bool) -> bool:
        return self.matches_host(facts.view.host)

    def describe(self) -> str:
        return f"host is {_show([repr(p) for p in self.patterns])}"


class IpCondition(Condition):
    key, level = "ip", Level.HOST

    def __init__(self, networks: Sequence[IPNetwork]) -> None:
        self.networks = tuple(networks)

    def test(self, facts: Facts, strict: bool) -> bool:
        address = facts.ip
        return address is not None and any(address in net for net in self.networks)

    def describe(self) -> str:
        return f"destination IP in {_show([str(n) for n in self.networks])}"


class PortCondition(Condition):
    key, level = "port", Level.HOST

    def __init__(self, ports: Sequence[int]) -> None:
        self.ports = frozenset(ports)

    def test(self, facts: Facts, strict: bool) -> bool:
        return facts.view.port in self.ports

    def describe(self) -> str:
        return f"port is {_show(sorted(self.ports))}"


class SchemeCondition(Condition):
    key, level = "scheme", Level.REQUEST

    def __init__(self, schemes: Sequence[str]) -> None:
        self.schemes = frozenset(schemes)

    def test(self, facts: Facts, strict: bool) -> bool:
        return facts.view.scheme in self.schemes

    def describe(self) -> str:
        return f"scheme is {_show(sorted(self.schemes))}"


class MethodCondition(Condition):
    key, level = "method", Level.REQUEST

    def __init__(self, methods: Sequence[str]) -> None:
        self.methods = frozenset(m.upper() for m in methods)

    def test(self, facts: Facts, strict: bool) -> bool:
        return facts.view.method.upper() in self.methods

    def describe(self) -> str:
        return f"method is {_show(sorted(self.methods))}"


class PathCondition(Condition):
    key, level = "path", Level.REQUEST

    def __init__(self, patterns: Sequence[Pattern]) -> None:
        self.patterns = tuple(patterns)

    def test(self, facts: Facts, strict: bool) -> bool:
        paths = facts.strict_paths if strict else (facts.path,)
        return any(p.matches(path, strict) for p in self.patterns for path in paths)

    def describe(self) -> str:
        return f"path matches {_show(self.patterns)}"


class QueryCondition(Condition):
    key, level = "query", Level.REQUEST

    def __init__(self, params: dict[str, tuple[Pattern, ...]]) -> None:
        self.params = params

    def test(self, facts: Facts, strict: bool) -> bool:
        pairs = facts.query
        return all(
            _values_match([v for k, v in pairs if k == name], patterns, strict)
            for name, patterns in self.params.items()
        )

    def describe(self) -> str:
        shown = ", ".join(f"{k}={_show(v)}" for k, v in self.params.items())
        return f"query has {shown}"


class FormCondition(Condition):
    key, level = "form", Level.BODY

    def __init__(self, params: dict[str, tuple[Pattern, ...]]) -> None:
        self.params = params

    def test(self, facts: Facts, strict: bool) -> bool:
        pairs = facts.form
        if pairs is None:
            return strict
        return all(
            _values_match([v for k, v in pairs if k == name], patterns, strict)
            for name, patterns in self.params.items()
        )

    def describe(self) -> str:
        shown = ", ".join(f"{k}={_show(v)}" for k, v in self.params.items())
        return f"form body has {shown}"


class HeaderCondition(Condition):
    key, level = "headers", Level.REQUEST

    def __init__(self, headers: dict[str, tuple[Pattern, ...]]) -> None:
        self.headers = {name.lower(): patterns for name, patterns in headers.items()}

    def test(self, facts: Facts, strict: bool) -> bool:
        return all(
            _values_match(facts.view.header(name), patterns, strict)
            for name, patterns in self.headers.items()
        )

    def describe(self) -> str:
        shown = ", ".join(f"{k}: {_show(v)}" for k, v in self.headers.items())
        return f"headers have {shown}"


@dataclass(frozen=True, slots=True)
class Comparison:
    op: str
    operand: Any

    def holds(self, value: Any) -> bool:
        op, operand = self.op, self.operand
        if op == "eq":
            return _same(value, operand)
        if op == "ne":
            return not _same(value, operand)
        if op == "in":
            return any(_same(value, item) for item in operand)
        if op == "regex":
            return isinstance(value, str) and operand.search(value) is not None
        if not _is_number(value):
            return False
        if op == "gt":
            return bool(value > operand)
        if op == "gte":
            return bool(value >= operand)
        if op == "lt":
            return bool(value < operand)
        return bool(value <= operand)  # lte

    def __str__(self) -> str:
        shown = self.operand.pattern if self.op == "regex" else self.operand
        return f"{self.op} {shown!r}"


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _same(value: Any, operand: Any) -> bool:
    """JSON equality: `true` is not `1`."""
    if isinstance(value, bool) or isinstance(operand, bool):
        return isinstance(value, bool) and isinstance(operand, bool) and value == operand
    return bool(value == operand)


_MISSING = object()


def resolve(document: Any, dotted: str) -> list[Any]:
    """Every value at a dotted path; `*` fans out, and an array root is searched element-wise."""
    parts = dotted.split(".")
    current: list[Any] = [document]
    if isinstance(document, list) and parts and not (parts[0] == "*" or parts[0].isdigit()):
        current = list(document)
    for part in parts:
        following: list[Any] = []
        for node in current:
            if isinstance(node, dict):
                if part == "*":
                    following.extend(node.values())
                elif part in node:
                    following.append(node[part])
            elif isinstance(node, list):
                if part == "*":
                    following.extend(node)
                elif part.isdigit() and int(part) < len(node):
                    following.append(node[int(part)])
        current = following
    return current


class JsonCondition(Condition):
    key, level = "json", Level.BODY

    def __init__(self, checks: dict[str, tuple[Comparison, ...]]) -> None:
        self.checks = checks

    def test(self, facts: Facts, strict: bool) -> bool:
        document = facts.json
        if document is _UNREADABLE:
            return strict
        return all(
            self._check(document, path, comps, strict) for path, comps in self.checks.items()
        )

    @staticmethod
    def _check(document: Any, path: str, comps: tuple[Comparison, ...], strict: bool) -> bool:
        values = resolve(document, path)
        for comp in comps:
            if comp.op == "exists":
                if bool(values) != bool(comp.operand):
                    return False
                continue
            if not values:
                return False
            hits = (comp.holds(v) for v in values)
            if not (any(hits) if strict else all(hits)):
                return False
        return True

    def describe(self) -> str:
        shown = ", ".join(f"{k} {' and '.join(map(str, v))}" for k, v in self.checks.items())
        return f"JSON body has {shown}"


class BodyCondition(Condition):
    key, level = "body", Level.BODY

    def __init__(self, regexes: Sequence[str]) -> None:
        self.sources = tuple(regexes)
        self._compiled = tuple(re.compile(r) for r in regexes)

    def test(self, facts: Facts, strict: bool) -> bool:
        text = facts.text
        if text is None:
            return strict
        return any(c.search(text) is not None for c in self._compiled)

    def describe(self) -> str:
        return f"body matches {_show([repr(s) for s in self.sources])}"
