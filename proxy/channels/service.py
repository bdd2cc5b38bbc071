"""Remote channels in the running process: the hub, the link signer and the public listener."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from policies.model import Channel
from policies.normalize import normalize_host
from proxy.apiserver import ApiServer, is_loopback
from proxy.channels.base import Decide, Notifier
from proxy.channels.hub import ChannelHub
from proxy.channels.links import LinkSigner
from proxy.events import EventBus
from proxy.holds import AuditWriter, HoldQueue
from proxy.public import create_public_app

log = logging.getLogger(__name__)

DEFAULT_PORTS = {"http": 80, "https": 443}


class PublicSettingsError(ValueError):
    """The public listener's settings would expose signed links or cannot work."""


@dataclass(frozen=True, slots=True)
class PublicSettings:
    listen: tuple[str, int] | None = None
    url: str | None = None  # how phones and Slack reach the listener (an ingress, a tunnel)
    cert: Path | None = None
    key: Path | None = None


def check_public_url(url: str) -> str:
    """The public URL without a trailing slash, or PublicSettingsError saying what is wrong.

    Links are bearer capabilities: over plain HTTP beyond this machine anyone on the path could
    use them, so a non-loopback public URL must be https (TLS here or at an ingress).
    """
    parts = urlsplit(url)
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
        raise PublicSettingsError(f"--public-url must be an http(s) URL, got {url!r}")
    if parts.query or parts.fragment or parts.path not in ("", "/"):
        raise PublicSettingsError(
            f"--public-url must be the listener's root (scheme://host[:port]), got {url!r}"
        )
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise PublicSettingsError(
            f"--public-url {url} is plain HTTP beyond this machine: signed links would cross the "
            "network in clear text; use https (TLS at your ingress, or --public-cert/--public-key)"
        )
    return f"{parts.scheme}://{parts.netloc}"


def check_public_settings(public: PublicSettings) -> None:
    """Refuse settings that cannot work or would expose links, before anything starts."""
    if public.url is not None:
        check_public_url(public.url)
        if public.listen is None:
            raise PublicSettingsError("--public-url needs --public-listen (the address it reaches)")
    if (public.cert is None) != (public.key is None):
        raise PublicSettingsError(
            "the public listener's TLS needs both --public-cert and --public-key"
        )
    if public.listen is not None and public.url is None and not is_loopback(public.listen[0]):
        raise PublicSettingsError(
            f"--public-listen {public.listen[0]} is beyond this machine: give --public-url, the "
            "https address phones and Slack use to reach it"
        )


def build_notifier(channel: Channel, *, decide: Decide, environ: Mapping[str, str]) -> Notifier:
    """The notifier for one of the policy's channels (imported lazily: Slack loads aiohttp)."""
    if channel.type == "webhook":
        from proxy.channels.webhook import WebhookNotifier

        return WebhookNotifier(channel, environ=environ)
    if channel.type == "slack":
        from proxy.channels.slack import SlackNotifier

        return SlackNotifier(channel, decide=decide, environ=environ)
    raise ValueError(f"unknown channel type {channel.type!r}")


class RemoteChannels:
    """Starts the channels a policy declares and, when asked, the public listener for links and
    Slack's interactivity endpoint. None of the control API is reachable from there."""

    def __init__(
        self,
        holds: HoldQueue,
        events: EventBus,
        audit: AuditWriter,
        *,
        data_root: Path,
        public: PublicSettings,
        environ: Mapping[str, str] = os.environ,
    ) -> None:
        check_public_settings(public)
        self.public = public
        self.public_address: tuple[str, int] | None = None
        self.public_url: str | None = check_public_url(public.url) if public.url else None
        self.links: LinkSigner | None = None
        if public.listen is not None:
            self.links = LinkSigner.load_or_create(data_root / "links.key", self.public_url or "")
        self.hub = ChannelHub(
            holds,
            events,
            audit,
            build=lambda channel: build_notifier(channel, decide=holds.decide, environ=environ),
            links=self.links,
        )
        self._holds = holds
        self._server = ApiServer()

    async def start(self, channels: Mapping[str, Channel]) -> None:
        await self.hub.configure(channels)
        await self._start_public()
        self.hub.start()  # after the public URL is known: the hub mints links with it

    async def _start_public(self) -> None:
        if self.public.listen is None or self.links is None:
            return
        from proxy.channels.slack_http import SlackInteractions

        slack = SlackInteractions(self.hub.notifiers)  # it picks the http-mode Slack ones
        app = create_public_app(holds=self._holds, links=self.links, slack=slack)
        host, port = self.public.listen
        self.public_address = await self._server.start(
            host,
            port,
            app=app,
            ssl_certfile=self.public.cert,
            ssl_keyfile=self.public.key,
            allow_plain_http=True,  # checked above: the public URL is https beyond loopback
        )
        if self.public_url is None:  # a loopback listener without --public-url
            bound_host, bound_port = self.public_address
            scheme = "https" if self.public.cert else "http"
            netloc = f"[{bound_host}]" if ":" in bound_host else bound_host
            self.public_url = f"{scheme}://{netloc}:{bound_port}"
        self.links.public_url = self.public_url

    async def reconfigure(self, channels: Mapping[str, Channel]) -> None:
        await self.hub.configure(channels)

    async def stop(self) -> None:
        await self.hub.stop()
        await self._server.stop()

    def endpoints(self) -> list[tuple[str, int]]:
        """Where the public listener can be reached: its own address and the public URL's."""
        out = [self.public_address] if self.public_address else []
        if self.public_url:
            parts = urlsplit(self.public_url)
            host = normalize_host(parts.hostname or "")
            out.append((host, parts.port or DEFAULT_PORTS[parts.scheme]))
        return out
