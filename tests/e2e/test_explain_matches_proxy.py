"""`interlock policy explain` and the running proxy decide every request the same way, tricky
spellings and bodies included: both build their request view with `policies.request`."""

from __future__ import annotations

import asyncio
import gzip
import json
import sqlite3
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.conftest import Running, Tls, start_interlock
from tests.e2e.upstream import Upstream

ROOT = Path(__file__).resolve().parents[2]

POLICY = r"""version: 1
default: allow
rules:
  - name: deny-admin
    action: deny
    reason: The admin API is off limits.
    match: {host: 127.0.0.1, path: /admin/**}
  - name: elsewhere
    action: deny
    reason: Another host entirely.
    match: {host: api.example.com}
  - name: hold-deploy
    action: hold
    reason: Deploys need a person.
    respond_pending_after: 1ms
    match: {host: 127.0.0.1, method: [POST, PUT], path: /deploy/*}
  - name: deny-force
    action: deny
    reason: No forced pushes.
    match: {host: 127.0.0.1, path: /push, query: {force: ["true", "1"]}}
  - name: allow-reports
    action: allow
    reason: Reports are public.
    match: {host: 127.0.0.1, method: GET, path: /reports/**}
  - name: hold-big-charge
    action: hold
    reason: Big charges need a person.
    respond_pending_after: 1ms
    match: {host: 127.0.0.1, method: POST, path: /v1/charges, json: {amount: {gt: 10000}}}
  - name: allow-usd-form
    action: allow
    reason: USD form charges flow.
    match: {host: 127.0.0.1, method: POST, path: /v1/form-charges, form: {currency: usd}}
  - name: deny-form-charges
    action: deny
    reason: Other form charges are refused.
    match: {host: 127.0.0.1, path: /v1/form-charges}
  - name: hold-prod
    action: hold
    reason: Production needs a person.
    respond_pending_after: 1ms
    match: {host: 127.0.0.1, headers: {X-Env: prod}}
  - name: deny-ddl
    action: deny
    reason: No DDL.
    match: {host: 127.0.0.1, body: '(?i)\bdrop\s+table'}
  - name: deny-delete
    action: deny
    reason: Deletes are refused.
    match: {host: 127.0.0.1, method: DELETE}
"""

JSON = ("Content-Type", "application/json")
FORM = ("Content-Type", "application/x-www-form-urlencoded")


@dataclass(frozen=True)
class Case:
    method: str
    target: str  # path and query, sent exactly as written
    expected: tuple[str, str | None]  # (action, rule) both sides must give
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""


CASES = [
    Case("GET", "/hello", ("allow", None)),
    Case("GET", "//admin/users", ("deny", "deny-admin")),
    Case("GET", "/a/../admin/users", ("deny", "deny-admin")),
    Case("GET", "/x/%2e%2e/admin/keys", ("deny", "deny-admin")),
    Case("GET", "/ADMIN/users", ("deny", "deny-admin")),
    Case("GET", "/admin;jsessionid=1/users", ("deny", "deny-admin")),
    Case("GET", "/admin%2Fusers", ("deny", "deny-admin")),
    Case("GET", "/reports//2024?force=true", ("allow", "allow-reports")),
    Case("GET", "/Reports/2024", ("allow", None)),  # allow rules are case-sensitive
    Case("PUT", "/deploy/api", ("hold", "hold-deploy"), body=b"go"),
    Case("POST", "/deploy/web/extra", ("allow", None), body=b"go"),  # `*` is one segment
    Case("PATCH", "/deploy/web", ("allow", None), body=b"go"),
    Case("GET", "/push?force=%74rue", ("deny", "deny-force")),
    Case("GET", "/push?x=1&force=false&force=1", ("deny", "deny-force")),
    Case("POST", "/v1/charges", ("hold", "hold-big-charge"), (JSON,), b'{"amount": 20000}'),
    Case("POST", "/v1/charges", ("allow", None), (JSON,), b'{"amount": 500}'),
    Case("POST", "/v1/charges", ("hold", "hold-big-charge"), (JSON,), b'{"amount": '),  # fails closed
    Case("POST", "/v1/charges?gz", ("hold", "hold-big-charge"), (JSON, ("Content-Encoding", "gzip")), gzip.compress(b'{"amount": 50000}')),
    Case("POST", "/v1/form-charges", ("allow", "allow-usd-form"), (FORM,), b"currency=usd&amount=5"),
    Case("POST", "/v1/form-charges", ("deny", "deny-form-charges"), (FORM,), b"currency=eur"),
    Case("POST", "/v1/form-charges?two", ("deny", "deny-form-charges"), (FORM,), b"currency=usd&currency=eur"),
    Case("GET", "/status", ("hold", "hold-prod"), (("X-Env", "prod"),)),
    Case("GET", "/status", ("allow", None), (("X-Env", "staging"),)),
    Case("POST", "/sql", ("deny", "deny-ddl"), (("Content-Type", "text/plain"),), b"DROP  TABLE users"),
    Case("DELETE", "/items/1", ("deny", "deny-delete")),
]  # fmt: skip

