"""One process, one event loop: embedded mitmproxy, the control API and the audit store."""

from __future__ import annotations

import asyncio
import gc
import ipaddress
import json
import logging
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any, TextIO

from mitmproxy import addonmanager
from mitmproxy import options as mitm_options
from mitmproxy import version as mitm_version
from mitmproxy.addons import (
    block,
    core,
    disable_h2c,
    dns_resolver,
    next_layer,
    proxyserver,
    strip_dns_https_records,
    tlsconfig,
    upstream_auth,
)
from mitmproxy.master import Master

from addons.destination import Destination
from addons.gate import GateAddon
from addons.identity import Identity
from policies.errors import PolicyError
from policies.loader import DEFAULT_POLICY, load_policy
from policies.model import MAX_HOLD_TIMEOUT
from policies.normalize import normalize_host
from proxy.api import ApiSettings, create_app
from proxy.apiserver import ApiServer
from proxy.audit import CHECKPOINT_EVERY, CHECKPOINT_INTERVAL, AuditStore
from proxy.auditkeys import KeyFileError, SignedHead, load_or_create_signing_key
from proxy.channels.service import (
    PublicSettings,
    PublicSettingsError,
    RemoteChannels,
    check_public_settings,
)
from proxy.datadir import DataDir, RunLock, acquire_lock, ensure_ca, write_api_json
from proxy.destination import OwnEndpoints
from proxy.events import EventBus
from proxy.gate import DEFAULT_MAX_BODY, Gate, PolicyHolder
from proxy.grants import GrantStore, grant_record
from proxy.holds import HoldQueue
from proxy.lockdown import Lockdown
from proxy.records import AuditRecord, Kind
from proxy.redact import Redactor
from proxy.tokens import TokenStore

log = logging.getLogger(__name__)

MITMPROXY_MAJOR = int(mitm_version.VERSION.split(".")[0])
# Above the longest possible hold, so mitmproxy's idle timer never cuts a held request.
TCP_IDLE_TIMEOUT = int(MAX_HOLD_TIMEOUT) + 600
VERSION = "0.1.0"

# Options that would let traffic past the gate, with the reason shown when refused.
UNSAFE_OPTIONS = {
    "stream_large_bodies": "a streamed request body reaches the server before the decision",
    "ignore_hosts": "ignored hosts pass through without being decided",
    "allow_hosts": "hosts outside the list would pass through without being decided",
    "tcp_hosts": "raw TCP hosts are not decided per request",
    "udp_hosts": "raw UDP hosts are not decided",
    "connection_strategy": "eager connections reach the destination before the decision",
    "rawtcp": "raw TCP inside CONNECT is not decided per request",
    "ssl_insecure": "disabling upstream certificate verification invites interception",
    "body_size_limit": "the gate enforces the request size itself, with an audit row",
    "listen_host": "use --listen",
    "listen_port": "use --listen",
    "mode": "use --mode",
    "confdir": "the CA lives in the data directory",
    "server": "the proxy server must run",
}


def mitmproxy_addons() -> list[object]:
    """The parts of mitmproxy a gate needs: options, the proxy server and its layers, TLS, the
    open-proxy guard, the h2c guard, upstream mode's credentials and WireGuard mode's DNS.

    mitmproxy's other default addons are left out on purpose. Some would act behind the gate's
    back: saving flows writes unredacted secrets to disk, sticky cookies hand one agent's session
    to another, scripts run arbitrary code, and onboarding answers `mitm.it` before the gate sees
    the request. The rest serve an interactive debugging proxy, and each would still be called
    on every request.
    """
    return [
        core.Core(),
        block.Block(),
        strip_dns_https_records.StripDnsHttpsRecords(),
        disable_h2c.DisableH2C(),
        proxyserver.Proxyserver(),
        dns_resolver.DnsResolver(),
        next_layer.NextLayer(),
        tlsconfig.TlsConfig(),
        upstream_auth.UpstreamAuth(),
    ]


LEFT_OUT = (
    "no such option in the parts of mitmproxy Interlock runs (flow saving, scripts, replay, "
    "map/modify, sticky cookies and the like are left out: they would act behind the gate)"
)


class StartupError(Exception):
    """Interlock cannot start; the message says why and what to do."""


