"""`interlock run` as a real process: what it prints, what it refuses, signals, reloads, and real
clients (curl, Python, a shell that sourced `interlock env`) going through it."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import sqlite3
import ssl
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import pytest_asyncio

from proxy.app import MITMPROXY_MAJOR
from tests.e2e.conftest import Tls, start_interlock
from tests.e2e.upstream import Upstream

# One loop for the module, so one `interlock run` can serve the tests that only look at it.
pytestmark = pytest.mark.asyncio(loop_scope="module")

ROOT = Path(__file__).resolve().parents[2]
STARTUP_TIMEOUT = 20.0

POLICY = """version: 1
default: allow
rules:
  - name: deny-admin
    action: deny
    reason: The admin API is off limits.
    match: {path: /admin/**}
  - name: hold-deploy
    action: hold
    reason: Deploys need a person.
    match: {method: POST, path: /deploy/**}
"""
# Same length as POLICY, so only SIGHUP (not the file watcher) can notice the swap.
POLICY_USERS = POLICY.replace("deny-admin", "deny-users").replace("/admin/**", "/users/**")
BROKEN = POLICY_USERS.replace("action: deny\n", "action: dent\n", 1)
assert len(POLICY) == len(POLICY_USERS) == len(BROKEN)


def clean_env() -> dict[str, str]:
    """The test's environment without proxy, CA-bundle or Interlock settings."""
    dropped = {"http_proxy", "https_proxy", "all_proxy", "no_proxy", "ssl_cert_file",
               "requests_ca_bundle", "curl_ca_bundle", "interlock_home", "interlock_api",
               "interlock_token"}  # fmt: skip
    return {k: v for k, v in os.environ.items() if k.lower() not in dropped}


async def run(*argv: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """Run a short command to completion: (exit code, stdout, stderr)."""
    process = await asyncio.create_subprocess_exec(
        *argv,
        cwd=ROOT,
        env=env or clean_env(),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def interlock(*args: str) -> list[str]:
    return [sys.executable, "-m", "proxy.cli", *args]


@dataclass
class Proc:
    """A running `interlock run` and everything it has written to stderr so far."""

    process: asyncio.subprocess.Process
    data_dir: Path
    policy: Path
    lines: list[str] = field(default_factory=list)
    drain: asyncio.Task[None] | None = None

    @property
    def stderr(self) -> str:
        return "".join(self.lines)

    async def wait_for(self, text: str, timeout: float = STARTUP_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.stderr:
            assert self.drain is not None
            if self.drain.done() or time.monotonic() > deadline:
                raise AssertionError(f"{text!r} never appeared on stderr:\n{self.stderr}")
            await asyncio.sleep(0.02)

    def address(self, label: str) -> int:
        match = re.search(rf"^  {label}:\s+https?://127\.0\.0\.1:(\d+)\b", self.stderr, re.M)
        assert match, self.stderr
        return int(match.group(1))

    @property
    def proxy_url(self) -> str:
        return f"http://127.0.0.1:{self.address('proxy')}"

    @property
    def ca_cert(self) -> Path:
        return self.data_dir / "mitmproxy" / "mitmproxy-ca-cert.pem"

    def client(self) -> httpx.AsyncClient:
        context = ssl.create_default_context(cafile=str(self.ca_cert))
        return httpx.AsyncClient(proxy=self.proxy_url, verify=context, timeout=20)

    def api(self) -> httpx.AsyncClient:
        token = (self.data_dir / "operator.token").read_text().strip()
        return httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{self.address('API')}",
            headers={"Authorization": f"Bearer {token}"},
            timeout=20,
        )

    async def exit_code(self, timeout: float = 10) -> int:
        code = await asyncio.wait_for(self.process.wait(), timeout)
        if self.drain is not None:
            await asyncio.wait_for(self.drain, timeout)
        return code

    async def stop(self) -> None:
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), 10)
            except TimeoutError:
                self.process.kill()
        await self.exit_code()


async def _drain(stream: asyncio.StreamReader, into: list[str]) -> None:
    while line := await stream.readline():
        into.append(line.decode(errors="replace"))


async def spawn(
    tmp_path: Path, tls: Tls, *extra: str, data_dir: Path | None = None, policy: str = POLICY
) -> Proc:
    """Start `interlock run` on free ports; does not wait for it to be ready."""
    policy_path = tmp_path / "policy.yaml"
    if not policy_path.exists():
        policy_path.write_text(policy)
    data = data_dir or tmp_path / "data"
    argv = interlock(
        "run", "--listen", "127.0.0.1:0", "--api-listen", "127.0.0.1:0", "--data-dir", str(data),
        "--policy", str(policy_path), "--upstream-ca", str(tls.ca), *extra,
    )  # fmt: skip
    with open(tmp_path / f"decisions-{time.monotonic_ns()}.log", "wb") as decisions:
        process = await asyncio.create_subprocess_exec(
            *argv,
            cwd=ROOT,
            env=clean_env(),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=decisions,  # the decision log
            stderr=asyncio.subprocess.PIPE,
        )
    proc = Proc(process, data, policy_path)
    assert process.stderr is not None
    proc.drain = asyncio.create_task(_drain(process.stderr, proc.lines))
    return proc


async def start(tmp_path: Path, tls: Tls, *extra: str, **kwargs: object) -> Proc:
    proc = await spawn(tmp_path, tls, *extra, **kwargs)  # type: ignore[arg-type]
    # The last line of the startup banner.
    await proc.wait_for("HTTP/2 to clients is off" if MITMPROXY_MAJOR < 12 else "operator token")
    return proc


@pytest_asyncio.fixture(loop_scope="module")
async def running(tmp_path: Path, tls: Tls, upstream: Upstream) -> AsyncIterator[Proc]:
    """A process of the test's own, for tests that signal it or change its policy."""
    proc = await start(tmp_path, tls)
    yield proc
    await proc.stop()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def shared(tmp_path_factory: pytest.TempPathFactory, tls: Tls) -> AsyncIterator[Proc]:
    """One process for the tests that only use it; any upstream works (same test CA)."""
    proc = await start(tmp_path_factory.mktemp("shared"), tls)
    yield proc
    await proc.stop()


def audit_rows(data_dir: Path, kind: str) -> list[sqlite3.Row]:
    db = sqlite3.connect(data_dir / "audit.db")
    db.row_factory = sqlite3.Row
    try:
        return db.execute("SELECT * FROM audit WHERE kind = ? ORDER BY seq", (kind,)).fetchall()
    finally:
        db.close()


def upstream_url(upstream: Upstream, path: str) -> str:
    return f"https://127.0.0.1:{upstream.port}{path}"


async def test_startup_says_where_everything_is_and_the_cli_finds_it(shared: Proc) -> None:
    running = shared
    text = running.stderr
    proxy_port, api_port = running.address("proxy"), running.address("API")
    assert proxy_port != 0 and api_port != 0 and proxy_port != api_port
    assert f"  CA cert:  {running.ca_cert}  (give agents this file" in text
    assert running.ca_cert.is_file()
    assert f"  tokens:   {running.data_dir / 'tokens.json'}" in text
    assert f"  audit:    {running.data_dir / 'audit.db'}" in text
    assert f"  policy:   {running.policy} (2 rules, default allow)" in text
    assert f"operator token for 'admin' created: {running.data_dir / 'operator.token'}" in text
    info = json.loads((running.data_dir / "api.json").read_text())
    assert info == {
        "url": f"http://127.0.0.1:{api_port}",
        "pid": running.process.pid,
        "proxy": f"http://127.0.0.1:{proxy_port}",
    }
    code, out, err = await run(*interlock("holds", "--data-dir", str(running.data_dir)))
    assert (code, out.strip(), err) == (0, "no requests are waiting for a person", "")


async def test_a_port_in_use_is_refused_with_its_address(tmp_path: Path, tls: Tls) -> None:
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        taken = f"127.0.0.1:{port}"
        (tmp_path / "a").mkdir()
        (tmp_path / "b").mkdir()
        procs = [
            await spawn(tmp_path / "a", tls, "--listen", taken),
            await spawn(tmp_path / "b", tls, "--api-listen", taken),
        ]
        codes = await asyncio.gather(*(p.exit_code(STARTUP_TIMEOUT) for p in procs))
    proxy, api = procs
    assert codes == [1, 1]
    for proc in procs:
        assert f"cannot listen on {taken}" in proc.stderr and "in use" in proc.stderr
        assert "Traceback" not in proc.stderr, proc.stderr
        assert not (proc.data_dir / "api.json").exists()
    assert f"interlock: cannot listen on {taken}" in proxy.stderr
    assert f"interlock: [Errno 98] control API: cannot listen on {taken}" in api.stderr


async def test_a_second_run_on_the_same_data_dir_is_refused(
    running: Proc, tmp_path: Path, tls: Tls
) -> None:
    second = await spawn(tmp_path, tls, data_dir=running.data_dir)
    assert await second.exit_code(STARTUP_TIMEOUT) == 1
    assert "already running" in second.stderr
    assert f"(pid {running.process.pid})" in second.stderr
    assert running.process.returncode is None  # the first one is unharmed
    running.process.send_signal(signal.SIGINT)
    assert await running.exit_code(5) == 0


async def test_gate_weakening_options_are_refused_before_anything_listens(
    tmp_path: Path, tls: Tls
) -> None:
    options = ["stream_large_bodies=1m", "ignore_hosts=.*", "connection_strategy=eager",
               "rawtcp=true", "ssl_insecure=true",
               # Options of mitmproxy parts Interlock does not run: unredacted flow files, code.
               "save_stream_file=flows.mitm", "scripts=evil.py", "stickycookie=.*",
               "proxyauth=alice:s3cret-pass"]  # fmt: skip
    for index in range(len(options)):
        (tmp_path / str(index)).mkdir()
    procs = [
        await spawn(tmp_path / str(index), tls, "--set", option)
        for index, option in enumerate(options)
    ]
    codes = await asyncio.gather(*(p.exit_code(STARTUP_TIMEOUT) for p in procs))
    assert codes == [1] * len(options)
    for option, proc in zip(options, procs, strict=True):
        shown = option if option in options[:5] else option.partition("=")[0]  # values withheld
        assert proc.stderr.startswith(f"interlock: refusing --set {shown}: "), proc.stderr
        assert len(proc.stderr.splitlines()) == 1  # no banner, no traceback
        assert not (proc.data_dir / "api.json").exists()
        assert not (proc.data_dir / "audit.db").exists()
    for option, proc in zip(options[5:], procs[5:], strict=True):
        assert "left out" in proc.stderr, proc.stderr
        assert option.partition("=")[2] not in proc.stderr  # a value may be a credential


async def test_a_public_listener_that_would_leak_links_is_refused_before_anything_listens(
    tmp_path: Path, tls: Tls
) -> None:
    cases = [
        ("--public-listen", "127.0.0.1:0", "--public-url", "http://approve.example.com"),
        ("--public-url", "https://approve.example.com"),
        ("--public-listen", "0.0.0.0:0"),
    ]
    for index in range(len(cases)):
        (tmp_path / str(index)).mkdir()
    procs = [await spawn(tmp_path / str(i), tls, *args) for i, args in enumerate(cases)]
    codes = await asyncio.gather(*(p.exit_code(STARTUP_TIMEOUT) for p in procs))
    assert codes == [1] * len(cases)
    plain, no_listener, no_url = (p.stderr for p in procs)
    assert "plain HTTP beyond this machine" in plain
    assert "--public-url needs --public-listen" in no_listener
    assert "give --public-url" in no_url
    for proc in procs:
        assert len(proc.stderr.splitlines()) == 1, proc.stderr  # no banner, no traceback
        assert not (proc.data_dir / "audit.db").exists()


async def test_sigterm_expires_the_held_request_records_it_and_exits_0(
    running: Proc, upstream: Upstream
) -> None:
    async with running.client() as client, running.api() as api:
        held = asyncio.create_task(
            client.post(upstream_url(upstream, "/deploy/web"), content=b"{}")
        )
        deadline = time.monotonic() + 10
        while not (await api.get("/v1/holds")).json():
            assert time.monotonic() < deadline and not held.done()
            await asyncio.sleep(0.02)
        code, out, _ = await run(*interlock("holds", "--data-dir", str(running.data_dir), "--json"))
        (hold,) = json.loads(out)
        assert code == 0 and hold["rule"] == "hold-deploy" and hold["method"] == "POST"
        signalled = time.monotonic()
        running.process.send_signal(signal.SIGTERM)
        response = await asyncio.wait_for(held, 10)
        assert await running.exit_code(10) == 0
    assert time.monotonic() - signalled < 5
    assert response.status_code == 403
    body = response.json()
    assert body["outcome"] == "expired" and body["hold_id"] == hold["id"]
    assert "shutting down" in body["reason"]
    assert "interlock: shutting down" in running.stderr
    (row,) = audit_rows(running.data_dir, "hold")
    assert (row["hold_id"], row["outcome"], row["decided_by"]) == (hold["id"], "expired", "system")
    assert upstream.connections == 0 and upstream.requests == []


async def test_sighup_reloads_and_a_broken_file_keeps_the_old_policy(
    running: Proc, upstream: Upstream
) -> None:
    def rewrite(text: str) -> None:
        """Replace the content, keeping size and mtime: the file watcher cannot notice."""
        before = running.policy.stat()
        staged = running.policy.with_suffix(".staged")
        staged.write_text(text)
        os.utime(staged, ns=(before.st_atime_ns, before.st_mtime_ns))
        staged.replace(running.policy)  # atomic: the watcher never sees a half-written file

    async def status(client: httpx.AsyncClient, path: str) -> tuple[int, str | None]:
        response = await client.get(upstream_url(upstream, path))
        return response.status_code, response.json().get("rule")

    async with running.client() as client:
        assert await status(client, "/users/1") == (200, None)
        rewrite(POLICY_USERS)
        await asyncio.sleep(1.2)  # the watcher has polled at least once and seen no change
        assert await status(client, "/users/1") == (200, None)
        running.process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 5
        while await status(client, "/users/1") != (403, "deny-users"):
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        assert await status(client, "/admin/1") == (200, None)

        rewrite(BROKEN)
        running.process.send_signal(signal.SIGHUP)
        await running.wait_for(
            f"{running.policy}:5:13: rules[0] (deny-users): action must be one of", timeout=5
        )
        assert "policy reload refused, the old policy stays" in running.stderr
        assert await status(client, "/users/1") == (403, "deny-users")
        assert await status(client, "/admin/1") == (200, None)


async def test_the_file_watcher_reloads_by_itself(running: Proc, upstream: Upstream) -> None:
    async with running.client() as client:
        assert (await client.get(upstream_url(upstream, "/users/1"))).status_code == 200
        running.policy.write_text(POLICY_USERS)
        changed = time.monotonic()
        while (await client.get(upstream_url(upstream, "/users/1"))).status_code != 403:
            assert time.monotonic() - changed < 3  # polled every second
            await asyncio.sleep(0.05)
    assert audit_rows(running.data_dir, "policy")  # the reload is in the audit log


async def test_the_file_watcher_sees_a_write_that_lands_during_a_reload(
    tmp_path: Path, tls: Tls, upstream: Upstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An editor's save can land while the watcher is reloading the previous one."""
    running = await start_interlock(tmp_path, tls, upstream, POLICY)
    interlock_ = running.interlock
    reload = interlock_.reload_policy

    async def reload_racing_a_save() -> dict[str, object]:
        answer = await reload()
        if running.policy_path.read_text() == BROKEN:
            running.policy_path.write_text(POLICY_USERS + "# saved\n")
        return answer

    monkeypatch.setattr(interlock_, "reload_policy", reload_racing_a_save)
    try:
        await asyncio.sleep(0.1)  # the watcher has taken its first look
        running.policy_path.write_text(BROKEN)  # a save that is refused...
        deadline = time.monotonic() + 4
        while interlock_.policy.policy.rules[0].name != "deny-users":  # ...then the good one
            assert time.monotonic() < deadline, "the watcher missed the second save"
            await asyncio.sleep(0.05)
    finally:
        await interlock_.stop()


async def test_curl_through_the_proxy_with_the_interlock_ca(
    shared: Proc, upstream: Upstream
) -> None:
    running = shared
    code, out, _ = await run(*interlock("ca", "--data-dir", str(running.data_dir)))
    ca = Path(out.strip())
    assert code == 0 and ca == running.ca_cert
    curl = ["curl", "-s", "-S", "-x", running.proxy_url, "--cacert", str(ca)]
    code, out, err = await run(*curl, "-i", upstream_url(upstream, "/hello?x=1"))
    assert code == 0, err
    head, _, body = out.split("HTTP/1.1 200 Connection established\r\n\r\n")[-1].partition(
        "\r\n\r\n"
    )
    status_line, *headers = head.lower().splitlines()  # HTTP/2 headers are lowercase
    assert status_line.split()[1] == "200"
    assert "x-interlock-decision: allowed" in headers
    assert json.loads(body)["path"] == "/hello?x=1"

    plain = f"http://127.0.0.1:{upstream.port}/admin/users"
    code, out, err = await run(*curl, "-w", "\n%{http_code}", plain)
    body, _, http_code = out.rpartition("\n")
    assert code == 0 and http_code == "403", err
    denied = json.loads(body)
    assert denied["outcome"] == "denied" and denied["rule"] == "deny-admin"
    assert upstream.paths() == ["/hello?x=1"]


async def test_http2_to_clients_depends_on_the_mitmproxy_version(
    shared: Proc, upstream: Upstream
) -> None:
    running = shared
    code, out, err = await run(
        "curl", "-s", "-S", "--http2", "-x", running.proxy_url, "--cacert", str(running.ca_cert),
        "-o", "/dev/null", "-w", "%{http_code} %{http_version}", upstream_url(upstream, "/h2"),
    )  # fmt: skip
    assert code == 0, err
    if MITMPROXY_MAJOR < 12:
        assert "HTTP/2 to clients is off" in running.stderr
        assert out == "200 1.1"
    else:
        assert "HTTP/2" not in running.stderr
        assert out == "200 2"


async def test_interlock_env_sourced_in_bash_sends_curl_and_python_through_the_proxy(
    shared: Proc, upstream: Upstream, tmp_path: Path
) -> None:
    running = shared
    # The default NO_PROXY lets 127.0.0.1 bypass the proxy; the upstream lives there.
    code, out, err = await run(
        *interlock("env", "--data-dir", str(running.data_dir), "--no-proxy", "localhost")
    )
    assert code == 0, err
    assert f"export HTTPS_PROXY={running.proxy_url}\n" in out
    (tmp_path / "agent.env").write_text(out)
    python = (
        "import json, sys, urllib.request\n"
        "with urllib.request.urlopen(sys.argv[1]) as r:\n"
        "    print(r.status, r.headers['X-Interlock-Decision'], json.load(r)['path'])\n"
    )
    script = (
        f"source {tmp_path / 'agent.env'}\n"
        f"curl -s -S -o /dev/null -w '%{{http_code}} %header{{x-interlock-decision}}\\n' "
        f"{upstream_url(upstream, '/env/curl')}\n"
        f'{sys.executable} -c "$PYTHON" {upstream_url(upstream, "/env/python")}\n'
    )
    env = clean_env() | {"PYTHON": python}
    code, out, err = await run("bash", "-c", script, env=env)
    assert code == 0, err
    curl_line, python_line = out.splitlines()[-2:]
    assert curl_line == "200 allowed"
    assert python_line == "200 allowed /env/python"
    assert upstream.paths() == ["/env/curl", "/env/python"]
    recorded = {r["path"]: r["outcome"] for r in audit_rows(running.data_dir, "request")}
    assert recorded["/env/curl"] == recorded["/env/python"] == "allowed"
