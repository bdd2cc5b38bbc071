"""docker/compose.yaml: valid against the Compose specification, and the topology keeps the agent
inside. Each invariant check is shown to catch a broken variant, so it cannot pass by accident."""

from __future__ import annotations

import copy
import ipaddress
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import pytest
import yaml

from policies.loader import load_policy
from proxy.cli import build_parser

DOCKER = Path(__file__).resolve().parents[2] / "docker"
COMPOSE = DOCKER / "compose.yaml"
SCHEMA = DOCKER / "compose-spec.json"  # kept in the repo: CI validates offline
CA_VARIABLES = (
    "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "GIT_SSL_CAINFO", "PIP_CERT",
    "NODE_EXTRA_CA_CERTS",
)  # fmt: skip
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy")
DATA_DIR, CA_EXPORT = "/data", "/ca"  # the image's INTERLOCK_HOME and INTERLOCK_CA_EXPORT

Doc = dict[str, Any]


def load() -> Doc:
    doc: Doc = yaml.safe_load(COMPOSE.read_text())
    return doc


def schema_errors(doc: Doc) -> list[str]:
    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    validator = jsonschema.Draft7Validator(schema)
    return [
        f"{'/'.join(map(str, error.absolute_path))}: {error.message}"
        for error in validator.iter_errors(doc)
    ]


