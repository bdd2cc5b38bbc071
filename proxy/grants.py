"""Grants: "approve and remember" as narrow, expiring permissions instead of a bypass.

A grant is bound to the rule that held the request and to a scope (this exact request, an
endpoint pattern, or a host), for one agent or all, for a fixed time or until revoked. It can only
turn a `hold` into an allow; it never overrides a `deny`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from policies.globs import compile_path_glob
from policies.normalize import normalize_path
from proxy.datadir import atomic_write
from proxy.records import AuditRecord, Kind

log = logging.getLogger(__name__)

SCOPES = ("exact", "endpoint", "host")
DURATIONS: dict[str, float | None] = {"15m": 900.0, "1h": 3600.0, "8h": 28800.0, "never": None}
_VARIABLE_SEGMENT = re.compile(r"^(\d+|[0-9a-f]{7,}|[0-9a-f-]{32,36}|[A-Za-z0-9_-]{20,})$")


class GrantError(ValueError):
    """A grant that may not be made; the message says why."""


@dataclass(frozen=True, slots=True)
class Grant:
    id: str
    rule: str
    scope: str
    method: str
    scheme: str
    host: str
    port: int
    pattern: str | None  # endpoint scope: the path glob; exact scope: the path (display only)
    exact_key: str | None  # exact scope: hash of method, URL and body
    agents: tuple[str, ...] | None  # None: every agent
    created_by: str
    created_at: float
    expires_at: float | None  # None: until revoked
    hold_id: str
    uses: int = 0
    revoked_at: float | None = None
    revoked_by: str | None = None

    def active(self, now: float) -> bool:
        return self.revoked_at is None and (self.expires_at is None or now < self.expires_at)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["agents"] = list(self.agents) if self.agents is not None else None
        return data


def grant_from_json(data: dict[str, Any]) -> Grant:
    item = dict(data)
    item["agents"] = tuple(item["agents"]) if item.get("agents") is not None else None
    return Grant(**item)


def exact_key(
    method: str, scheme: str, host: str, port: int, target: str, body_digest: bytes
) -> str:
    """The key of an exact-request grant; `body_digest` is the body's SHA-256."""
    digest = hashlib.sha256()
    for part in (method.upper(), scheme, host, str(port), target):
        digest.update(part.encode() + b"\0")
    digest.update(body_digest)
    return digest.hexdigest()


def propose_pattern(path: str) -> str:
    """An endpoint pattern for a path: ids, hashes and tokens become `*`.

    `/repos/acme/web/pulls/123/merge` -> `/repos/acme/web/pulls/*/merge`.
    """
    segments = normalize_path(path).split("/")
    return "/".join("*" if _VARIABLE_SEGMENT.match(s) else s for s in segments) or "/"


@dataclass(frozen=True, slots=True)
class GrantRequest:
    """What the operator chose in the approve-and-remember dialog."""

    scope: str
    duration: str
    pattern: str | None = None
    all_agents: bool = False

    @classmethod
    def from_json(cls, data: Any) -> GrantRequest:
        if not isinstance(data, dict):
            raise GrantError("grant must be an object with scope and duration")
        scope, duration = data.get("scope"), data.get("duration", "1h")
        if scope not in SCOPES:
            raise GrantError(f"grant scope must be one of {', '.join(SCOPES)}")
        if duration not in DURATIONS:
            raise GrantError(f"grant duration must be one of {', '.join(DURATIONS)}")
        pattern = data.get("pattern")
        if pattern is not None and (not isinstance(pattern, str) or not pattern.startswith("/")):
            raise GrantError("grant pattern must be a path glob starting with '/'")
        return cls(scope, duration, pattern, bool(data.get("all_agents", False)))


def check_grantable(
    choice: GrantRequest, rule: str | None, severity: str, approvals: int, store: Any
) -> None:
    """Raise GrantError when this hold may not be approved-and-remembered as chosen."""
    if store is None:
        raise GrantError("grants are not enabled on this proxy")
    if rule is None:
        raise GrantError("only a hold by a rule can be remembered")
    if approvals > 1:
        raise GrantError(f"rule {rule!r} needs {approvals} approvals; one person cannot grant it")
    if choice.scope == "host" and severity == "critical":
        raise GrantError(f"rule {rule!r} is critical: a whole-host grant is not offered")


def grant_record(grant: Grant, action: str, by: str, channel: str) -> AuditRecord:
    """The audit row of a grant's creation or revocation."""
    return AuditRecord(
        kind=Kind.GRANT,
        request_id=grant.id,
        host=grant.host,
        port=grant.port,
        method=grant.method,
        path=grant.pattern,
        rule=grant.rule,
        action=action,
        decided_by=by,
        channel=channel,
        hold_id=grant.hold_id,
        detail=grant.to_json(),
    )