@dataclass
class RunSettings:
    policy: Path = DEFAULT_POLICY
    listen: tuple[str, int] = ("127.0.0.1", 8080)
    api_listen: tuple[str, int] = ("127.0.0.1", 8081)
    data_dir: Path = Path.home() / ".interlock"
    upstream_ca: Path | None = None
    mode: str = "regular"
    mitm_options: dict[str, str] = field(default_factory=dict)
    auth: str | None = None  # required | optional | None (decide from the setup)
    max_body: int = DEFAULT_MAX_BODY
    max_pending_per_agent: int = 20
    api_allow: tuple[str, ...] = ()
    api_cert: Path | None = None
    api_key: Path | None = None
    api_plain_http: bool = False
    synchronous: str = "NORMAL"
    checkpoint_every: int = CHECKPOINT_EVERY  # sign the audit chain head every N records,
    checkpoint_interval: float = CHECKPOINT_INTERVAL  # every M seconds, and at shutdown
    watch_policy: bool = True
    public_listen: tuple[str, int] | None = None  # signed-link pages and Slack interactivity
    public_url: str | None = None
    public_cert: Path | None = None
    public_key: Path | None = None
    decision_log: TextIO | None = None


def mitmproxy_option_names() -> frozenset[str]:
    """The options of the mitmproxy parts Interlock runs, without starting them."""
    opts = mitm_options.Options()
    loader = addonmanager.Loader(SimpleNamespace(options=opts))
    for addon in mitmproxy_addons():
        if (load := getattr(addon, "load", None)) is not None:
            load(loader)
    return frozenset(opts.keys())


def check_unsafe(extra: dict[str, str]) -> None:
    known = mitmproxy_option_names() if extra else frozenset()
    for name, value in extra.items():
        if name not in known:  # its value is not shown: it may be a credential (proxyauth)
            raise StartupError(f"refusing --set {name}: {LEFT_OUT}")
        if name in UNSAFE_OPTIONS:
            if name == "connection_strategy" and value == "lazy":
                continue
            if name == "rawtcp" and value.lower() in ("false", "0", "no"):
                continue
            raise StartupError(f"refusing --set {name}={value}: {UNSAFE_OPTIONS[name]}")