def subnet(doc: Doc, network: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    return ipaddress.ip_network(doc["networks"][network]["ipam"]["config"][0]["subnet"])


def mounts(service: Doc) -> list[tuple[str, str, bool]]:
    """(source, target, read_only) of each volume, short or long syntax."""
    found = []
    for volume in service.get("volumes", []):
        if isinstance(volume, dict):
            found.append((volume["source"], volume["target"], bool(volume.get("read_only"))))
        else:
            source, target, *mode = volume.split(":")
            found.append((source, target, "ro" in "".join(mode).split(",")))
    return found


def topology_problems(doc: Doc) -> list[str]:
    """Every way the file lets the agent around the gate or near the operator's controls."""
    problems: list[str] = []
    services, networks = doc["services"], doc["networks"]
    interlock, agent = services["interlock"], services["agent"]
    internal, egress = subnet(doc, "internal"), subnet(doc, "egress")
    if networks["internal"].get("internal") is not True:
        problems.append("the agent's network is not `internal: true`")
    if networks["egress"].get("internal"):
        problems.append("the egress network is internal: Interlock could not reach anything")
    if internal.overlaps(egress):
        problems.append("the internal and egress subnets overlap")

    if set(agent.get("networks", {})) != {"internal"} or "network_mode" in agent:
        problems.append(f"the agent must be on the internal network only: {agent.get('networks')}")
    if set(interlock["networks"]) != {"internal", "egress"}:
        problems.append("Interlock must be on the internal and egress networks")
    agent_ip = ipaddress.ip_address(agent["networks"]["internal"]["ipv4_address"])
    proxy_ip = ipaddress.ip_address(interlock["networks"]["internal"]["ipv4_address"])
    api_ip = ipaddress.ip_address(interlock["networks"]["egress"]["ipv4_address"])
    if agent_ip not in internal or proxy_ip not in internal or api_ip not in egress:
        problems.append("a fixed address lies outside its network's subnet")
    if agent.get("ports") or agent.get("privileged") or agent.get("network_mode"):
        problems.append("the agent publishes ports, is privileged or shares a network namespace")
    if {"ALL", "NET_ADMIN", "NET_RAW"} & set(agent.get("cap_add", [])):
        problems.append("the agent may change routes or forge packets (cap_add)")
    if "NET_RAW" not in agent.get("cap_drop", []) and "ALL" not in agent.get("cap_drop", []):
        problems.append("the agent keeps raw sockets (cap_drop NET_RAW)")

    run = build_parser().parse_args(["run", *interlock["command"]])  # Interlock's own parser
    if ipaddress.ip_address(run.listen[0]) != proxy_ip:
        problems.append(f"the proxy listens on {run.listen[0]}, not the internal address")
    if ipaddress.ip_address(run.api_listen[0]) != api_ip:
        problems.append(f"the API listens on {run.api_listen[0]}, not the egress address")
    allowed = [ipaddress.ip_network(cidr, strict=False) for cidr in run.api_allow]
    if not allowed or any(
        net.version != egress.version or not net.subnet_of(egress)  # type: ignore[arg-type]
        for net in allowed
    ):
        problems.append(f"--api-allow {run.api_allow} is not within the egress subnet {egress}")
    if any(net.overlaps(internal) for net in allowed if net.version == internal.version):
        problems.append("--api-allow admits the agent's network")
    for port in interlock.get("ports", []):
        if not isinstance(port, dict):
            problems.append(f"use the long port syntax so host_ip is explicit: {port!r}")
            continue
        if int(port["target"]) != run.api_listen[1]:
            problems.append(f"port {port['target']} is published: only the API may be")
        if not ipaddress.ip_address(port.get("host_ip", "0.0.0.0")).is_loopback:
            problems.append("the API is published beyond the host's loopback")
    if not interlock.get("ports"):
        problems.append("the API is not published for the operator")

    interlock_mounts, agent_mounts = mounts(interlock), mounts(agent)
    data = [source for source, target, _ in interlock_mounts if target == DATA_DIR]
    ca = [source for source, target, _ in interlock_mounts if target == CA_EXPORT]
    if not data or not ca:
        problems.append("Interlock needs its data volume on /data and the CA volume on /ca")
    if any(source in data or "docker.sock" in source for source, _, _ in agent_mounts):
        problems.append("the agent mounts Interlock's data volume (CA key, tokens, audit)")
    if not any(source in ca and ro for source, _, ro in agent_mounts):
        problems.append("the agent must get the CA volume, read-only")
    policy = [ro for _, target, ro in interlock_mounts if target == "/etc/interlock/policy.yaml"]
    if policy != [True] or "/etc/interlock/policy.yaml" not in interlock["command"]:
        problems.append("the policy must be mounted read-only and used")

    env = agent.get("environment", {})
    ca_targets = [target for source, target, _ in agent_mounts if source in ca]
    for name in PROXY_VARIABLES:
        url = urlsplit(str(env.get(name, "")))
        if (url.hostname, url.port) != ("interlock", run.listen[1]):
            problems.append(f"{name}={env.get(name)!r} does not point at interlock:{run.listen[1]}")
    for name in CA_VARIABLES:
        if not any(str(env.get(name, "")).startswith(f"{t}/") for t in ca_targets):
            problems.append(f"{name} does not point into the agent's CA mount")
    bypass = {h.strip() for h in str(env.get("NO_PROXY", "")).split(",")}
    if not bypass <= {"localhost", "127.0.0.1", "::1", ""}:
        problems.append(f"NO_PROXY lets traffic bypass the gate: {env.get('NO_PROXY')}")
    secrets = set(interlock.get("environment", {})) & set(env)
    if secrets:
        problems.append(f"the agent gets the channels' secrets: {', '.join(sorted(secrets))}")
    if agent.get("depends_on", {}).get("interlock", {}).get("condition") != "service_healthy":
        problems.append("the agent should start once Interlock is healthy")
    return problems


def test_compose_file_matches_the_compose_specification() -> None:
    assert schema_errors(load()) == []


def test_schema_validation_catches_a_broken_file() -> None:
    doc = load()
    doc["services"]["agent"]["networks"]["internal"]["ipv4_adress"] = "172.30.231.10"
    doc["networks"]["internal"]["internal"] = ["yes"]
    errors = schema_errors(doc)
    assert any("ipv4_adress" in e for e in errors) and any("internal" in e for e in errors)


def test_topology_keeps_the_agent_inside() -> None:
    assert topology_problems(load()) == []


def test_the_policy_knows_the_agent_by_its_address() -> None:
    doc = load()
    address = doc["services"]["agent"]["networks"]["internal"]["ipv4_address"]
    policy = load_policy(DOCKER / "policy.yaml")
    assert policy.agent_for_address(address) == "agent"
    assert (
        policy.agent_for_address(
            doc["services"]["interlock"]["networks"]["internal"]["ipv4_address"]
        )
        is None
    )


def _set(path: str, value: Any) -> Callable[[Doc], None]:
    def change(doc: Doc) -> None:
        *parents, last = path.split(".")
        node = doc
        for key in parents:
            node = node[key]
        node[last] = value

    return change


def _command(flag: str, value: str) -> Callable[[Doc], None]:
    def change(doc: Doc) -> None:
        command = doc["services"]["interlock"]["command"]
        command[command.index(flag) + 1] = value

    return change


BROKEN: dict[str, Callable[[Doc], None]] = {
    "agent on egress": _set("services.agent.networks.egress", None),
    "internal network routed": _set("networks.internal.internal", False),
    "agent mounts data": lambda d: d["services"]["agent"]["volumes"].append("interlock-data:/x"),
    "agent CA mount writable": _set("services.agent.volumes", ["interlock-ca:/interlock-ca"]),
    "API on all host addresses": lambda d: d["services"]["interlock"]["ports"][0].pop("host_ip"),
    "proxy port published": lambda d: d["services"]["interlock"]["ports"].append(
        {"target": 8080, "published": "8080", "host_ip": "127.0.0.1"}
    ),
    "API admits everyone": _command("--api-allow", "0.0.0.0/0"),
    "API admits the agent": _command("--api-allow", "172.30.231.0/24"),
    "API on the internal network": _command("--api-listen", "172.30.231.2:8081"),
    "proxy on the egress network": _command("--listen", "172.30.232.2:8080"),
    "agent may route": _set("services.agent.cap_add", ["NET_ADMIN"]),
    "agent bypasses the proxy": _set("services.agent.environment.NO_PROXY", "*"),
    "agent proxy elsewhere": _set("services.agent.environment.HTTPS_PROXY", "http://evil:8080"),
    "agent gets the Slack token": _set(
        "services.agent.environment.SLACK_BOT_TOKEN", "${SLACK_BOT_TOKEN:-}"
    ),
    "policy writable": lambda d: d["services"]["interlock"]["volumes"].__setitem__(
        2, "./policy.yaml:/etc/interlock/policy.yaml"
    ),
}


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_each_broken_variant_is_caught(name: str) -> None:
    doc = copy.deepcopy(load())
    BROKEN[name](doc)
    assert topology_problems(doc), f"the check missed: {name}"
