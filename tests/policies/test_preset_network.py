"""Decision table for the shipped `network` preset, loaded alone under `default: allow`."""

from __future__ import annotations

import pytest

from policies.engine import Policy
from policies.request import build_request
from tests.policies.presetkit import load_preset

PRESET = "network"


@pytest.fixture(scope="module")
def policy(tmp_path_factory: pytest.TempPathFactory) -> Policy:
    return load_preset(tmp_path_factory, PRESET)


def rule(name: str) -> str:
    return f"{PRESET}/{name}"


CASES = [
    # Cloud metadata endpoints, in every spelling.
    pytest.param("http://169.254.169.254/latest/meta-data/", "deny", rule("cloud-metadata"),
                 id="aws-imds-denied"),
    pytest.param("http://[fd00:ec2::254]/latest/api/token", "deny", rule("cloud-metadata"),
                 id="aws-imds-ipv6-denied"),
    pytest.param("http://169.254.170.2/v2/credentials/abc", "deny", rule("cloud-metadata"),
                 id="ecs-task-credentials-denied"),
    pytest.param("http://100.100.100.200/latest/meta-data/", "deny", rule("cloud-metadata"),
                 id="alibaba-metadata-denied"),
    pytest.param("http://metadata.google.internal/computeMetadata/v1/", "deny",
                 rule("cloud-metadata"), id="gcp-metadata-name-denied"),
    pytest.param("http://Metadata.Google.Internal./computeMetadata/v1/", "deny",
                 rule("cloud-metadata"), id="gcp-metadata-name-case-and-dot-denied"),
    pytest.param("http://metadata/computeMetadata/v1/", "deny", rule("cloud-metadata"),
                 id="gcp-metadata-short-name-denied"),
    pytest.param("http://168.63.129.16/machine?comp=goalstate", "deny", rule("cloud-metadata"),
                 id="azure-wireserver-denied"),
    pytest.param("http://0251.0376.0251.0376/latest/", "deny", rule("cloud-metadata"),
                 id="imds-octal-spelling-denied"),
    pytest.param("http://[::ffff:a9fe:a9fe]/latest/", "deny", rule("cloud-metadata"),
                 id="imds-ipv4-mapped-denied"),
    pytest.param("http://2852039166/latest/", "deny", rule("cloud-metadata"),
                 id="imds-decimal-spelling-denied"),
    # Loopback.
    pytest.param("http://127.0.0.1:8080/", "deny", rule("loopback"), id="loopback-v4-denied"),
    pytest.param("http://2130706433/", "deny", rule("loopback"), id="loopback-decimal-denied"),
    pytest.param("http://0x7f.1/", "deny", rule("loopback"), id="loopback-hex-short-denied"),
    pytest.param("http://127.1/", "deny", rule("loopback"), id="loopback-short-form-denied"),
    pytest.param("http://[::1]:9000/", "deny", rule("loopback"), id="loopback-v6-denied"),
    pytest.param("http://[::]/", "deny", rule("loopback"), id="unspecified-v6-denied"),
    pytest.param("http://0.0.0.0:5432/", "deny", rule("loopback"), id="zero-address-denied"),
    pytest.param("http://localhost:3000/api", "deny", rule("loopback"), id="localhost-denied"),
    pytest.param("http://app.localhost/", "deny", rule("loopback"), id="sub-localhost-denied"),
    # Private and special ranges.
    pytest.param("http://10.96.0.1/api/v1/namespaces", "deny", rule("private-networks"),
                 id="cluster-ip-denied"),
    pytest.param("http://172.31.255.1/", "deny", rule("private-networks"),
                 id="rfc1918-172-denied"),
    pytest.param("http://192.168.1.1/admin", "deny", rule("private-networks"),
                 id="home-router-denied"),
    pytest.param("http://100.64.0.7/", "deny", rule("private-networks"), id="cgnat-denied"),
    pytest.param("http://169.254.1.1/", "deny", rule("private-networks"),
                 id="link-local-denied"),
    pytest.param("http://[fd12:3456::1]/", "deny", rule("private-networks"),
                 id="unique-local-v6-denied"),
    pytest.param("http://[fe80::1]/", "deny", rule("private-networks"),
                 id="link-local-v6-denied"),
    pytest.param("http://[::ffff:10.0.0.5]/", "deny", rule("private-networks"),
                 id="mapped-private-denied"),
    pytest.param("http://[64:ff9b::a00:1]/", "deny", rule("private-networks"),
                 id="nat64-private-denied"),
    pytest.param("http://239.255.255.250:1900/", "deny", rule("special-purpose-addresses"),
                 id="multicast-denied"),
    pytest.param("http://198.18.0.10/", "deny", rule("special-purpose-addresses"),
                 id="benchmark-range-denied"),
    # Internal names.
    pytest.param("http://host.docker.internal:8000/", "deny", rule("internal-names"),
                 id="docker-host-denied"),
    pytest.param("https://kubernetes.default.svc/api/v1/secrets", "deny",
                 rule("internal-names"), id="in-cluster-kubernetes-denied"),
    pytest.param("http://redis.prod.svc.cluster.local:6379/", "deny", rule("internal-names"),
                 id="cluster-local-service-denied"),
    pytest.param("http://printer.local/", "deny", rule("internal-names"), id="mdns-denied"),
    pytest.param("http://127.0.0.1.nip.io/", "deny", rule("address-embedding-dns"),
                 id="nip-io-denied"),
    # Public destinations are not this preset's business.
    pytest.param("https://api.github.com/repos/o/r", "allow", None, id="github-flows"),
    pytest.param("https://8.8.8.8/", "allow", None, id="public-ip-flows"),
    pytest.param("https://[2606:4700:4700::1111]/", "allow", None, id="public-ipv6-flows"),
    pytest.param("https://172.32.0.1/", "allow", None, id="just-outside-172-16-12-flows"),
    pytest.param("https://pypi.org/simple/requests/", "allow", None, id="pypi-flows"),
    pytest.param("https://metadata.example.com/", "allow", None, id="lookalike-name-flows"),
    pytest.param("https://internal.example.com/", "allow", None, id="internal-label-flows"),
]  # fmt: skip