class GrantStore:
    """Grants kept in `grants.json` in the data directory, so they survive a restart."""

    def __init__(self, path: Path, clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self.clock = clock
        self._grants: dict[str, Grant] = {}
        self._globs: dict[str, re.Pattern[str]] = {}
        if path.exists():
            for item in json.loads(path.read_text()).get("grants", []):
                grant = grant_from_json(item)
                self._grants[grant.id] = grant

    def active(self) -> list[Grant]:
        now = self.clock()
        return sorted(
            (g for g in self._grants.values() if g.active(now)), key=lambda g: g.created_at
        )

    def get(self, grant_id: str) -> Grant | None:
        return self._grants.get(grant_id)

    def create(
        self,
        choice: GrantRequest,
        *,
        rule: str | None,
        severity: str,
        approvals: int,
        agent: str,
        method: str,
        scheme: str,
        host: str,
        port: int,
        path: str,
        key: str,
        created_by: str,
        hold_id: str,
    ) -> Grant:
        check_grantable(choice, rule, severity, approvals, self)
        assert rule is not None
        pattern = None  # endpoint: the glob that matches; exact: the path, for display
        if choice.scope == "endpoint":
            pattern = normalize_path(choice.pattern or propose_pattern(path))
            compile_path_glob(pattern)  # validates
        elif choice.scope == "exact":
            pattern = normalize_path(path)
        duration = DURATIONS[choice.duration]
        now = self.clock()
        grant = Grant(
            id=f"g_{secrets.token_hex(6)}",
            rule=rule,
            scope=choice.scope,
            method=method.upper(),
            scheme=scheme,
            host=host,
            port=port,
            pattern=pattern,
            exact_key=key if choice.scope == "exact" else None,
            agents=None if choice.all_agents else (agent,),
            created_by=created_by,
            created_at=now,
            expires_at=now + duration if duration is not None else None,
            hold_id=hold_id,
        )
        self._grants[grant.id] = grant
        self._save()
        return grant

    def revoke(self, grant_id: str, by: str) -> Grant:
        grant = self._grants.get(grant_id)
        if grant is None or not grant.active(self.clock()):
            raise KeyError(grant_id)
        revoked = replace(grant, revoked_at=self.clock(), revoked_by=by)
        self._grants[grant_id] = revoked
        self._save()
        return revoked

    def match(
        self,
        *,
        rule: str | None,
        agent: str,
        method: str,
        scheme: str,
        host: str,
        port: int,
        path: str,
        key: str,
    ) -> Grant | None:
        """The active grant covering a request held by `rule`, counting the use."""
        if rule is None:
            return None
        now = self.clock()
        for grant in self._grants.values():
            if grant.rule != rule or not grant.active(now):
                continue
            if grant.agents is not None and agent not in grant.agents:
                continue
            if (grant.scheme, grant.host, grant.port) != (scheme, host, port):
                continue
            if grant.scope == "exact" and grant.exact_key != key:
                continue
            if grant.scope == "endpoint" and (
                grant.method != method.upper()
                or not self._glob(grant).fullmatch(normalize_path(path))
            ):
                continue
            used = replace(grant, uses=grant.uses + 1)
            self._grants[grant.id] = used
            self._save()
            return used
        return None

    def expired_since(self, since: float) -> list[Grant]:
        """Grants whose time ran out after `since` (for `grant.expired` events)."""
        now = self.clock()
        return [
            g
            for g in self._grants.values()
            if g.revoked_at is None and g.expires_at is not None and since <= g.expires_at < now
        ]

    def _glob(self, grant: Grant) -> re.Pattern[str]:
        assert grant.pattern is not None
        compiled = self._globs.get(grant.pattern)
        if compiled is None:
            compiled = self._globs[grant.pattern] = compile_path_glob(grant.pattern)
        return compiled

    def _save(self) -> None:
        keep = [g.to_json() for g in self._grants.values()]
        atomic_write(self.path, json.dumps({"version": 1, "grants": keep}, indent=1).encode())


def as_policy_rules(grants: Sequence[Grant]) -> str:
    """Active grants as policy rules to review and paste above the includes of a policy."""
    lines = ["rules:"]
    for grant in grants:
        name = f"granted-{grant.rule.replace('/', '-')}-{grant.id[2:]}"
        match: dict[str, Any] = {"host": grant.host, "port": grant.port, "scheme": grant.scheme}
        if grant.scope != "host":
            match["method"] = grant.method
        if grant.scope != "host":
            match["path"] = grant.pattern
        lines.append(f"  # from {grant.id} by {grant.created_by}, held by rule {grant.rule}")
        if grant.scope == "exact":
            lines.append(
                "  # was an exact-request grant: the body and query are not part of this rule"
            )
        lines.append(f"  - name: {name}")
        lines.append("    action: allow")
        lines.append(
            f"    reason: {json.dumps('Approved repeatedly; made policy from ' + grant.id)}"
        )
        if grant.agents is not None:
            lines.append(f"    agents: {json.dumps(list(grant.agents))}")
        lines.append(f"    match: {json.dumps(match)}")
    return "\n".join(lines) + "\n"
