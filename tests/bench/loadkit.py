"""Processes for the gate benchmark: a fast plain-HTTP upstream, a crowd of held clients, and the
wrk and proxy subprocesses, each in its own process so no two share an event loop.

`python -m tests.bench.loadkit upstream` prints its port, answers every request with a small 200,
and timestamps (`time.monotonic()`, system-wide on Linux) the arrival of each `/approve/...`
request; `GET /_arrivals` returns them. `python -m tests.bench.loadkit hold` opens N held POSTs
through a proxy and writes how they ended to a JSON file. `python -m tests.bench.loadkit lean` runs
mitmproxy with Interlock's addons and no gate. All stop on their own after `--lifetime`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PR_SET_PDEATHSIG = 1


# -- the upstream -------------------------------------------------------------------------------


class _UpstreamProtocol(asyncio.Protocol):
    """HTTP/1.1 keep-alive with Content-Length bodies only: all the benchmark sends."""

    def __init__(self, arrivals: dict[str, float]) -> None:
        self.arrivals = arrivals
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        arrived = time.monotonic()
        self.buffer += data
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            lines = bytes(self.buffer[:end]).decode("latin-1").split("\r\n")
            target = lines[0].split(" ")[1]
            length = 0
            for line in lines[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            if len(self.buffer) < end + 4 + length:
                return
            del self.buffer[: end + 4 + length]
            if target.startswith("/approve/"):
                self.arrivals.setdefault(target, arrived)
            body = json.dumps(self.arrivals).encode() if target == "/_arrivals" else b'{"ok":true}'
            head = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
            assert self.transport is not None
            self.transport.write(head.encode() + body)


async def serve_upstream(lifetime: float) -> None:
    arrivals: dict[str, float] = {}
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: _UpstreamProtocol(arrivals), "127.0.0.1", 0, backlog=1024
    )
    print(server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await asyncio.sleep(lifetime)


# -- the gate's own cost ------------------------------------------------------------------------


async def serve_lean_proxy(port: int, confdir: Path, lifetime: float) -> None:
    """mitmproxy with exactly the addons Interlock runs, and no gate: the difference between it
    and `interlock run` is what the gate itself costs."""
    import gc

    from mitmproxy import options
    from mitmproxy.master import Master

    from proxy.app import mitmproxy_addons

    opts = options.Options()
    master = Master(opts)
    master.addons.add(*mitmproxy_addons())
    opts.update(listen_host="127.0.0.1", listen_port=port, connection_strategy="lazy",
                confdir=str(confdir))  # fmt: skip
    running = asyncio.create_task(master.run())
    gc.freeze()  # as `interlock run` does once started
    await asyncio.wait({running}, timeout=lifetime)
    master.shutdown()
    await running


# -- the held clients ---------------------------------------------------------------------------


async def hold_many(
    proxy_port: int, upstream_port: int, count: int, lifetime: float
) -> dict[str, object]:
    """Open `count` distinct held POSTs (distinct, so none coalesce) and wait for their answers."""
    statuses: dict[str, int] = {}
    connecting = asyncio.Semaphore(50)  # stay under the proxy's listen backlog

    async def one(i: int) -> None:
        body = json.dumps({"n": i}).encode()
        async with connecting:
            reader, writer = await asyncio.open_connection("127.0.0.1", proxy_port)
            writer.write(
                f"POST http://127.0.0.1:{upstream_port}/hold/{i} HTTP/1.1\r\n"
                f"Host: 127.0.0.1:{upstream_port}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            await writer.drain()
        try:
            status = (await reader.readline()).split(b" ")[1].decode()
        except IndexError:
            status = "closed"
        statuses[status] = statuses.get(status, 0) + 1
        writer.close()

    tasks = [asyncio.ensure_future(one(i)) for i in range(count)]
    done, pending = await asyncio.wait(tasks, timeout=lifetime)
    for task in pending:
        task.cancel()
    failed = sum(1 for t in done if t.exception() is not None)
    return {"statuses": statuses, "unanswered": len(pending), "failed": failed}


# -- subprocesses, for the test ------------------------------------------------------------------


def _child_setup() -> None:
    """Die with the parent, so an interrupted benchmark leaves no load or proxy behind."""
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def spawn(args: list[str], out: Path | int, err: Path | int) -> subprocess.Popen[bytes]:
    """Start `args` in the repository; a Path collects that stream in a file."""
    opened = [
        os.open(s, os.O_WRONLY | os.O_CREAT | os.O_TRUNC) for s in (out, err) if isinstance(s, Path)
    ]
    streams = iter(opened)
    stdout, stderr = (s if isinstance(s, int) else next(streams) for s in (out, err))
    try:
        return subprocess.Popen(
            args, cwd=REPO, stdout=stdout, stderr=stderr, preexec_fn=_child_setup
        )
    finally:
        for fd in opened:
            os.close(fd)


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def start_upstream(tmp: Path, lifetime: float) -> tuple[subprocess.Popen[bytes], int]:
    args = [sys.executable, "-m", "tests.bench.loadkit", "upstream", "--lifetime", str(lifetime)]
    process = spawn(args, subprocess.PIPE, tmp / "upstream.err")
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line:
        raise RuntimeError(f"the upstream did not start: {(tmp / 'upstream.err').read_text()}")
    return process, int(line)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_listening(port: int, process: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"exited with {process.returncode}: {log.read_text()[-2000:]}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listened on {port} within {timeout} s")


@dataclass(frozen=True)
class Wrk:
    """One wrk run: request count, seconds, latency percentiles in ms, and every error."""

    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: dict[str, int]
    cpu_ms: float = float("nan")  # the proxy's CPU time (all threads) per request

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    def __str__(self) -> str:
        return (
            f"{self.rps:7.0f} rps  p50 {self.p50_ms:6.2f} ms  p99 {self.p99_ms:6.2f} ms  "
            f"CPU {self.cpu_ms:5.2f} ms/request"
        )


WRK_SCRIPT = """wrk.method = "GET"
wrk.path = "{path}"
wrk.headers["Host"] = "127.0.0.1:{upstream}"
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("WRK %d %d %d %d %d %d %d %d %d\\n", summary.requests,
    summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect, e.read, e.write, e.status, e.timeout))
