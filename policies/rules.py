"""Turn one rule's YAML node into a compiled `Rule`, reporting every problem with its position."""

from __future__ import annotations

import difflib
import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from yaml.nodes import MappingNode, Node

from policies.durations import parse_duration
from policies.engine import Block, Rule
from policies.matchers import (
    BodyCondition,
    Comparison,
    Condition,
    FormCondition,
    HeaderCondition,
    HostCondition,
    IpCondition,
    JsonCondition,
    MethodCondition,
    PathCondition,
    Pattern,
    PortCondition,
    QueryCondition,
    SchemeCondition,
    path_pattern,
    value_pattern,
)
from policies.model import (
    DEFAULT_HOLD_TIMEOUT,
    DEFAULT_RESPOND_PENDING_AFTER,
    MAX_HOLD_TIMEOUT,
    Action,
    Escalation,
    HoldSettings,
    Severity,
)
from policies.normalize import normalize_host_pattern, parse_ip
from policies.yamlnodes import Source, as_list, is_map, is_scalar, is_seq

RULE_KEYS = [
    "name",
    "action",
    "reason",
    "description",
    "match",
    "agents",
    "severity",
    "timeout",
    "respond_pending_after",
    "reasons",
    "notify",
    "escalate",
    "approvals",
]
HOLD_ONLY_KEYS = ("timeout", "respond_pending_after", "reasons", "notify", "escalate", "approvals")
MATCH_KEYS = [
    "host",
    "ip",
    "port",
    "scheme",
    "method",
    "path",
    "query",
    "form",
    "headers",
    "json",
    "body",
]
COMPARISONS = ("eq", "ne", "in", "gt", "gte", "lt", "lte", "regex", "exists")
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
METHOD_RE = re.compile(r"[A-Za-z!#$%&'*+.^_`|~0-9-]+")
MAX_APPROVALS = 10