@pytest.mark.parametrize(("url", "action", "rule_name"), CASES)
def test_decide(policy: Policy, url: str, action: str, rule_name: str | None) -> None:
    decision = policy.decide(build_request("GET", url))
    assert (decision.action, decision.rule) == (action, rule_name)


HOST_CASES = [
    pytest.param("169.254.169.254", 80, "deny", rule("cloud-metadata"), id="imds"),
    pytest.param("2130706433", 80, "deny", rule("loopback"), id="loopback-decimal"),
    pytest.param("0x7f.1", 80, "deny", rule("loopback"), id="loopback-hex-short"),
    pytest.param("0251.0376.0251.0376", 80, "deny", rule("cloud-metadata"), id="imds-octal"),
    pytest.param("::ffff:a9fe:a9fe", 80, "deny", rule("cloud-metadata"), id="imds-mapped"),
    pytest.param("[::ffff:a9fe:a9fe]", 443, "deny", rule("cloud-metadata"),
                 id="imds-mapped-bracketed"),
    pytest.param("127.1", 443, "deny", rule("loopback"), id="loopback-short-form"),
    pytest.param("localhost", 443, "deny", rule("loopback"), id="localhost"),
    pytest.param("metadata.google.internal", 80, "deny", rule("cloud-metadata"),
                 id="gcp-metadata-name"),
    pytest.param("10.1.2.3", 5432, "deny", rule("private-networks"), id="private-v4"),
    pytest.param("fd00::1", 443, "deny", rule("private-networks"), id="private-v6"),
    pytest.param("db.corp", 443, "deny", rule("internal-names"), id="corp-name"),
    pytest.param("api.anthropic.com", 443, "allow", None, id="public-name"),
    pytest.param("1.1.1.1", 443, "allow", None, id="public-ip"),
]  # fmt: skip


@pytest.mark.parametrize(("host", "port", "action", "rule_name"), HOST_CASES)
def test_decide_host_refuses_at_connect(
    policy: Policy, host: str, port: int, action: str, rule_name: str | None
) -> None:
    decision = policy.decide_host(host, port)
    assert (decision.action, decision.rule) == (action, rule_name)


def test_metadata_is_critical(policy: Policy) -> None:
    decision = policy.decide(build_request("GET", "http://169.254.169.254/"))
    assert decision.severity == "critical"


def test_every_rule_is_host_level(policy: Policy) -> None:
    """No rule may need the request: these destinations must be refused before TLS."""
    for preset_rule in policy.rules:
        for block in preset_rule.blocks:
            assert {c.key for c in block} <= {"host", "ip", "port"}, preset_rule.name


def test_loads_without_warnings(policy: Policy) -> None:
    assert policy.warnings == ()
