"""The pure decision engine: first matching rule wins, rules indexed by host so cost stays flat."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

from policies.globs import host_index_key
from policies.matchers import Condition, Facts, HostCondition, Level
from policies.model import (
    ANONYMOUS,
    Action,
    Agent,
    Channel,
    Decision,
    HoldSettings,
    HostAction,
    HostDecision,
    RequestView,
    Severity,
)
from policies.normalize import normalize_host

Block = tuple[Condition, ...]


@dataclass(frozen=True, slots=True)
class Rule:
    """One compiled rule. `blocks` are alternatives; an empty block matches everything."""

    name: str
    action: Action
    reason: str
    blocks: tuple[Block, ...]
    severity: Severity = Severity.MEDIUM
    agents: frozenset[str] | None = None
    hold: HoldSettings | None = None
    file: str = ""
    line: int = 0

    @property
    def strict(self) -> bool:
        return self.action is not Action.ALLOW

    def applies_to(self, agent: str) -> bool:
        return self.agents is None or agent in self.agents

    def matches(self, facts: Facts) -> bool:
        strict = self.strict
        return any(all(c.test(facts, strict) for c in block) for block in self.blocks)

    def first_miss(self, facts: Facts, agent: str) -> str | None:
        """Why this rule did not match, for `policy explain`; None when it matches."""
        if not self.applies_to(agent):
            return f"agent {agent!r} is not in {sorted(self.agents or ())}"
        misses = []
        for block in self.blocks:
            miss = next((c for c in block if not c.test(facts, self.strict)), None)
            if miss is None:
                return None
            misses.append(f"{miss.describe()} does not hold")
        return misses[0] if len(misses) == 1 else "no block matched: " + "; ".join(misses)

    def decision(self) -> Decision:
        return Decision(self.action, self.name, self.reason, self.severity, self.hold)

    def host_level(self, facts: Facts) -> bool | None:
        """At CONNECT: True if the rule surely matches, None if it depends on the request."""
        verdict: bool | None = False
        for block in self.blocks:
            if not all(c.test(facts, self.strict) for c in block if c.level is Level.HOST):
                continue
            if all(c.level is Level.HOST for c in block):
                return True
            verdict = None
        return verdict

    def index_keys(self) -> set[str] | None:
        """Host suffixes under which this rule is found; None means it must be tried everywhere."""
        keys: set[str] = set()
        for block in self.blocks:
            hosts = [c for c in block if isinstance(c, HostCondition)]
            if not hosts:
                return None
            block_keys = {host_index_key(p) for p in hosts[0].patterns}
            if None in block_keys:
                return None
            keys.update(k for k in block_keys if k is not None)
        return keys


# Conditions on the request line alone: tested once per (host, port, method, scheme, agent).
_LINE_KEYS = frozenset({"host", "ip", "port", "method", "scheme"})


@dataclass(frozen=True, slots=True)
class _Candidate:
    strict: bool
    blocks: tuple[Block, ...]
    decision: Decision


@dataclass(frozen=True, slots=True)
class Explanation:
    decision: Decision
    misses: tuple[tuple[str, str], ...]  # (rule name, first condition that did not hold)
    body_problem: str | None


@dataclass
class Policy:
    """A loaded policy, ready to decide. Immutable once built; reload builds a new one."""

    default: Action
    default_reason: str
    rules: tuple[Rule, ...]
    agents: tuple[Agent, ...] = ()
    channels: dict[str, Channel] = field(default_factory=dict)
    files: tuple[str, ...] = ()
    digest: str = ""
    warnings: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        self._default = Decision(self.default, None, self.default_reason)
        self._by_key: dict[str, list[int]] = {}
        self._everywhere: list[int] = []
        for position, rule in enumerate(self.rules):
            keys = rule.index_keys()
            if keys is None:
                self._everywhere.append(position)
            else:
                for key in keys:
                    self._by_key.setdefault(key, []).append(position)
        self.candidates = lru_cache(maxsize=16384)(self._candidates)
        self._agent_networks = [
            (agent.name, [ipaddress.ip_network(a, strict=False) for a in agent.addresses])
            for agent in self.agents
        ]

    def _rules_for_host(self, host: str) -> list[Rule]:
        """The rules, in policy order, whose host conditions could match `host` (the index)."""
        positions: set[int] = set(self._everywhere)
        labels = host.split(".")
        for start in range(len(labels)):
            found = self._by_key.get(".".join(labels[start:]))
            if found:
                positions.update(found)
        return [self.rules[p] for p in sorted(positions)]

    def _candidates(
        self, host: str, port: int, method: str, scheme: str, agent: str
    ) -> tuple[_Candidate, ...]:
        """Rules that can still match a request with these line-level facts, each with only the
        conditions left to test. Cached: these facts repeat across most traffic."""
        line = Facts(RequestView(method=method, scheme=scheme, host=host, port=port, path="/"))
        found = []
        for rule in self._rules_for_host(host):
            if not rule.applies_to(agent):
                continue
            blocks = tuple(
                tuple(c for c in block if c.key not in _LINE_KEYS)
                for block in rule.blocks
                if all(c.test(line, rule.strict) for c in block if c.key in _LINE_KEYS)
            )
            if blocks:
                found.append(_Candidate(rule.strict, blocks, rule.decision()))
        return tuple(found)

    def decide(self, request: RequestView) -> Decision:
        """The action for one request, with the rule that chose it and a reason."""
        facts = Facts(request)
        for candidate in self.candidates(
            request.host, request.port, request.method, request.scheme, request.agent
        ):
            strict = candidate.strict
            for block in candidate.blocks:
                for condition in block:
                    if not condition.test(facts, strict):
                        break
                else:
                    return candidate.decision
        return self._default

    def decide_host(self, host: str, port: int, agent: str = ANONYMOUS) -> HostDecision:
        """The decision before the request is known (CONNECT, passthrough, raw TCP).

        A rule with only host-level conditions decides; if a rule that depends on the request
        could match first, the answer is `needs_request`. No rule: the default, with rule None.
        Raises ValueError for a host that is not a valid host name.
        """
        host = normalize_host(host)
        facts = Facts(RequestView(method="", scheme="", host=host, port=port, path="/"))
        for rule in self._rules_for_host(host):
            if not rule.applies_to(agent):
                continue
            verdict = rule.host_level(facts)
            if verdict is None:
                return HostDecision(
                    HostAction.NEEDS_REQUEST,
                    rule.name,
                    f"rule {rule.name!r} depends on the request itself",
                )
            if verdict:
                return HostDecision(
                    HostAction(rule.action.value), rule.name, rule.reason, rule.severity, rule.hold
                )
        return HostDecision(HostAction(self.default.value), None, self.default_reason)

    def explain(self, request: RequestView) -> Explanation:
        """Like `decide`, trying every rule in order and saying why each earlier one missed."""
        facts = Facts(request)
        misses: list[tuple[str, str]] = []
        decision = self._default
        for rule in self.rules:
            miss = rule.first_miss(facts, request.agent)
            if miss is None:
                decision = rule.decision()
                break
            misses.append((rule.name, miss))
        return Explanation(decision, tuple(misses), request.body_problem)

    def agent_for_address(self, address: str) -> str | None:
        """The policy agent whose `addresses` contain a client address, if any."""
        if not self.agents:
            return None
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return None
        for name, networks in self._agent_networks:
            if any(ip in network for network in networks):
                return name
        return None


def shadowed(rules: Sequence[Rule]) -> Iterable[tuple[Rule, Rule]]:
    """Pairs (earlier, later) where `earlier` matches whenever `later` would.

    Only earlier rules the host index could return for `later`'s hosts are compared, so a policy
    of thousands of rules is checked in well under a second.
    """
    shapes = [_shape(rule) for rule in rules]
    by_key: dict[str, list[int]] = {}
    everywhere: list[int] = []
    for i, later in enumerate(rules):
        keys = later.index_keys()
        suspects = set(everywhere)
        for key in keys or ():
            labels = key.split(".")
            for start in range(len(labels)):
                suspects.update(by_key.get(".".join(labels[start:]), ()))
        for j in sorted(suspects):
            if _covers(rules[j], shapes[j], later, shapes[i]):
                yield rules[j], later
                break
        if keys is None:
            everywhere.append(i)
        else:
            for key in keys:
                by_key.setdefault(key, []).append(i)


_SPELLING_SENSITIVE = frozenset({"path", "query", "form", "headers", "json", "body"})
_Shape = tuple[tuple[HostCondition | None, frozenset[str]], ...]


def _shape(rule: Rule) -> _Shape:
    """Per block: its host condition, and the signatures of all its other conditions."""
    return tuple(
        (
            next((c for c in block if isinstance(c, HostCondition)), None),
            frozenset(c.signature for c in block if not isinstance(c, HostCondition)),
        )
        for block in rule.blocks
    )


def _covers(earlier: Rule, earlier_shape: _Shape, later: Rule, later_shape: _Shape) -> bool:
    if earlier.agents is not None and (later.agents is None or not later.agents <= earlier.agents):
        return False
    if not all(
        any(
            others <= later_others and _host_covers(host, later_host)
            for host, others in earlier_shape
        )
        for later_host, later_others in later_shape
    ):
        return False
    # A strict rule also tries other spellings and unreadable bodies, which an allow rule skips.
    return not (
        not earlier.strict
        and later.strict
        and any(c.key in _SPELLING_SENSITIVE for block in earlier.blocks for c in block)
    )


def _host_covers(broad: HostCondition | None, narrow: HostCondition | None) -> bool:
    """Every host `narrow` allows is matched by `broad` (no host condition matches all)."""
    if broad is None:
        return True
    if narrow is None:
        return False
    return all(
        any(p == b or (_literal(p) and broad.matches_host(p)) for b in broad.patterns)
        for p in narrow.patterns
    )


def _literal(host_pattern: str) -> bool:
    return "*" not in host_pattern
