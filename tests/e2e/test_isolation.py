"""Proof that an agent cannot go around Interlock, in Linux network namespaces.

The compose topology rebuilt with `ip netns` and veth pairs (see `netns_lab.py`), with a real
`interlock run` started through docker/entrypoint.sh in the proxy's namespace and real clients in
the agent's. Every negative check has a positive control, so none can pass by accident.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e import netns
from tests.e2e.netns_clients import (
    Curl,
    CurlResult,
    OperatorClient,
    curl,
    dns_probe,
    http_probe,
    tcp_probe,
    unique,
)
from tests.e2e.netns_lab import (
    AGENT,
    API_PORT,
    DECOY,
    DIRECT_PORT,
    HEALTHCHECK,
    OPERATOR_SUBNET,
    PROXY_INTERNAL,
    PROXY_OPERATOR,
    PROXY_PORT,
    UPSTREAM,
    UPSTREAM6,
    UPSTREAM_NAMES,
    InterlockProcess,
    Services,
    Topology,
    add_agent,
    add_default_routes,
    build_topology,
    remove_default_routes,
    start_services,
)
from tests.e2e.upstream import make_tls

HOLD_RULE = """  - name: hold-deploy
    action: hold
    reason: Deploys need a person.
    timeout: 5m
    respond_pending_after: 50s
    match: {method: POST, path: /deploy/**}
"""
REGULAR_POLICY = "version: 1\ndefault: allow\nrules:\n" + HOLD_RULE
TRANSPARENT_POLICY = f"""version: 1
default: deny
default_reason: Only upstream.test may be reached.
agents:
  sandbox: {{addresses: ["{AGENT}/32"]}}
rules:
{HOLD_RULE}  - name: upstream
    action: allow
    reason: The test upstream.
    agents: [sandbox]
    match: {{host: upstream.test}}
"""
# The redirect happens in the proxy's namespace, where conntrack keeps the original destination
# that mitmproxy reads back (SO_ORIGINAL_DST). Everything else from the agent is refused.
TRANSPARENT_RULES = f"""
table inet interlock {{
    chain prerouting {{
        type nat hook prerouting priority dstnat; policy accept;
        iifname "int0" meta nfproto ipv4 tcp dport {{ 80, 443 }} redirect to :{PROXY_PORT}
    }}
    chain input {{
        type filter hook input priority filter; policy accept;
        iifname "int0" ct state established,related accept
        iifname "int0" tcp dport {PROXY_PORT} ct status dnat accept
        iifname "int0" meta l4proto tcp reject with tcp reset
        iifname "int0" reject with icmpx type port-unreachable
    }}
    chain forward {{
        type filter hook forward priority filter; policy drop;
        iifname "int0" reject with icmpx type admin-prohibited
    }}
}}
"""
API_ARGS = [
    "--api-listen", f"{PROXY_OPERATOR}:{API_PORT}",
    "--api-allow", OPERATOR_SUBNET,
    "--api-plain-http",
]  # fmt: skip


def require(reason: str | None) -> None:
    """Skip with the reason where namespaces cannot be made; in CI that is a failure instead."""
    if reason is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"isolation tests cannot run in CI: {reason}")
    pytest.skip(reason)


@dataclass
class Running:
    topology: Topology
    services: Services
    interlock: InterlockProcess
    operator: OperatorClient
    agent_env: dict[str, str]

    def agent_curl(self, *args: str) -> CurlResult:
        return curl(self.topology.agent, *args, env=self.agent_env)

    def agent_curl_start(self, *args: str) -> Curl:
        return Curl(self.topology.agent, list(args), env=self.agent_env)


def _lab(tmp: Path, *, transparent: bool) -> Iterator[Running]:
    require(netns.unavailable())
    if transparent:
        require(netns.nft_unavailable())
    with contextlib.ExitStack() as cleanup:  # every step undone, in reverse, even on failure
        lab = netns.Lab()
        cleanup.callback(lab.close)
        topology = build_topology(lab, agent_default_route=transparent, forwarding=transparent)
        if transparent:
            (tmp / "rules.nft").write_text(TRANSPARENT_RULES)
            loaded = topology.proxy.run("nft", "-f", str(tmp / "rules.nft"))
            assert loaded.returncode == 0, loaded.stderr
        ca, cert, key = make_tls(tmp, UPSTREAM_NAMES)
        services = start_services(topology.upstream, cert, key)
        cleanup.callback(services.stop)
        policy = tmp / "policy.yaml"
        policy.write_text(TRANSPARENT_POLICY if transparent else REGULAR_POLICY)
        home = tmp / "data"
        args = ["--policy", str(policy), "--listen", f"{PROXY_INTERNAL}:{PROXY_PORT}", *API_ARGS]
        args += ["--upstream-ca", str(ca)]
        agent_env: dict[str, str] = {}
        if transparent:
            args += ["--mode", "transparent"]  # agents are known by address (the policy)
        else:
            token = add_agent(home, "sandbox")
            proxy = f"http://sandbox:{token}@{PROXY_INTERNAL}:{PROXY_PORT}"
            agent_env = {
                name: proxy for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy")
            }
        interlock = InterlockProcess(topology.proxy, home, tmp / "ca", args, tmp / "interlock.log")
        cleanup.callback(interlock.stop)
        interlock.start()
        agent_env["CURL_CA_BUNDLE"] = str(interlock.ca_cert)  # the agent trusts the Interlock CA
        operator = OperatorClient(
            topology.operator, f"http://{PROXY_OPERATOR}:{API_PORT}", interlock.operator_token
        )
        yield Running(topology, services, interlock, operator, agent_env)


@pytest.fixture(scope="module")
def sidecar(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """Explicit proxy, as in docker/compose.yaml: the agent has no route beyond its link."""
    yield from _lab(tmp_path_factory.mktemp("sidecar"), transparent=False)


@pytest.fixture(scope="module")
def transparent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """Transparent mode: the agent routes through the proxy's namespace, which redirects."""
    yield from _lab(tmp_path_factory.mktemp("transparent"), transparent=True)


def approve_when_held(lab: Running, call: Curl, path: str) -> CurlResult:
    """Wait for the hold, check the request is still waiting and unsent, approve it, return."""
    try:
        hold = lab.operator.wait_for_hold(path)
        time.sleep(0.3)
        assert call.running(), "the held request was answered before any decision"
        assert path not in lab.services.paths(), "the held request reached the upstream"
        answer = lab.operator.request(
            "POST", f"/v1/holds/{hold['id']}/approve", json={"reason": "isolation test"}
        )
        assert answer.status_code == 200, answer.text
        return call.result()
    finally:
        if call.running():
            call.proc.kill()


# -- explicit proxy (the compose topology) ------------------------------------------------------


def test_allowed_requests_pass_through_the_proxy(sidecar: Running) -> None:
    path = f"/hello/{unique('https')}"
    result = sidecar.agent_curl(f"https://upstream.test{path}")
    assert result.status == 200, (result, sidecar.interlock.output())
    assert result.headers["x-interlock-decision"] == "allowed"
    assert path in sidecar.services.https.paths()
    path = f"/hello/{unique('http')}"
    result = sidecar.agent_curl(f"http://upstream.test{path}")
    assert result.status == 200, result
    assert path in sidecar.services.http.paths()


def test_held_request_waits_for_the_operator(sidecar: Running) -> None:
    path = f"/deploy/{unique('web')}"
    call = sidecar.agent_curl_start("-X", "POST", "--data", "{}", f"https://upstream.test{path}")
    result = approve_when_held(sidecar, call, path)
    assert result.status == 200, result
    assert result.headers["x-interlock-decision"] == "approved"
    assert path in sidecar.services.https.paths()


def test_agent_cannot_connect_to_the_upstream_directly(sidecar: Running) -> None:
    agent, proxy = sidecar.topology.agent, sidecar.topology.proxy
    for address in (UPSTREAM, UPSTREAM6):
        for port in (80, DIRECT_PORT):
            control = f"/direct/{unique('proxy')}"
            assert http_probe(proxy, address, port, control) == "HTTP 200", (address, port)
            path = f"/direct/{unique('agent')}"
            outcome = http_probe(agent, address, port, path)
            assert not outcome.startswith("HTTP"), (address, port, outcome)
            assert control in sidecar.services.paths() and path not in sidecar.services.paths()
        assert tcp_probe(proxy, address, 443) == "connected"
        assert tcp_probe(agent, address, 443) != "connected"


def test_agent_dns_and_udp_reach_nothing(sidecar: Running) -> None:
    agent, proxy = sidecar.topology.agent, sidecar.topology.proxy
    for server in (UPSTREAM, UPSTREAM6):
        control, name = unique("proxy") + ".test", unique("agent") + ".test"
        assert dns_probe(proxy, server, control) == "answered"
        assert dns_probe(agent, server, name) != "answered"
        assert control in sidecar.services.dns.names()
        assert name not in sidecar.services.dns.names()
    assert dns_probe(agent, PROXY_INTERNAL, "any.test") == "ECONNREFUSED"  # nothing answers DNS


def test_a_route_added_by_the_agent_leads_nowhere(sidecar: Running) -> None:
    """Even an agent that could change its own routes gets nowhere: the proxy does not forward,
    and the API refuses the agent's network even with a valid operator token."""
    agent, proxy = sidecar.topology.agent, sidecar.topology.proxy
    add_default_routes(agent)
    try:
        for address in (UPSTREAM, UPSTREAM6):
            control, path = f"/route/{unique('proxy')}", f"/route/{unique('agent')}"
            assert http_probe(proxy, address, DIRECT_PORT, control) == "HTTP 200"
            assert not http_probe(agent, address, DIRECT_PORT, path).startswith("HTTP")
            assert path not in sidecar.services.paths()
            name = unique("route") + ".test"
            assert dns_probe(agent, address, name) != "answered"
            assert name not in sidecar.services.dns.names()
        assert sidecar.operator.request("GET", "/v1/holds").status_code == 200
        as_agent = OperatorClient(agent, sidecar.operator.url, sidecar.operator.token)
        refused = as_agent.request("GET", "/v1/holds")
        assert refused.status_code == 403 and "allow list" in refused.text, refused.text
    finally:
        remove_default_routes(agent)


def test_agent_cannot_reach_the_control_api_directly(sidecar: Running) -> None:
    assert sidecar.operator.request("GET", "/v1/holds").status_code == 200
    agent = sidecar.topology.agent
    assert tcp_probe(agent, PROXY_OPERATOR, API_PORT) == "ENETUNREACH"
    assert tcp_probe(agent, PROXY_INTERNAL, API_PORT) == "ECONNREFUSED"  # not bound on its link


@pytest.mark.parametrize(
    "target",
    [
        f"{PROXY_OPERATOR}:{API_PORT}",
        f"interlock-api.test:{API_PORT}",  # a name the proxy resolves to its own address
        f"127.0.0.1:{API_PORT}",
        f"localhost:{API_PORT}",
        f"{PROXY_INTERNAL}:{PROXY_PORT}",
    ],
)
def test_agent_cannot_reach_the_control_api_through_the_proxy(
    sidecar: Running, target: str
) -> None:
    assert sidecar.operator.request("GET", "/v1/holds").status_code == 200
    bearer = f"Authorization: Bearer {sidecar.operator.token}"
    result = sidecar.agent_curl("-H", bearer, f"http://{target}/v1/holds")
    assert result.status == 403, (result, sidecar.interlock.output())
    assert result.headers["x-interlock-decision"] == "denied"
    assert "own" in result.json()["reason"]


def test_health_check_passes_where_interlock_runs(sidecar: Running) -> None:
    env = {"INTERLOCK_HOME": str(sidecar.interlock.home), "PATH": os.environ["PATH"]}
    done = sidecar.topology.proxy.run(sys.executable, str(HEALTHCHECK), env=env)
    assert done.returncode == 0, done.stderr
    down = sidecar.topology.agent.run(sys.executable, str(HEALTHCHECK), env=env)
    assert down.returncode == 1  # control: from the agent's namespace the API is out of reach


# -- transparent mode ----------------------------------------------------------------------------


def resolve(name: str, port: int, address: str) -> list[str]:
    return ["--resolve", f"{name}:{port}:{address}"]


def test_transparent_gates_plain_http_and_https(transparent: Running) -> None:
    routes = transparent.topology.agent.run("ip", "route", "show", "default")
    assert f"via {PROXY_INTERNAL}" in routes.stdout  # no proxy variables: routing does it
    for scheme, port in (("http", 80), ("https", 443)):
        path = f"/t/{unique(scheme)}"
        ok = transparent.agent_curl(
            *resolve("upstream.test", port, UPSTREAM), f"{scheme}://upstream.test{path}"
        )
        assert ok.status == 200, (ok, transparent.interlock.output())
        assert ok.headers["x-interlock-decision"] == "allowed"
        assert path in transparent.services.paths()
        path = f"/t/{unique('decoy')}"
        denied = transparent.agent_curl(
            *resolve("decoy.test", port, DECOY), f"{scheme}://decoy.test{path}"
        )
        assert denied.status == 403, denied
        assert denied.json()["reason"] == "Only upstream.test may be reached."
        assert path not in transparent.services.paths()


def test_transparent_hold_waits_for_the_operator(transparent: Running) -> None:
    path = f"/deploy/{unique('web')}"
    call = transparent.agent_curl_start(
        *resolve("upstream.test", 443, UPSTREAM), "-X", "POST", "--data", "{}",
        f"https://upstream.test{path}",
    )  # fmt: skip
    result = approve_when_held(transparent, call, path)
    assert result.status == 200, result
    assert result.headers["x-interlock-decision"] == "approved"


@pytest.mark.parametrize(
    ("scheme", "port", "extra"),
    [
        ("https", 443, []),  # the SNI and Host name upstream.test, sent to the decoy's address
        ("http", 80, []),  # the Host header names upstream.test, sent to the decoy's address
        ("https", 443, ["-H", "Host: decoy.test"]),  # Host differs from the SNI
    ],
)
def test_transparent_refuses_a_name_that_is_not_the_destination(
    transparent: Running, scheme: str, port: int, extra: list[str]
) -> None:
    address = UPSTREAM if extra else DECOY
    path = f"/t/{unique('fronted')}"
    refused = transparent.agent_curl(
        *resolve("upstream.test", port, address), *extra, f"{scheme}://upstream.test{path}"
    )
    assert refused.status == 403, (refused, transparent.interlock.output())
    assert refused.headers["x-interlock-decision"] == "denied"
    assert path not in transparent.services.paths()
    control = f"/t/{unique('straight')}"
    ok = transparent.agent_curl(
        *resolve("upstream.test", port, UPSTREAM), f"{scheme}://upstream.test{control}"
    )
    assert ok.status == 200 and control in transparent.services.paths(), ok


def test_transparent_drops_dns_udp_ipv6_and_other_ports(transparent: Running) -> None:
    agent, proxy = transparent.topology.agent, transparent.topology.proxy
    control, name = unique("proxy") + ".test", unique("agent") + ".test"
    assert dns_probe(proxy, UPSTREAM, control) == "answered"
    assert dns_probe(agent, UPSTREAM, name) != "answered"
    assert dns_probe(agent, PROXY_INTERNAL, name) == "ECONNREFUSED"  # DNS for the agent: refused
    assert (
        control in transparent.services.dns.names() and name not in transparent.services.dns.names()
    )
    for address, port in ((UPSTREAM6, 80), (UPSTREAM6, DIRECT_PORT), (UPSTREAM, DIRECT_PORT)):
        control, path = f"/drop/{unique('proxy')}", f"/drop/{unique('agent')}"
        assert http_probe(proxy, address, port, control) == "HTTP 200", (address, port)
        outcome = http_probe(agent, address, port, path)
        assert not outcome.startswith("HTTP"), (address, port, outcome)
        assert path not in transparent.services.paths()
    # The proxy port itself only takes redirected connections.
    assert tcp_probe(agent, PROXY_INTERNAL, PROXY_PORT) == "ECONNREFUSED"


def test_transparent_agent_cannot_reach_the_control_api(transparent: Running) -> None:
    assert transparent.operator.request("GET", "/v1/holds").status_code == 200
    assert tcp_probe(transparent.topology.agent, PROXY_OPERATOR, API_PORT) == "ECONNREFUSED"
