"""Serve the control API with uvicorn inside the proxy's own event loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Iterator
from ipaddress import ip_address
from pathlib import Path

import uvicorn
from starlette.applications import Starlette

log = logging.getLogger(__name__)

SHUTDOWN_GRACE = 3  # seconds uvicorn waits for open responses before cancelling them


class _EmbeddedServer(uvicorn.Server):
    """A uvicorn server that leaves signals to the host process and says when it listens."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.listening = asyncio.Event()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        self.listening.set()


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def bind_socket(host: str, port: int) -> socket.socket:
    """A bound TCP socket for `host:port`, or OSError naming the address."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host.strip("[]"), port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise OSError(exc.errno, f"control API: cannot resolve {host!r}: {exc}") from exc
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise OSError(
            exc.errno, f"control API: cannot listen on {host}:{port}: {exc.strerror or exc}"
        ) from exc
    return sock


class ApiServer:
    """Runs one Starlette app (given here or to `start`) on one address until `stop()`."""

    def __init__(self, app: Starlette | None = None) -> None:
        self.app = app
        self.url: str | None = None
        self._server: _EmbeddedServer | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(
        self,
        host: str,
        port: int,
        *,
        app: Starlette | None = None,
        ssl_certfile: str | Path | None = None,
        ssl_keyfile: str | Path | None = None,
        allow_plain_http: bool = False,
    ) -> tuple[str, int]:
        """Listen (port 0 picks a free port) and return the address actually bound."""
        if self._task is not None:
            raise RuntimeError("the control API server is already running")
        self.app = app or self.app
        if self.app is None:
            raise ValueError("ApiServer.start needs the app to serve")
        if (ssl_certfile is None) != (ssl_keyfile is None):
            raise ValueError("control API TLS needs both a certificate and a key file")
        tls = ssl_certfile is not None
        if not (tls or allow_plain_http or is_loopback(host)):
            raise ValueError(
                f"the control API would listen on {host!r} without TLS, so operator tokens would "
                "cross the network in clear text: give a TLS certificate and key, listen on "
                "127.0.0.1, or allow plain HTTP explicitly"
            )
        config = uvicorn.Config(
            self.app,
            lifespan="off",
            log_level="warning",
            log_config=None,  # leave the host process's logging configuration alone
            access_log=False,
            server_header=False,  # say nothing about the server to whoever connects
            ws="none",
            ssl_certfile=str(ssl_certfile) if ssl_certfile else None,
            ssl_keyfile=str(ssl_keyfile) if ssl_keyfile else None,
            timeout_graceful_shutdown=SHUTDOWN_GRACE,
        )
        config.load()  # a bad certificate or key raises here, not inside the task
        sock = bind_socket(host, port)
        server = _EmbeddedServer(config)
        task = asyncio.get_running_loop().create_task(
            server.serve(sockets=[sock]), name="interlock-control-api"
        )
        listening = asyncio.ensure_future(server.listening.wait())
        await asyncio.wait([task, listening], return_when=asyncio.FIRST_COMPLETED)
        if not server.listening.is_set():
            listening.cancel()
            sock.close()
            await task  # raises what went wrong
            raise RuntimeError("the control API server stopped while starting")
        self._server, self._task = server, task
        bound_host, bound_port = sock.getsockname()[:2]
        netloc = f"[{bound_host}]" if ":" in bound_host else bound_host
        self.url = f"{'https' if tls else 'http'}://{netloc}:{bound_port}"
        return bound_host, bound_port

    async def stop(self) -> None:
        """End event streams, finish open responses (briefly) and close the socket."""
        if self._server is None or self._task is None:
            return
        shutdown = getattr(getattr(self.app, "state", None), "shutdown", None)
        if isinstance(shutdown, asyncio.Event):
            shutdown.set()
        self._server.should_exit = True
        task, self._server, self._task = self._task, None, None
        try:
            await task
        except SystemExit:  # uvicorn exits this way when startup fails; we are stopping anyway
            log.warning("the control API server exited abnormally while stopping")