class Interlock:
    """The running gate. `start()` brings everything up or raises StartupError; `stop()` ends it
    in order: holds expire (agents get their denial), audit rows flush, then proxy and API stop."""

    def __init__(self, settings: RunSettings) -> None:
        self.settings = settings
        self.data = DataDir(settings.data_dir)
        self.events = EventBus()
        self.redactor = Redactor()
        self.proxy_address: tuple[str, int] | None = None
        self.api_address: tuple[str, int] | None = None
        self.first_operator: tuple[str, Path] | None = None
        self._lock: RunLock | None = None
        self._master: Master | None = None
        self._master_task: asyncio.Task[None] | None = None
        self._api = ApiServer()
        self._watch_task: asyncio.Task[None] | None = None
        self._grant_task: asyncio.Task[None] | None = None
        self._shutdown = asyncio.Event()

    # -- start --------------------------------------------------------------------------------

    async def start(self) -> None:
        s = self.settings
        check_unsafe(s.mitm_options)
        try:
            check_public_settings(
                PublicSettings(s.public_listen, s.public_url, s.public_cert, s.public_key)
            )
        except PublicSettingsError as exc:
            raise StartupError(str(exc)) from exc
        try:
            policy = load_policy(s.policy)
        except PolicyError as exc:
            raise StartupError(f"the policy {s.policy} is not valid:\n{exc}") from exc
        self.data.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            self._lock = acquire_lock(self.data)
        except Exception as exc:
            raise StartupError(str(exc)) from exc
        try:
            await self._start(policy)
        except BaseException:
            await self._abort()
            raise

    async def _start(self, policy: Any) -> None:
        s = self.settings
        self.policy = PolicyHolder(policy, str(s.policy))
        try:
            signing_key = load_or_create_signing_key(self.data.root)
            self.audit_key_id = signing_key.key_id
        except KeyFileError as exc:
            raise StartupError(str(exc)) from exc
        self.audit = await AuditStore.open(
            self.data.db,
            synchronous=s.synchronous,
            signing_key=signing_key,
            checkpoint_every=s.checkpoint_every,
            checkpoint_interval=s.checkpoint_interval,
            on_checkpoint=self._publish_checkpoint,
        )
        self.tokens = TokenStore(self.data.tokens)
        self.first_operator = self.tokens.ensure_first_operator(self.data.operator_token)
        self.holds = HoldQueue(
            self.audit, self.events, max_pending_per_agent=s.max_pending_per_agent
        )
        self.lockdown = Lockdown(self.audit, self.events)
        self.grants = GrantStore(self.data.root / "grants.json")
        try:
            self.remote = RemoteChannels(
                self.holds,
                self.events,
                self.audit,
                data_root=self.data.root,
                public=PublicSettings(s.public_listen, s.public_url, s.public_cert, s.public_key),
            )
            await self.remote.start(policy.channels)
        except (PublicSettingsError, OSError) as exc:
            raise StartupError(str(exc).replace("control API", "public listener")) from exc
        self.ca_cert = ensure_ca(self.data)
        beyond_loopback = not _is_loopback(s.listen[0])
        if s.auth is not None:
            auth_required = s.auth == "required"
        else:
            auth_required = bool(policy.agents) or beyond_loopback
        self.auth_required = auth_required
        self.identity = Identity(
            self.tokens, lambda ip: self.policy.policy.agent_for_address(ip), required=auth_required
        )
        self.gate = Gate(
            self.policy,
            self.holds,
            self.lockdown,
            self.audit,
            self.redactor,
            grants=self.grants,
            max_body=s.max_body,
            protected=self._protected,
            decision_log=s.decision_log,
            events=self.events,
        )
        app = create_app(
            holds=self.holds,
            lockdown=self.lockdown,
            events=self.events,
            audit=self.audit,
            tokens=self.tokens,
            reload_policy=self.reload_policy,
            grants=self.grants,
            links=self.remote.links,
            settings=ApiSettings(
                allow=tuple(ipaddress.ip_network(c, strict=False) for c in s.api_allow),
                version=VERSION,
                shutdown=self._shutdown,
            ),
        )
        try:
            self.api_address = await self._api.start(
                s.api_listen[0],
                s.api_listen[1],
                app=app,
                ssl_certfile=s.api_cert,
                ssl_keyfile=s.api_key,
                allow_plain_http=s.api_plain_http,
            )
        except (OSError, ValueError) as exc:  # the message names the address or the setting
            raise StartupError(str(exc)) from exc
        await self._start_proxy()
        api_url = f"{'https' if s.api_cert else 'http'}://{_hostport(*self.api_address)}"
        assert self.proxy_address is not None
        write_api_json(
            self.data, api_url, os.getpid(), proxy=f"http://{_hostport(*self.proxy_address)}"
        )
        self.api_url = api_url
        if s.watch_policy:
            self._watch_task = asyncio.create_task(
                self._watch_policy(), name="interlock: policy watch"
            )
        self._grant_task = asyncio.create_task(self._watch_grants(), name="interlock: grants")

    async def _start_proxy(self) -> None:
        s = self.settings
        opts = mitm_options.Options()
        master = Master(opts)
        master.addons.add(*mitmproxy_addons())
        own = OwnEndpoints(self._own_addresses)
        master.addons.add(Destination(own), GateAddon(self.gate, self.identity))
        values: dict[str, Any] = {
            "listen_host": s.listen[0],
            "listen_port": s.listen[1],
            "mode": [s.mode],
            "confdir": str(self.data.confdir),
            # A denied or held request must not touch the destination: no DNS, no TCP, no TLS.
            "connection_strategy": "lazy",
            # A streamed request body would reach the server before the decision.
            "stream_large_bodies": None,
            # Raw TCP inside CONNECT would escape per-request decisions.
            "rawtcp": False,
            # mitmproxy 11.0.x pins an h2 with a request-smuggling flaw (GHSA-847f-9342-265h).
            "http2": MITMPROXY_MAJOR >= 12,
        }
        if s.upstream_ca is not None:
            values["ssl_verify_upstream_trusted_ca"] = str(s.upstream_ca)
        if "tcp_timeout" in opts:
            values["tcp_timeout"] = TCP_IDLE_TIMEOUT
        else:  # mitmproxy 11.x reads the module constant when each connection handler is made
            import mitmproxy.proxy.server as mitm_server

            setattr(mitm_server, "TCP_TIMEOUT", TCP_IDLE_TIMEOUT)  # noqa: B010 (absent on 12.x)
        try:
            opts.update(**values)
            for name, value in s.mitm_options.items():
                opts.set(f"{name}={value}")
        except Exception as exc:
            raise StartupError(f"invalid mitmproxy option: {exc}") from exc
        self._master = master
        self._master_task = asyncio.create_task(master.run(), name="interlock: mitmproxy")
        proxyserver = master.addons.get("proxyserver")
        while not proxyserver.is_running:
            if self._master_task.done():
                break
            await asyncio.sleep(0.01)
        servers = list(proxyserver.servers)
        failed = [srv for srv in servers if not srv.is_running]
        if self._master_task.done() or not servers or failed:
            reason = "; ".join(str(srv.last_exception) for srv in failed) or "it did not start"
            raise StartupError(f"cannot listen on {_hostport(*s.listen)}: {reason}")
        addrs = proxyserver.listen_addrs()
        self.proxy_address = (str(addrs[0][0]), int(addrs[0][1]))

    # -- running ------------------------------------------------------------------------------

    def _publish_checkpoint(self, head: SignedHead) -> None:
        """Publish each signed audit checkpoint on the JSON log stream, to be kept elsewhere.

        Through the gate's decision log once it exists, so lines stay in the order they happened.
        """
        gate = getattr(self, "gate", None)
        if gate is not None:
            gate.decision_log.write(head.to_json())
            return
        stream = self.settings.decision_log or sys.stdout
        try:
            stream.write(json.dumps(head.to_json()) + "\n")
            stream.flush()
        except (OSError, ValueError):
            pass

    def _own_addresses(self) -> list[tuple[str, int]]:
        remote = getattr(self, "remote", None)
        public = [remote.public_address] if remote and remote.public_address else []
        return [a for a in (self.proxy_address, self.api_address, *public) if a is not None]

    def _protected(self, host: str, port: int) -> bool:
        """The proxy's own listen, API and public addresses (and public URL) are never proxied to:
        an agent must not reach the control API or open its own approval link."""
        remote = getattr(self, "remote", None)
        if remote is not None and (host, port) in remote.endpoints():
            return True
        own = self._own_addresses()
        if not any(port == p for _, p in own):
            return False
        local = {"localhost", "127.0.0.1", "::1", "0.0.0.0", "::"}
        local.update(normalize_host(h) for h, _ in own)
        return host in local or host.endswith(".localhost") or _is_loopback(host)

    async def reload_policy(self) -> dict[str, Any]:
        """Swap in the policy file's current content, or keep the old one and say why not."""
        try:
            policy = load_policy(self.settings.policy)
        except PolicyError as exc:
            errors = [str(p) for p in exc.problems]
            log.error("interlock: policy reload refused, the old policy stays:\n%s", exc)
            self.events.publish("policy.rejected", {"errors": errors})
            return {"ok": False, "errors": errors, "digest": self.policy.policy.digest}
        except OSError as exc:
            return {"ok": False, "errors": [str(exc)], "digest": self.policy.policy.digest}
        if policy.digest != self.policy.policy.digest:
            self.policy.policy = policy
            await self.remote.reconfigure(policy.channels)
            self.audit.append_nowait(
                AuditRecord(
                    kind=Kind.POLICY,
                    request_id=f"policy_{policy.digest[:12]}",
                    policy_digest=policy.digest,
                    reason="policy reloaded",
                )
            )
        info = {
            "ok": True,
            "errors": [],
            "rules": len(policy.rules),
            "digest": policy.digest,
            "warnings": list(policy.warnings),
        }
        self.events.publish("policy.reloaded", info)
        return info

    async def _watch_policy(self) -> None:
        """Reload when a policy file changes (polling: no extra dependency, 1 s latency)."""

        def stamp() -> tuple[tuple[str, float, int], ...]:
            out = []
            for name in self.policy.policy.files:
                path = Path(name) if not name.startswith("interlock:") else None
                if path is not None and path.exists():
                    st = path.stat()
                    out.append((name, st.st_mtime, st.st_size))
            return tuple(out)

        last = stamp()
        while True:
            await asyncio.sleep(1.0)
            try:
                current = stamp() if Path(self.settings.policy).exists() else last
                if current != last:
                    await self.reload_policy()
                    # What was read, so a write landing during the reload is seen next time;
                    # files a new include names are watched from now on.
                    before = {entry[0]: entry for entry in current}
                    last = tuple(before.get(entry[0], entry) for entry in stamp())
            except Exception as exc:  # the watcher must never die silently
                log.error("interlock: policy watch error: %s", exc)

    async def _watch_grants(self) -> None:
        """Announce and record grants whose time ran out."""
        checked = time.time()
        while True:
            await asyncio.sleep(1.0)
            try:
                for grant in self.grants.expired_since(checked):
                    await self.audit.append(grant_record(grant, "expired", "system", "system"))
                    self.events.publish("grant.expired", grant.to_json())
                checked = time.time()
            except Exception as exc:
                log.error("interlock: grant expiry error: %s", exc)

    def describe(self) -> list[str]:
        """What `interlock run` prints at start: where everything is."""
        assert self.proxy_address is not None and self.api_address is not None
        policy = self.policy.policy
        lines = [
            f"interlock {VERSION} (mitmproxy {mitm_version.VERSION})",
            f"  proxy:    http://{_hostport(*self.proxy_address)}  (mode {self.settings.mode}, "
            f"auth {'required' if self.auth_required else 'optional'})",
            f"  API:      {self.api_url}",
            f"  CA cert:  {self.ca_cert}  (give agents this file, never {self.data.ca_key})",
            f"  tokens:   {self.data.tokens}",
            f"  audit:    {self.data.db}  (checkpoints signed by {self.audit_key_id})",
            f"  policy:   {self.settings.policy} ({len(policy.rules)} rules, default "
            f"{policy.default.value})",
        ]
        if self.remote.public_url is not None:
            url = self.remote.public_url
            lines.append(f"  public:   {url}  (signed links, Slack interactivity)")
        if policy.channels:
            names = ", ".join(f"{c.name} ({c.type})" for c in policy.channels.values())
            lines.append(f"  channels: {names}")
        if self.first_operator is not None:
            name, path = self.first_operator
            lines.append(f"  operator token for {name!r} created: {path}")
        else:
            lines.append(f"  operator token: {self.data.operator_token}")
        if MITMPROXY_MAJOR < 12:
            lines.append(
                "  note: mitmproxy 11.x pins a vulnerable h2; HTTP/2 to clients is off. "
                "Prefer Python 3.12+ with mitmproxy 12."
            )
        return lines

    # -- stop ---------------------------------------------------------------------------------

    async def stop(self) -> None:
        """Shut down in order; every pending hold ends `expired` and its agent gets the denial."""
        self._shutdown.set()
        for task in (self._watch_task, self._grant_task):
            if task is not None:
                task.cancel()
        try:
            await self.holds.expire_all("the proxy is shutting down")
            await asyncio.sleep(0.05)  # let the released hooks answer their agents
            remote = getattr(self, "remote", None)
            if remote is not None:  # channels show the expiry; their rows land before the flush
                await remote.stop()
            await self.audit.flush()  # AuditError if rows were lost, raised after the cleanup
        finally:
            await self._abort()  # the proxy, API and run lock go even when the audit failed

    async def _abort(self) -> None:
        if self._master is not None and self._master_task is not None:
            proxyserver = self._master.addons.get("proxyserver")
            try:  # close the listening sockets; mitmproxy's shutdown alone leaves them open
                await asyncio.wait_for(proxyserver.servers.update([]), 5)
            except Exception as exc:
                log.warning("interlock: could not stop the proxy servers: %r", exc)
            self._master.shutdown()
            try:
                await asyncio.wait_for(self._master_task, 10)
            except (TimeoutError, Exception) as exc:
                log.warning("interlock: mitmproxy did not stop cleanly: %r", exc)
            self._master = None
        await self._api.stop()
        remote = getattr(self, "remote", None)
        if remote is not None:
            await remote.stop()
        audit = getattr(self, "audit", None)
        if audit is not None:
            await audit.close()  # its last signed checkpoint goes to the decision log...
        gate = getattr(self, "gate", None)
        if gate is not None:
            gate.decision_log.flush()  # ...which is written out in full before we exit
        if self._lock is not None:
            self._lock.release()
            self._lock = None


def _is_loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return host == "localhost"
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def serve(settings: RunSettings, out: TextIO = sys.stderr) -> int:
    """`interlock run`: start, say where everything is, run until SIGINT/SIGTERM; SIGHUP reloads."""
    import signal

    # Interlock's own warnings and errors (a refused policy reload) reach the operator.
    handler = logging.StreamHandler(out)
    handler.setLevel(logging.WARNING)
    handler.setFormatter(logging.Formatter("%(message)s"))
    for name in ("proxy", "addons"):
        logging.getLogger(name).addHandler(handler)
    interlock = Interlock(settings)
    try:
        await interlock.start()
    except StartupError as exc:
        print(f"interlock: {exc}", file=out)
        return 1
    for line in interlock.describe():
        print(line, file=out)
    out.flush()
    # Everything alive now (modules, policy, addons) lives as long as the process. Out of the
    # collector's sight, a full collection no longer stalls every request for ~50 ms.
    gc.freeze()
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGINT, stop.set)
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGHUP, lambda: asyncio.ensure_future(interlock.reload_policy()))
    await stop.wait()
    print("interlock: shutting down", file=out)
    await interlock.stop()
    return 0