OUTCOME_TO_ACTION = {"allowed": "allow", "denied": "deny", "pending": "hold"}
SEPARATOR = "\n--interlock-test--\n"


@pytest.fixture
async def gate(tmp_path: Path, tls: Tls, upstream: Upstream) -> AsyncIterator[Running]:
    running = await start_interlock(tmp_path, tls, upstream, POLICY)
    yield running
    await running.interlock.stop()


async def output(*argv: str) -> str:
    process = await asyncio.create_subprocess_exec(
        *argv, cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0, err.decode()
    return out.decode()


def body_file(gate: Running, index: int) -> Path:
    return gate.policy_path.parent / f"body-{index}"


async def through_proxy(gate: Running, index: int, case: Case) -> tuple[str, str | None]:
    """The proxy's decision: from its refusal body, or for a forwarded request its audit row."""
    args = ["curl", "-s", "-S", "--path-as-is", "-x", gate.proxy_url,
            "--cacert", str(gate.interlock.ca_cert), "-X", case.method,
            "-H", "User-Agent:", "-H", "Accept:",  # no headers beyond the case's own
            "-w", SEPARATOR + "%{http_code} %header{x-interlock-request-id}"]  # fmt: skip
    for name, value in case.headers:
        args += ["-H", f"{name}: {value}"]
    if case.body:
        args += ["--data-binary", f"@{body_file(gate, index)}"]
        if not any(name.lower() == "content-type" for name, _ in case.headers):
            args += ["-H", "Content-Type:"]
    out = await output(*args, gate.url(case.target))
    body, _, trailer = out.rpartition(SEPARATOR)
    status, _, request_id = trailer.partition(" ")
    if status in ("403", "429"):
        answer = json.loads(body)
        return OUTCOME_TO_ACTION[answer["outcome"]], answer["rule"]
    assert status == "200", out
    db = sqlite3.connect(gate.interlock.data.db)
    try:
        outcome, rule = db.execute(
            "SELECT outcome, rule FROM audit WHERE kind = 'request' AND request_id = ?",
            (request_id,),
        ).fetchone()
    finally:
        db.close()
    return OUTCOME_TO_ACTION[outcome], rule


async def explained(gate: Running, index: int, case: Case) -> tuple[str, str | None]:
    """`interlock policy explain` run as a command, with the same method, URL, headers and body."""
    args = [sys.executable, "-m", "proxy.cli", "policy", "explain", str(gate.policy_path),
            case.method, gate.url(case.target), "--json"]  # fmt: skip
    for name, value in case.headers:
        args += ["-H", f"{name}: {value}"]
    if case.body:
        args += ["--data-file", str(body_file(gate, index))]
    result = json.loads(await output(*args))
    return result["action"], result["rule"]


async def test_explain_and_the_proxy_agree_on_every_case(gate: Running) -> None:
    for index, case in enumerate(CASES):
        body_file(gate, index).write_bytes(case.body)
    slots = asyncio.Semaphore(4)

    async def limited(index: int, case: Case) -> tuple[str, str | None]:
        async with slots:
            return await explained(gate, index, case)

    explanations = asyncio.gather(*(limited(i, case) for i, case in enumerate(CASES)))
    decisions = [await through_proxy(gate, i, case) for i, case in enumerate(CASES)]
    by_explain = await explanations
    table = [
        f"{case.method} {case.target}: proxy {decision}, explain {explanation}"
        for case, decision, explanation in zip(CASES, decisions, by_explain, strict=True)
    ]
    assert decisions == by_explain, "\n".join(table)
    assert decisions == [case.expected for case in CASES], "\n".join(table)
    forwarded = {case.target for case in CASES if case.expected[0] == "allow"}
    assert set(gate.upstream.paths()) == forwarded
