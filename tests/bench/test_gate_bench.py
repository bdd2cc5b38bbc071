"""The real gate under load (opt-in: `pytest -m bench tests/bench/test_gate_bench.py -s`; needs wrk).

`interlock run` (audit store on, `default: allow`) against bare `mitmdump` on the same asyncio
upstream, each in its own process, loopback only, every load bounded in time. A third side, "lean"
(mitmproxy with Interlock's addon set and no gate), splits the ratio into what the gate costs and
what the mitmproxy addons Interlock leaves out save. Targets: Interlock
at least 90% of bare mitmproxy's requests per second; 1,000 pending holds raise the median latency
of allowed traffic by at most 10%; an approval reaches the upstream in under 10 ms (median).
Only the first and last are asserted. Each run also reports the proxy's CPU time per request,
which moves far less than requests per second when other work shares the two cores.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from mitmproxy import version as mitm_version

from tests.bench.loadkit import (
    Wrk,
    free_port,
    rss_mb,
    run_wrk,
    spawn,
    start_upstream,
    stop,
    wait_listening,
)

pytestmark = pytest.mark.bench
needs_wrk = pytest.mark.skipif(
    shutil.which("wrk") is None,
    reason="wrk is not installed (apt-get install -y wrk): the gate load benchmark cannot run",
)

ROUNDS = 3  # saturated runs per side, interleaved A B A B A B
SATURATED = {"seconds": 10, "connections": 8}
UNLOADED = {"seconds": 5, "connections": 1}
HOLDS = 1_000
APPROVALS, WARMUP = 50, 3
MIN_RATIO, MAX_HOLD_SLOWDOWN, MAX_APPROVE_MS = 0.90, 1.10, 10.0
POLICY = """version: 1
default: allow
rules:
  - name: bench-hold
    action: hold
    reason: Benchmark hold.
    timeout: 30m
    respond_pending_after: 25m
    match: {method: POST, path: /hold/**}
  - name: bench-approve
    action: hold
    reason: Approve latency probe.
    timeout: 30m
    respond_pending_after: 25m
    match: {method: POST, path: /approve/**}
"""


@dataclass
class Gateway:
    process: subprocess.Popen[bytes]
    proxy_port: int
    api_url: str
    token: str

    def api(self) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.token}"}
        return httpx.Client(base_url=self.api_url, headers=headers, timeout=30, trust_env=False)

    def async_api(self) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {self.token}"}
        return httpx.AsyncClient(
            base_url=self.api_url, headers=headers, timeout=30, trust_env=False
        )


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("gate-bench")


@pytest.fixture(scope="module")
def summary() -> Iterator[list[str]]:
    lines: list[str] = []
    yield lines
    rule = "=" * 78
    head = f"gate benchmark: mitmproxy {mitm_version.VERSION}, Python {sys.version.split()[0]}"
    print("\n".join(["", rule, head, *lines, rule]))


@pytest.fixture(scope="module")
def upstream(workdir: Path) -> Iterator[int]:
    process, port = start_upstream(workdir, lifetime=900)
    yield port
    stop(process)
    assert process.stdout is not None
    process.stdout.close()


@pytest.fixture(scope="module")
def gateway(workdir: Path) -> Iterator[Gateway]:
    data = workdir / "data"
    (workdir / "policy.yaml").write_text(POLICY)
    args = [sys.executable, "-m", "proxy.cli", "run", "--policy", str(workdir / "policy.yaml"),
            "--listen", "127.0.0.1:0", "--api-listen", "127.0.0.1:0", "--data-dir", str(data),
            "--auth", "optional", "--max-pending", str(2 * HOLDS)]  # fmt: skip
    # stdout is the decision log (one JSON line per request), kept in a file as a container would.
    process = spawn(args, workdir / "interlock.out", workdir / "interlock.err")
    deadline = time.monotonic() + 60
    while not (data / "api.json").exists():
        assert process.poll() is None, (workdir / "interlock.err").read_text()
        assert time.monotonic() < deadline, "interlock run did not start within 60 s"
        time.sleep(0.05)
    info = json.loads((data / "api.json").read_text())
    token = (data / "operator.token").read_text().strip()
    yield Gateway(process, int(info["proxy"].rsplit(":", 1)[1]), info["url"], token)
    stop(process)
    assert process.returncode == 0, (workdir / "interlock.err").read_text()[-2000:]


@dataclass(frozen=True)
class Side:
    port: int
    pid: int


@pytest.fixture(scope="module")
def lean(workdir: Path) -> Iterator[Side]:
    port = free_port()
    args = [sys.executable, "-m", "tests.bench.loadkit", "lean", "--proxy-port", str(port),
            "--confdir", str(workdir / "lean"), "--lifetime", "900"]  # fmt: skip
    process = spawn(args, workdir / "lean.out", workdir / "lean.err")
    wait_listening(port, process, workdir / "lean.err", timeout=60)
    yield Side(port, process.pid)
    stop(process)


@pytest.fixture(scope="module")
def mitmdump(workdir: Path) -> Iterator[Side]:
    port = free_port()
    args = [str(Path(sys.executable).parent / "mitmdump"), "-q", "--listen-host", "127.0.0.1",
            "--listen-port", str(port), "--set", "connection_strategy=lazy",
            "--set", f"confdir={workdir / 'mitmdump'}"]  # fmt: skip
    process = spawn(args, workdir / "mitmdump.out", workdir / "mitmdump.err")
    wait_listening(port, process, workdir / "mitmdump.err", timeout=60)
    yield Side(port, process.pid)
    stop(process)


def _median(runs: list[Wrk], attribute: str) -> float:
    return float(statistics.median(getattr(run, attribute) for run in runs))


def _checked(run: Wrk) -> Wrk:
    assert run.requests > 0 and not any(run.errors.values()), f"errors under load: {run}"
    return run


def _load(workdir: Path, upstream: int, side: Side, shape: dict[str, int]) -> Wrk:
    return _checked(run_wrk(workdir, side.port, upstream, **shape, proxied=True, pid=side.pid))


@needs_wrk
def test_throughput_against_bare_mitmproxy(
    workdir: Path, upstream: int, gateway: Gateway, mitmdump: Side, lean: Side, summary: list[str]
) -> None:
    sides = {"interlock": Side(gateway.proxy_port, gateway.process.pid), "mitmdump": mitmdump,
             "lean": lean}  # fmt: skip

    for side in sides.values():  # warm up: imports, first connections, the SQLite file
        _load(workdir, upstream, side, {"seconds": 2, "connections": 8})
    saturated: dict[str, list[Wrk]] = {name: [] for name in sides}
    unloaded: dict[str, list[Wrk]] = {"direct": [], **{name: [] for name in sides}}
    for _ in range(ROUNDS):
        for name, side in sides.items():
            saturated[name].append(_load(workdir, upstream, side, SATURATED))
    for _ in range(2):
        unloaded["direct"].append(
            _checked(run_wrk(workdir, upstream, upstream, **UNLOADED, proxied=False))
        )
        for name, side in sides.items():
            unloaded[name].append(_load(workdir, upstream, side, UNLOADED))

    ratio = _median(saturated["interlock"], "rps") / _median(saturated["mitmdump"], "rps")
    cpu_ratio = _median(saturated["mitmdump"], "cpu_ms") / _median(saturated["interlock"], "cpu_ms")
    c1 = {name: _median(runs, "p50_ms") for name, runs in unloaded.items()}
    verdict = "ok" if ratio >= MIN_RATIO else "MISSED"
    summary.append(
        f"1. throughput, wrk -t1 -c8 -d10s, plain-HTTP GET, {ROUNDS} rounds interleaved:"
    )
    for name, runs in saturated.items():
        summary.extend(f"   {name:<9} run {i + 1}: {run}" for i, run in enumerate(runs))
    for name, runs in saturated.items():
        summary.append(f"   {name:<9} median: {_median(runs, 'rps'):7.0f} rps  p50 "
                       f"{_median(runs, 'p50_ms'):6.2f} ms  p99 {_median(runs, 'p99_ms'):6.2f} ms  "
                       f"CPU {_median(runs, 'cpu_ms'):5.2f} ms/request")  # fmt: skip
    summary.append(f"   interlock / mitmdump rps: {ratio:.3f} (target >= {MIN_RATIO}: {verdict}); "
                   f"by CPU per request: {cpu_ratio:.3f}")  # fmt: skip
    gate_cost = _median(saturated["interlock"], "rps") / _median(saturated["lean"], "rps")
    addons_gain = _median(saturated["lean"], "rps") / _median(saturated["mitmdump"], "rps")
    summary.append(f"   of which: interlock / lean (the gate itself) {gate_cost:.3f}; "
                   f"lean / mitmdump (the addons Interlock leaves out) {addons_gain:.3f}")  # fmt: skip
    summary.append("   one connection (wrk -c1 -d5s, 2 rounds), medians:")
    for name, runs in unloaded.items():
        summary.append(f"   {name:<9} p50 {c1[name]:6.3f} ms  p99 {_median(runs, 'p99_ms'):6.3f} ms  "
                       f"{_median(runs, 'rps'):6.0f} rps  CPU {_median(runs, 'cpu_ms'):5.2f} ms/request")  # fmt: skip
    summary.append(f"   added median latency: gate over mitmdump {c1['interlock'] - c1['mitmdump']:+.3f} ms, "
                   f"mitmdump over direct {c1['mitmdump'] - c1['direct']:+.3f} ms, "
                   f"interlock over direct {c1['interlock'] - c1['direct']:+.3f} ms")  # fmt: skip
    assert ratio >= MIN_RATIO


def _pending(api: httpx.Client) -> list[dict[str, object]]:
    holds: list[dict[str, object]] = api.get("/v1/holds").raise_for_status().json()["holds"]
    return holds


@needs_wrk
def test_allowed_latency_with_1000_pending_holds(
    workdir: Path, upstream: int, gateway: Gateway, summary: list[str]
) -> None:
    side = Side(gateway.proxy_port, gateway.process.pid)

    def load() -> Wrk:
        return _load(workdir, upstream, side, SATURATED)

    pid = gateway.process.pid
    before, rss_before = load(), rss_mb(pid)
    result_file = workdir / "holders.json"
    holder = spawn(
        [sys.executable, "-m", "tests.bench.loadkit", "hold", "--proxy-port", str(gateway.proxy_port),
         "--upstream-port", str(upstream), "--count", str(HOLDS), "--lifetime", "300",
         "--result", str(result_file)],
        workdir / "holders.out", workdir / "holders.err",
    )  # fmt: skip
    try:
        with gateway.api() as api:
            started = time.monotonic()
            while len(pending := _pending(api)) < HOLDS:
                assert holder.poll() is None, (workdir / "holders.err").read_text()
                assert time.monotonic() - started < 120, f"only {len(pending)} holds after 120 s"
                time.sleep(0.5)
            opened_s, rss_held = time.monotonic() - started, rss_mb(pid)
            held = load()
            still = _pending(api)
            assert len(still) == HOLDS, "holds ended during the load"
            denying = time.monotonic()
            for hold in still:
                answer = api.post(f"/v1/holds/{hold['id']}/deny", json={"reason": "bench over"})
                assert answer.status_code == 200, answer.text
            denied_s = time.monotonic() - denying
            holder.wait(60)
            ended = json.loads(result_file.read_text())
            assert ended == {"statuses": {"403": HOLDS}, "unanswered": 0, "failed": 0}
            assert gateway.process.poll() is None
            assert api.get("/healthz").json()["ok"] is True
            assert _pending(api) == []
        proxy = f"http://127.0.0.1:{gateway.proxy_port}"
        with httpx.Client(proxy=proxy, trust_env=False, timeout=10) as agent:
            assert agent.get(f"http://127.0.0.1:{upstream}/after").status_code == 200
    finally:
        stop(holder)
    after = load()
    baseline = (before.p50_ms + after.p50_ms) / 2
    slowdown = held.p50_ms / baseline
    verdict = "ok" if slowdown <= MAX_HOLD_SLOWDOWN else "MISSED"
    summary.extend([
        f"2. {HOLDS} pending holds, background wrk -t1 -c8 -d10s of allowed GETs:",
        f"   no holds (before): {before}",
        f"   {HOLDS} holds:       {held}",
        f"   no holds (after):  {after}",
        f"   median latency with holds / without: {slowdown:.3f} (target <= {MAX_HOLD_SLOWDOWN}: {verdict})",
        f"   {HOLDS} holds pending after {opened_s:.1f} s; {HOLDS} denials via the API in "
        f"{denied_s:.1f} s, all {HOLDS} agents got 403; healthz ok, proxy still forwards",
        f"   gate RSS: {rss_before:.0f} MB before, {rss_held:.0f} MB with {HOLDS} holds",
    ])  # fmt: skip


async def test_approve_to_upstream_latency(
    upstream: int, gateway: Gateway, summary: list[str]
) -> None:
    proxy = f"http://127.0.0.1:{gateway.proxy_port}"
    timings: list[tuple[str, float, float, float]] = []
    async with gateway.async_api() as api:
        for i in range(WARMUP + APPROVALS):
            path = f"/approve/{i}"
            # A fresh agent connection each time: mitmproxy must also connect to the upstream.
            async with httpx.AsyncClient(proxy=proxy, trust_env=False, timeout=30) as agent:
                held = asyncio.create_task(
                    agent.post(f"http://127.0.0.1:{upstream}{path}", content=b'{"go": 1}')
                )
                deadline = time.monotonic() + 10
                while not (
                    found := [h for h in (await api.get("/v1/holds")).json()["holds"]
                              if h["path"] == path]
                ):  # fmt: skip
                    assert time.monotonic() < deadline, f"{path} was not held"
                    await asyncio.sleep(0.005)
                sent = time.monotonic()
                answer = await api.post(f"/v1/holds/{found[0]['id']}/approve", json={})
                answered = time.monotonic()
                response = await asyncio.wait_for(held, 30)
                timings.append((path, sent, answered, time.monotonic()))
            assert answer.status_code == 200 and response.status_code == 200
    async with httpx.AsyncClient(trust_env=False) as direct:
        arrivals = (await direct.get(f"http://127.0.0.1:{upstream}/_arrivals")).json()
    measured = timings[WARMUP:]
    to_upstream = [(arrivals[path] - sent) * 1000 for path, sent, _, _ in measured]
    to_answer = [(answered - sent) * 1000 for _, sent, answered, _ in measured]
    to_agent = [(done - sent) * 1000 for _, sent, _, done in measured]

    def figures(samples: list[float]) -> str:
        p99 = statistics.quantiles(samples, n=100, method="inclusive")[98]
        return f"median {statistics.median(samples):6.2f} ms  p99 {p99:6.2f} ms"

    median = statistics.median(to_upstream)
    verdict = "ok" if median < MAX_APPROVE_MS else "MISSED"
    summary.extend([
        f"3. approve to upstream, {APPROVALS} holds one at a time (after {WARMUP} warm-up):",
        f"   POST approve -> upstream receives:  {figures(to_upstream)} (target median < {MAX_APPROVE_MS:g} ms: {verdict})",
        f"   POST approve -> API answers:        {figures(to_answer)}",
        f"   POST approve -> agent has response: {figures(to_agent)}",
    ])  # fmt: skip
    assert median < MAX_APPROVE_MS