end
"""


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process, all threads."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_wrk(
    tmp: Path,
    target_port: int,
    upstream_port: int,
    *,
    seconds: int,
    connections: int,
    proxied: bool,
    pid: int | None = None,
) -> Wrk:
    """GETs to the upstream, in absolute form through the proxy at `target_port` when `proxied`;
    with `pid`, also the CPU that process spent per request (steadier than rps on a busy host)."""
    path = f"http://127.0.0.1:{upstream_port}/bench" if proxied else "/bench"
    script = tmp / f"wrk-{upstream_port}-{proxied}.lua"
    script.write_text(WRK_SCRIPT.format(path=path, upstream=upstream_port))
    args = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "5s", "-s", str(script)]
    cpu_before = cpu_seconds(pid) if pid is not None else float("nan")
    done = subprocess.run(
        [*args, f"http://127.0.0.1:{target_port}/"],
        capture_output=True, text=True, timeout=seconds + 30, check=True,
    )  # fmt: skip
    cpu = cpu_seconds(pid) - cpu_before if pid is not None else float("nan")
    line = next(x for x in done.stdout.splitlines() if x.startswith("WRK "))
    n, micros, p50, p99, *errors = (int(x) for x in line.split()[1:])
    names = ("connect", "read", "write", "status", "timeout")
    failures = dict(zip(names, errors, strict=True))
    return Wrk(n, micros / 1e6, p50 / 1000, p99 / 1000, failures, cpu * 1000 / max(n, 1))


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(prog="loadkit")
    parser.add_argument("role", choices=["upstream", "hold", "lean"])
    parser.add_argument("--lifetime", type=float, default=600.0)
    parser.add_argument("--proxy-port", type=int)
    parser.add_argument("--upstream-port", type=int)
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--result", type=Path)
    parser.add_argument("--confdir", type=Path)
    args = parser.parse_args()
    if args.role == "upstream":
        asyncio.run(serve_upstream(args.lifetime))
        return
    if args.role == "lean":
        asyncio.run(serve_lean_proxy(args.proxy_port, args.confdir, args.lifetime))
        return
    result = asyncio.run(hold_many(args.proxy_port, args.upstream_port, args.count, args.lifetime))
    args.result.write_text(json.dumps(result))


if __name__ == "__main__":
    main()
