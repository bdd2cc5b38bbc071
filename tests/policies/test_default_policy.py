"""The shipped default policy over a day of a coding agent: ordinary work flows, danger waits."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from policies.engine import Policy
from policies.loader import load_policy
from policies.request import build_request

DEFAULT_POLICY = Path(__file__).resolve().parents[2] / "policies" / "default.yaml"
PRESETS = [
    "network", "identity", "llm", "packages", "git", "github", "gitlab", "kubernetes",
    "billing", "deploy", "databases", "cloud",
]  # fmt: skip
FORM = ("Content-Type", "application/x-www-form-urlencoded")
JSON = ("Content-Type", "application/json")
UPLOAD_PACK = ("Content-Type", "application/x-git-upload-pack-request")
RECEIVE_PACK = ("Content-Type", "application/x-git-receive-pack-request")
REPO = "https://github.com/acme/app.git"
GH = "https://api.github.com/repos/acme/app"


@pytest.fixture(scope="module")
def policy() -> Policy:
    return load_policy(DEFAULT_POLICY)


def case(
    case_id: str,
    method: str,
    url: str,
    action: str,
    rule_name: str | None,
    headers: Sequence[tuple[str, str]] = (),
    body: bytes = b"",
) -> Any:
    return pytest.param(method, url, tuple(headers), body, action, rule_name, id=case_id)


EVERYDAY_WORK = [
    # Installing dependencies.
    case("pip-index", "GET", "https://pypi.org/simple/httpx/", "allow",
         "packages/python-package-downloads"),
    case("pip-wheel", "GET", "https://files.pythonhosted.org/packages/ab/cd/httpx-0.28.1.whl",
         "allow", "packages/python-package-downloads"),
    case("npm-install", "GET", "https://registry.npmjs.org/react", "allow",
         "packages/npm-package-downloads"),
    case("npm-audit", "POST", "https://registry.npmjs.org/-/npm/v1/security/advisories/bulk",
         "allow", "packages/npm-audit", [JSON], b"{}"),
    case("cargo-index", "GET", "https://index.crates.io/se/rd/serde", "allow",
         "packages/rust-crate-downloads"),
    case("go-mod-download", "GET", "https://proxy.golang.org/golang.org/x/net/@v/v0.30.0.zip",
         "allow", "packages/go-module-downloads"),
    case("docker-pull", "GET", "https://registry-1.docker.io/v2/library/python/manifests/3.12",
         "allow", "packages/container-image-pulls"),
    # Model calls.
    case("claude-messages", "POST", "https://api.anthropic.com/v1/messages?beta=true", "allow",
         "llm/anthropic-inference", [JSON], b'{"model":"claude"}'),
    case("openai-responses", "POST", "https://api.openai.com/v1/responses", "allow",
         "llm/openai-inference", [JSON], b"{}"),
    case("codex-chatgpt-responses", "POST", "https://chatgpt.com/backend-api/codex/responses",
         "allow", "llm/chatgpt-codex-inference", [JSON], b"{}"),
    case("gemini-generate", "POST",
         "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-pro:generateContent",
         "allow", "llm/gemini-inference", [JSON], b"{}"),
    case("bedrock-converse", "POST",
         "https://bedrock-runtime.us-east-1.amazonaws.com/model/anthropic.claude-v2/converse",
         "allow", "llm/bedrock-inference", [JSON], b"{}"),
    # Git and GitHub.
    case("git-clone-discovery", "GET", REPO + "/info/refs?service=git-upload-pack", "allow",
         "git/fetch-discovery"),
    case("git-fetch", "POST", REPO + "/git-upload-pack", "allow", "git/fetch", [UPLOAD_PACK],
         b"0000"),
    case("github-read-issue", "GET", GH + "/issues/12", "allow", "github/read-api"),
    case("github-ci-status", "GET", GH + "/commits/abc123/check-runs", "allow", "github/read-api"),
    case("github-create-issue", "POST", GH + "/issues", "allow", "github/issues-and-comments",
         [JSON], b'{"title":"Flaky test"}'),
    case("github-comment", "POST", GH + "/issues/12/comments", "allow",
         "github/issues-and-comments", [JSON], b'{"body":"Fixed in #13"}'),
    case("github-create-pr", "POST", GH + "/pulls", "allow", "github/pull-requests-and-reviews",
         [JSON], b'{"title":"Fix","head":"fix","base":"main"}'),
    case("github-raw-file", "GET", "https://raw.githubusercontent.com/acme/app/main/README.md",
         "allow", "github/web-downloads"),
    # Cloud reads and sign-in.
    case("aws-describe", "POST", "https://ec2.us-east-1.amazonaws.com/", "allow",
         "cloud/aws-api-read", [FORM], b"Action=DescribeInstances"),
    case("aws-assume-role", "POST", "https://sts.amazonaws.com/", "allow",
         "identity/aws-sts-session-credentials", [FORM], b"Action=AssumeRole&RoleArn=r"),
    case("aws-s3-get-object", "GET", "https://data.s3.us-east-1.amazonaws.com/a.csv", "allow",
         "cloud/aws-s3-read"),
    case("gcp-list-instances", "GET",
         "https://compute.googleapis.com/compute/v1/projects/p/zones/z/instances", "allow",
         "cloud/gcp-control-plane-read"),
    # Everything else is left to the default.
    case("read-docs", "GET", "https://docs.python.org/3/library/asyncio.html", "allow", None),
]  # fmt: skip

DANGEROUS_CALLS = [
    # Repository changes.
    case("git-push", "POST", REPO + "/git-receive-pack", "hold", "git/push", [RECEIVE_PACK],
         b"0000"),
    case("git-push-discovery", "GET", REPO + "/info/refs?service=git-receive-pack", "hold",
         "git/push-discovery"),
    case("github-merge-pr", "PUT", GH + "/pulls/7/merge", "hold", "github/merge-pull-request",
         [JSON], b"{}"),
    case("gitlab-merge-mr", "PUT", "https://gitlab.com/api/v4/projects/1/merge_requests/2/merge",
         "hold", "gitlab/merge-merge-request", [JSON], b"{}"),
    # Money and deploys.
    case("stripe-charge", "POST", "https://api.stripe.com/v1/charges", "hold",
         "billing/stripe-charges", [FORM], b"amount=5000&currency=usd&source=tok_visa"),
    case("vercel-production-deploy", "POST", "https://api.vercel.com/v13/deployments", "hold",
         "deploy/vercel-production-deployment", [JSON], b'{"name":"app","target":"production"}'),
    case("neon-project-delete", "DELETE", "https://console.neon.tech/api/v2/projects/p", "hold",
         "databases/neon-project-delete"),
    case("kubectl-delete-on-eks", "DELETE",
         "https://abc.gr7.us-east-1.eks.amazonaws.com/apis/apps/v1/namespaces/prod/deployments/web",
         "hold", "kubernetes/delete-resources"),
    # Publishing.
    case("npm-publish", "PUT", "https://registry.npmjs.org/@acme%2fapp", "hold",
         "packages/npm-publish", [JSON], b"{}"),
    case("pypi-upload", "POST", "https://upload.pypi.org/legacy/", "hold", "packages/pypi-upload",
         [], b"--b"),
    # Identity and secrets, decided before the cloud preset's read allows.
    case("aws-iam-create-user", "POST", "https://iam.amazonaws.com/", "hold",
         "identity/aws-iam-change", [FORM], b"Action=CreateUser&UserName=bot"),
    case("aws-get-secret-value", "POST", "https://secretsmanager.us-east-1.amazonaws.com/", "hold",
         "identity/aws-secrets-manager-read-value",
         [("X-Amz-Target", "secretsmanager.GetSecretValue")], b"{}"),
    case("gcp-set-iam-policy", "POST",
         "https://cloudresourcemanager.googleapis.com/v3/projects/p:setIamPolicy", "hold",
         "identity/gcp-set-iam-policy", [JSON], b"{}"),
    case("anthropic-admin-key", "POST", "https://api.anthropic.com/v1/organizations/invites",
         "hold", "llm/anthropic-admin-change", [JSON], b"{}"),
    # Cloud control planes.
    case("aws-terminate", "POST", "https://ec2.us-east-1.amazonaws.com/", "hold",
         "cloud/aws-api-destroy", [FORM], b"Action=TerminateInstances&InstanceId.1=i-1"),
    case("azure-create-vm", "PUT",
         "https://management.azure.com/subscriptions/s/resourceGroups/rg/providers/"
         "Microsoft.Compute/virtualMachines/vm?api-version=2024-07-01", "hold",
         "cloud/azure-arm-write", [JSON], b"{}"),
    # Internal networks.
    case("metadata-endpoint", "GET",
         "http://169.254.169.254/latest/meta-data/iam/security-credentials/", "deny",
         "network/cloud-metadata"),
    case("metadata-decimal", "GET", "http://2852039166/latest/", "deny", "network/cloud-metadata"),
    case("localhost", "GET", "http://localhost:8080/admin", "deny", "network/loopback"),
    case("in-cluster-kubernetes", "GET", "https://kubernetes.default.svc/api/v1/secrets", "deny",
         "network/internal-names"),
    case("private-network", "GET", "http://10.0.0.12:9200/_cat/indices", "deny",
         "network/private-networks"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("method", "url", "headers", "body", "action", "rule_name"), EVERYDAY_WORK + DANGEROUS_CALLS
)
def test_day_of_a_coding_agent(
    policy: Policy,
    method: str,
    url: str,
    headers: tuple[tuple[str, str], ...],
    body: bytes,
    action: str,
    rule_name: str | None,
) -> None:
    decision = policy.decide(build_request(method, url, headers, body))
    assert (decision.action, decision.rule) == (action, rule_name)


@pytest.mark.parametrize(
    ("host", "port", "rule_name"),
    [
        pytest.param("169.254.169.254", 80, "network/cloud-metadata", id="metadata"),
        pytest.param("127.0.0.1", 8080, "network/loopback", id="loopback"),
        pytest.param("192.168.0.10", 443, "network/private-networks", id="private"),
    ],
)
def test_internal_destinations_refused_at_connect(
    policy: Policy, host: str, port: int, rule_name: str
) -> None:
    decision = policy.decide_host(host, port)
    assert (decision.action, decision.rule) == ("deny", rule_name)


def test_public_hosts_are_decided_per_request(policy: Policy) -> None:
    assert policy.decide_host("api.github.com", 443).action == "needs_request"


def test_defaults_and_includes(policy: Policy) -> None:
    assert policy.default == "allow"
    assert list(policy.files[1:]) == [f"interlock:{name}" for name in PRESETS]


def test_loads_without_warnings(policy: Policy) -> None:
    assert policy.warnings == ()


def test_every_rule_has_a_reason(policy: Policy) -> None:
    assert all(rule.reason.strip() for rule in policy.rules)