def unknown_key(key: str, known: list[str]) -> str:
    close = difflib.get_close_matches(key, known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown key {key!r}{hint}"


@dataclass
class ChannelRef:
    """A channel named by a rule, checked once all channels are known."""

    name: str
    node: Node
    where: str
    source: Source


@dataclass
class RuleReader:
    """Reads the rules of one file; `prefix` namespaces names of included files."""

    source: Source
    prefix: str = ""
    channel_refs: list[ChannelRef] = field(default_factory=list)

    def read(self, node: Node, index: int) -> Rule | None:
        src = self.source
        where = f"rules[{index}]"
        if not is_map(node):
            src.error(node, where, "a rule must be a mapping")
            return None
        assert isinstance(node, MappingNode)
        name_node = next((v for k, v in node.value if getattr(k, "value", None) == "name"), None)
        if name_node is not None and isinstance(src.value(name_node), str):
            where = f"rules[{index}] ({src.value(name_node)})"
        fields = {}
        for key, key_node, value_node in src.items(node, where):
            if key not in RULE_KEYS:
                src.error(key_node, where, unknown_key(key, RULE_KEYS))
            else:
                fields[key] = (key_node, value_node)
        name = None
        if "name" in fields:
            raw = src.value(fields["name"][1]) if is_scalar(fields["name"][1]) else None
            if isinstance(raw, str) and NAME_RE.fullmatch(raw):
                name = raw
                where = f"rules[{index}] ({raw})"
            else:
                src.error(fields["name"][1], where, "name must be letters, digits, '.', '_', '-'")
        else:
            src.error(node, where, "missing key 'name'")
        errors_before = len([p for p in src.problems if not p.warning])

        action = self._enum(fields, "action", Action, where, node, required=True)
        reason = self._text(fields, "reason", where, node)
        severity = self._enum(fields, "severity", Severity, where, node) or Severity.MEDIUM
        agents = self._names(fields["agents"][1], where) if "agents" in fields else None
        blocks = self._match(fields["match"][1], where) if "match" in fields else ((),)
        if action is not Action.HOLD:
            for key in HOLD_ONLY_KEYS:
                if key in fields:
                    src.error(fields[key][0], where, f"{key!r} only applies to hold rules")
        hold = self._hold(fields, where) if action is Action.HOLD else None

        if len([p for p in src.problems if not p.warning]) > errors_before or None in (
            name,
            action,
            reason,
            blocks,
        ):
            return None
        assert name is not None and action is not None and reason is not None and blocks
        mark = node.start_mark
        return Rule(
            name=self.prefix + name,
            action=action,
            reason=reason,
            blocks=blocks,
            severity=severity,
            agents=frozenset(agents) if agents is not None else None,
            hold=hold,
            file=src.file,
            line=mark.line + 1,
        )

    # -- plain fields -------------------------------------------------------------------------

    def _enum(
        self,
        fields: dict[str, tuple[Node, Node]],
        key: str,
        enum: Any,
        where: str,
        rule_node: Node,
        required: bool = False,
    ) -> Any:
        if key not in fields:
            if required:
                self.source.error(rule_node, where, f"missing key {key!r}")
            return None
        node = fields[key][1]
        value = self.source.value(node) if is_scalar(node) else None
        choices = [member.value for member in enum]
        if value not in choices:
            self.source.error(node, where, f"{key} must be one of {', '.join(choices)}")
            return None
        return enum(value)

    def _text(
        self, fields: dict[str, tuple[Node, Node]], key: str, where: str, rule_node: Node
    ) -> str | None:
        if key not in fields:
            self.source.error(rule_node, where, f"missing key {key!r}")
            return None
        node = fields[key][1]
        value = self.source.value(node) if is_scalar(node) else None
        if not isinstance(value, str) or not value.strip():
            self.source.error(node, where, f"{key} must be a non-empty string")
            return None
        return value.strip()

    def _names(self, node: Node, where: str) -> list[str] | None:
        names = []
        for item in as_list(node):
            value = self.source.value(item) if is_scalar(item) else None
            if not isinstance(value, str) or not NAME_RE.fullmatch(value):
                self.source.error(item, where, "expected a name (letters, digits, '.', '_', '-')")
                return None
            names.append(value)
        return names

    def _duration(self, node: Node, where: str, key: str) -> float | None:
        value = self.source.value(node) if is_scalar(node) else None
        try:
            seconds = parse_duration(value if isinstance(value, str) else repr(value))
        except ValueError as exc:
            self.source.error(node, where, f"{key}: {exc}")
            return None
        if seconds <= 0:
            self.source.error(node, where, f"{key} must be longer than 0s")
            return None
        return seconds

    def _hold(self, fields: dict[str, tuple[Node, Node]], where: str) -> HoldSettings | None:
        src = self.source
        timeout = DEFAULT_HOLD_TIMEOUT
        if "timeout" in fields:
            parsed = self._duration(fields["timeout"][1], where, "timeout")
            if parsed is not None and parsed > MAX_HOLD_TIMEOUT:
                src.error(fields["timeout"][1], where, "timeout is over the cap of 1h")
            timeout = parsed or timeout
        pending = DEFAULT_RESPOND_PENDING_AFTER
        if "respond_pending_after" in fields:
            node = fields["respond_pending_after"][1]
            pending = self._duration(node, where, "respond_pending_after") or pending
        reasons: list[str] = []
        if "reasons" in fields:
            for item in as_list(fields["reasons"][1]):
                value = src.value(item) if is_scalar(item) else None
                if isinstance(value, str) and value.strip():
                    reasons.append(value.strip())
                else:
                    src.error(item, where, "reasons must be non-empty strings")
        notify = self._channels(fields["notify"][1], where) if "notify" in fields else []
        escalate = self._escalate(fields["escalate"][1], where) if "escalate" in fields else []
        approvals = 1
        if "approvals" in fields:
            node = fields["approvals"][1]
            value = src.value(node) if is_scalar(node) else None
            if type(value) is not int or not 1 <= value <= MAX_APPROVALS:
                src.error(
                    node, where, f"approvals must be a whole number from 1 to {MAX_APPROVALS}"
                )
            else:
                approvals = value
        return HoldSettings(
            timeout=timeout,
            respond_pending_after=pending,
            reasons=tuple(reasons),
            notify=tuple(notify),
            escalate=tuple(escalate),
            approvals=approvals,
        )

    def _channels(self, node: Node, where: str) -> list[str]:
        names = self._names(node, where) or []
        for item, name in zip(as_list(node), names, strict=False):
            self.channel_refs.append(ChannelRef(name, item, where, self.source))
        return names

    def _escalate(self, node: Node, where: str) -> list[Escalation]:
        steps = []
        if not is_seq(node):
            self.source.error(node, where, "escalate must be a list of {after, notify}")
            return []
        for step in node.value:
            if not is_map(step):
                self.source.error(step, where, "an escalate step must be {after, notify}")
                continue
            parts = dict()
            for key, key_node, value_node in self.source.items(step, where):
                if key not in ("after", "notify"):
                    self.source.error(key_node, where, unknown_key(key, ["after", "notify"]))
                parts[key] = value_node
            if "after" not in parts or "notify" not in parts:
                self.source.error(step, where, "an escalate step needs both 'after' and 'notify'")
                continue
            after = self._duration(parts["after"], where, "after")
            notify = self._channels(parts["notify"], where)
            if after is not None:
                steps.append(Escalation(after, tuple(notify)))
        return steps

    # -- match blocks -------------------------------------------------------------------------

    def _match(self, node: Node, where: str) -> tuple[Block, ...] | None:
        block_nodes = node.value if is_seq(node) else [node]
        if is_seq(node) and not block_nodes:
            self.source.error(node, where, "match list is empty; omit match to match everything")
            return None
        blocks = []
        for block_node in block_nodes:
            if not is_map(block_node):
                self.source.error(block_node, where, "match must be a mapping or a list of them")
                return None
            block = self._block(block_node, where)
            if block is None:
                return None
            blocks.append(block)
        return tuple(blocks)

    def _block(self, node: Node, where: str) -> Block | None:
        readers: dict[str, Callable[[Node, str], Condition | None]] = {
            "host": self._host,
            "ip": self._ip,
            "port": self._port,
            "scheme": self._scheme,
            "method": self._method,
            "path": self._path,
            "query": lambda n, w: self._params(n, w, QueryCondition),
            "form": lambda n, w: self._params(n, w, FormCondition),
            "headers": lambda n, w: self._params(n, w, HeaderCondition),
            "json": self._json,
            "body": self._body,
        }
        conditions: list[Condition] = []
        ok = True
        for key, key_node, value_node in self.source.items(node, where):
            if key not in readers:
                self.source.error(key_node, where, unknown_key(key, MATCH_KEYS))
                ok = False
                continue
            condition = readers[key](value_node, where)
            if condition is None:
                ok = False
            else:
                conditions.append(condition)
        # Cheap conditions first: a miss on the host or method skips the body work.
        conditions.sort(key=lambda c: MATCH_KEYS.index(c.key))
        return tuple(conditions) if ok else None

    def _scalars(
        self, node: Node, where: str, what: str, kind: type | tuple[type, ...]
    ) -> list[Any]:
        values = []
        items = as_list(node)
        if not items:
            self.source.error(node, where, f"expected {what}, got an empty list")
        for item in items:
            value = self.source.value(item) if is_scalar(item) else None
            if not isinstance(value, kind) or isinstance(value, bool):
                self.source.error(item, where, f"expected {what}")
                return []
            values.append((item, value))
        return values

    def _host(self, node: Node, where: str) -> Condition | None:
        patterns = []
        for item, value in self._scalars(node, where, "a host or host glob", str):
            try:
                patterns.append(normalize_host_pattern(value))
            except ValueError as exc:
                self.source.error(item, where, f"invalid host {value!r}: {exc}")
                return None
        return HostCondition(patterns) if patterns else None

    def _ip(self, node: Node, where: str) -> Condition | None:
        networks = []
        for item, value in self._scalars(node, where, "an IP address or CIDR", (str, int)):
            text = str(value)
            address = parse_ip(text) if "/" not in text else None
            try:
                if address is not None:
                    networks.append(ipaddress.ip_network(address))
                else:
                    networks.append(ipaddress.ip_network(text, strict=True))
            except ValueError as exc:
                self.source.error(item, where, f"invalid IP or CIDR {text!r}: {exc}")
                return None
        return IpCondition(networks) if networks else None

    def _port(self, node: Node, where: str) -> Condition | None:
        ports = []
        for item, value in self._scalars(node, where, "a port number", int):
            if not 1 <= value <= 65535:
                self.source.error(item, where, f"port {value} is out of range 1-65535")
                return None
            ports.append(value)
        return PortCondition(ports) if ports else None

    def _scheme(self, node: Node, where: str) -> Condition | None:
        schemes = []
        for item, value in self._scalars(node, where, "http or https", str):
            if value.lower() not in ("http", "https"):
                self.source.error(item, where, f"scheme {value!r} must be http or https")
                return None
            schemes.append(value.lower())
        return SchemeCondition(schemes) if schemes else None

    def _method(self, node: Node, where: str) -> Condition | None:
        methods = []
        for item, value in self._scalars(node, where, "an HTTP method", str):
            if not METHOD_RE.fullmatch(value):
                self.source.error(item, where, f"invalid HTTP method {value!r}")
                return None
            methods.append(value.upper())
        return MethodCondition(methods) if methods else None

    def _pattern(self, node: Node, where: str, *, for_path: bool) -> Pattern | None:
        src = self.source
        if is_map(node):
            items = list(src.items(node, where))
            if len(items) != 1 or items[0][0] != "regex":
                src.error(node, where, "a pattern is a glob string or {regex: ...}")
                return None
            _, _, regex_node = items[0]
            source = src.value(regex_node) if is_scalar(regex_node) else None
            if not isinstance(source, str):
                src.error(regex_node, where, "regex must be a string")
                return None
            try:
                return (path_pattern if for_path else value_pattern)(source, is_regex=True)
            except re.error as exc:
                src.error(regex_node, where, f"invalid regex {source!r}: {exc}")
                return None
        value = src.value(node) if is_scalar(node) else None
        if isinstance(value, bool) or value is None or isinstance(value, list | dict):
            src.error(node, where, "a pattern is a glob string or {regex: ...}")
            return None
        text = str(value)
        if for_path and not text.startswith(("/", "*")):
            src.error(node, where, f"path glob {text!r} must start with '/'")
            return None
        return (path_pattern if for_path else value_pattern)(text, is_regex=False)

    def _patterns(self, node: Node, where: str, *, for_path: bool) -> tuple[Pattern, ...] | None:
        items = as_list(node)
        if not items:
            self.source.error(node, where, "expected a pattern, got an empty list")
            return None
        patterns = [self._pattern(item, where, for_path=for_path) for item in items]
        if any(p is None for p in patterns):
            return None
        return tuple(p for p in patterns if p is not None)

    def _path(self, node: Node, where: str) -> Condition | None:
        patterns = self._patterns(node, where, for_path=True)
        return PathCondition(patterns) if patterns else None

    def _params(self, node: Node, where: str, kind: Callable[[Any], Condition]) -> Condition | None:
        if not is_map(node):
            self.source.error(node, where, "expected a mapping of name to pattern")
            return None
        params = {}
        for key, _, value_node in self.source.items(node, where):
            patterns = self._patterns(value_node, where, for_path=False)
            if patterns is None:
                return None
            params[key] = patterns
        if not params:
            self.source.error(node, where, "expected at least one name")
            return None
        return kind(params)

    def _json(self, node: Node, where: str) -> Condition | None:
        src = self.source
        if not is_map(node):
            src.error(node, where, "json must map a dotted path to a comparison")
            return None
        checks: dict[str, tuple[Comparison, ...]] = {}
        for path, key_node, value_node in src.items(node, where):
            if not path or any(not part for part in path.split(".")):
                src.error(key_node, where, f"invalid JSON path {path!r}")
                return None
            comparisons = self._comparisons(value_node, where)
            if comparisons is None:
                return None
            checks[path] = comparisons
        return JsonCondition(checks) if checks else None

    def _comparisons(self, node: Node, where: str) -> tuple[Comparison, ...] | None:
        src = self.source
        if is_seq(node):
            return (Comparison("in", [src.value(n) for n in node.value]),)
        if not is_map(node):
            return (Comparison("eq", src.value(node)),)
        out = []
        for op, op_node, value_node in src.items(node, where):
            if op not in COMPARISONS:
                src.error(op_node, where, unknown_key(op, list(COMPARISONS)))
                return None
            value = src.value(value_node)
            if op in ("gt", "gte", "lt", "lte") and (
                not isinstance(value, int | float) or isinstance(value, bool)
            ):
                src.error(value_node, where, f"{op} needs a number")
                return None
            if op == "in" and not isinstance(value, list):
                src.error(value_node, where, "in needs a list")
                return None
            if op == "exists" and not isinstance(value, bool):
                src.error(value_node, where, "exists needs true or false")
                return None
            if op == "regex":
                try:
                    value = re.compile(str(value))
                except re.error as exc:
                    src.error(value_node, where, f"invalid regex {value!r}: {exc}")
                    return None
            out.append(Comparison(op, value))
        return tuple(out)

    def _body(self, node: Node, where: str) -> Condition | None:
        regexes = []
        for item, value in self._scalars(node, where, "a regular expression", str):
            try:
                re.compile(value)
            except re.error as exc:
                self.source.error(item, where, f"invalid regex {value!r}: {exc}")
                return None
            regexes.append(value)
        return BodyCondition(regexes) if regexes else None
