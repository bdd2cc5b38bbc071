"""What every preset decision table needs: its preset loaded alone, its rows, and their check."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pytest

from policies.engine import Policy
from policies.loader import load_policy
from policies.request import build_request

JSON = ("Content-Type", "application/json")


def load_preset(tmp_path_factory: pytest.TempPathFactory, name: str) -> Policy:
    """A top-level policy including only `interlock:NAME`, so the default is `allow`."""
    path = tmp_path_factory.mktemp(name) / "policy.yaml"
    path.write_text(f"version: 1\ndefault: allow\ninclude: [interlock:{name}]\nrules: []\n")
    return load_policy(path)


@dataclass(frozen=True)
class Row:
    """One request of a decision table and the action and rule (None: the default) it must get."""

    method: str
    url: str
    headers: tuple[tuple[str, str], ...]
    body: bytes
    action: str
    rule: str | None


def case(
    method: str,
    url: str,
    action: str,
    rule: str | None,
    *,
    id: str,
    headers: Sequence[tuple[str, str]] = (),
    body: bytes = b"",
    json_body: object = None,
) -> Any:
    """A row as a pytest param; `json_body` is sent as JSON unless `headers` name a content type."""
    if json_body is not None:
        body = json.dumps(json_body).encode()
        if not any(name.lower() == "content-type" for name, _ in headers):
            headers = (*headers, JSON)
    return pytest.param(Row(method, url, tuple(headers), body, action, rule), id=id)


def check_decision(policy: Policy, row: Row) -> None:
    """Fail with the decision's reason, since this module's asserts are not rewritten by pytest."""
    decision = policy.decide(build_request(row.method, row.url, row.headers, row.body))
    got, want = (decision.action, decision.rule), (row.action, row.rule)
    assert got == want, f"got {got}, want {want}: {decision.reason}"
