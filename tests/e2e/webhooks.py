"""A real webhook receiver for the channel tests: it checks every signature with its own code."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from proxy.apiserver import ApiServer

HOOK_SECRET = "whsec-e2e-0123456789abcdef"


@dataclass
class Hook:
    """A real webhook receiver that checks each signature with its own HMAC code."""

    url: str = ""
    events: list[dict[str, Any]] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def receive(self, request: Request) -> Response:
        body = await request.body()
        stamp = request.headers["X-Interlock-Timestamp"]
        mac = hmac.new(HOOK_SECRET.encode(), f"{stamp}.".encode() + body, hashlib.sha256)
        if request.headers["X-Interlock-Signature"] != f"v1={mac.hexdigest()}":
            return Response(status_code=401)
        self.events.append(json.loads(body))
        self.arrived.set()
        return Response(status_code=204)

    async def wait_for(self, event: str, hold_id: str, timeout: float = 10) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            while True:
                for seen in self.events:
                    if seen["type"] == event and seen["hold"]["id"] == hold_id:
                        return seen
                self.arrived.clear()
                await self.arrived.wait()


@pytest.fixture
async def hook() -> AsyncIterator[Hook]:
    hook = Hook()
    server = ApiServer(Starlette(routes=[Route("/hook", hook.receive, methods=["POST"])]))
    await server.start("127.0.0.1", 0)
    hook.url = f"{server.url}/hook"
    yield hook
    await server.stop()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def channel_status(
    api: httpx.AsyncClient, hold_id: str, channel: str, state: str, timeout: float = 10
) -> dict[str, Any]:
    """The hold as the API shows it, once `channel` has reached `state` on it."""
    async with asyncio.timeout(timeout):
        while True:
            shown: dict[str, Any] = (await api.get(f"/v1/holds/{hold_id}")).json()
            if shown["channels"].get(channel, {}).get("state") == state:
                return shown
            await asyncio.sleep(0.05)
