"""Real parts: an embedded Interlock on port 0, a TLS upstream on 127.0.0.1, real clients."""

from __future__ import annotations

import io
import ssl
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from proxy.app import Interlock, RunSettings
from tests.e2e.upstream import Upstream, make_tls, start_upstream
from tests.e2e.webhooks import hook  # noqa: F401 (a fixture for the channel tests)

BASE_POLICY = """version: 1
default: allow
rules:
  - name: deny-admin
    action: deny
    reason: The admin API is off limits.
    match: {path: /admin/**}
  - name: hold-deploy
    action: hold
    reason: Deploys need a person.
    severity: high
    reasons: [Not now, Wrong branch]
    timeout: {timeout}
    respond_pending_after: {pending}
    match: {method: POST, path: /deploy/**}
"""


@dataclass
class Tls:
    ca: Path
    cert: Path
    key: Path


@pytest.fixture(scope="session")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Tls:
    return Tls(*make_tls(tmp_path_factory.mktemp("tls")))


@pytest.fixture
def upstream(tls: Tls) -> Iterator[Upstream]:
    server, stop = start_upstream(tls.cert, tls.key)
    yield server
    stop()


@dataclass
class Running:
    interlock: Interlock
    upstream: Upstream
    policy_path: Path
    log: io.StringIO
    operator_token: str

    @property
    def proxy_url(self) -> str:
        assert self.interlock.proxy_address
        return f"http://127.0.0.1:{self.interlock.proxy_address[1]}"

    @property
    def api_url(self) -> str:
        return self.interlock.api_url

    def url(self, path: str) -> str:
        return f"https://127.0.0.1:{self.upstream.port}{path}"

    def client(self, **kwargs: object) -> httpx.AsyncClient:
        context = ssl.create_default_context(cafile=str(self.interlock.ca_cert))
        return httpx.AsyncClient(proxy=self.proxy_url, verify=context, timeout=30, **kwargs)  # type: ignore[arg-type]

    def api(self) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {self.operator_token}"}
        return httpx.AsyncClient(base_url=self.api_url, headers=headers, timeout=30)


def policy_text(timeout: str = "30s", pending: str = "20s", extra: str = "") -> str:
    return BASE_POLICY.replace("{timeout}", timeout).replace("{pending}", pending) + extra


async def start_interlock(
    tmp_path: Path, tls: Tls, upstream: Upstream, policy: str, **overrides: object
) -> Running:
    policy_path = tmp_path / "policy.yaml"
    policy_path.write_text(policy)
    log = io.StringIO()
    settings = RunSettings(
        policy=policy_path,
        listen=("127.0.0.1", 0),
        api_listen=("127.0.0.1", 0),
        data_dir=tmp_path / "data",
        upstream_ca=tls.ca,
        auth="optional",
        decision_log=log,
    )
    for name, value in overrides.items():
        setattr(settings, name, value)
    interlock = Interlock(settings)
    await interlock.start()
    token = (tmp_path / "data" / "operator.token").read_text().strip()
    return Running(interlock, upstream, policy_path, log, token)


@pytest.fixture
async def gate(tmp_path: Path, tls: Tls, upstream: Upstream) -> AsyncIterator[Running]:
    running = await start_interlock(tmp_path, tls, upstream, policy_text())
    yield running
    await running.interlock.stop()
