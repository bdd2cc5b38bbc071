"""The shipped default policy over a day of a coding agent: ordinary work flows, danger waits."""

from __future__ import annotations

from pathlib import Path

import pytest

from policies.engine import Policy
from policies.loader import load_policy
from tests.policies.presetkit import Row, case, check_decision

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


EVERYDAY_WORK = [
    # Installing dependencies.
    case("GET", "https://pypi.org/simple/httpx/", "allow", "packages/python-package-downloads",
         id="pip-index"),
    case("GET", "https://files.pythonhosted.org/packages/ab/cd/httpx-0.28.1.whl", "allow",
         "packages/python-package-downloads", id="pip-wheel"),
    case("GET", "https://registry.npmjs.org/react", "allow", "packages/npm-package-downloads",
         id="npm-install"),
    case("POST", "https://registry.npmjs.org/-/npm/v1/security/advisories/bulk", "allow",
         "packages/npm-audit", headers=[JSON], body=b"{}", id="npm-audit"),
    case("GET", "https://index.crates.io/se/rd/serde", "allow", "packages/rust-crate-downloads",
         id="cargo-index"),
    case("GET", "https://proxy.golang.org/golang.org/x/net/@v/v0.30.0.zip", "allow",
         "packages/go-module-downloads", id="go-mod-download"),
    case("GET", "https://registry-1.docker.io/v2/library/python/manifests/3.12", "allow",
         "packages/container-image-pulls", id="docker-pull"),
    # Model calls.
    case("POST", "https://api.anthropic.com/v1/messages?beta=true", "allow",
         "llm/anthropic-inference", headers=[JSON], body=b'{"model":"claude"}',
         id="claude-messages"),
    case("POST", "https://api.openai.com/v1/responses", "allow", "llm/openai-inference",
         headers=[JSON], body=b"{}", id="openai-responses"),
    case("POST", "https://chatgpt.com/backend-api/codex/responses", "allow",
         "llm/chatgpt-codex-inference", headers=[JSON], body=b"{}", id="codex-chatgpt-responses"),
    case("POST",
         "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-pro:generateContent",
         "allow", "llm/gemini-inference", headers=[JSON], body=b"{}", id="gemini-generate"),
    case("POST",
         "https://bedrock-runtime.us-east-1.amazonaws.com/model/anthropic.claude-v2/converse",
         "allow", "llm/bedrock-inference", headers=[JSON], body=b"{}", id="bedrock-converse"),
    # Git and GitHub.
    case("GET", REPO + "/info/refs?service=git-upload-pack", "allow", "git/fetch-discovery",
         id="git-clone-discovery"),
    case("POST", REPO + "/git-upload-pack", "allow", "git/fetch", headers=[UPLOAD_PACK],
         body=b"0000", id="git-fetch"),
    case("GET", GH + "/issues/12", "allow", "github/read-api", id="github-read-issue"),
    case("GET", GH + "/commits/abc123/check-runs", "allow", "github/read-api",
         id="github-ci-status"),
    case("POST", GH + "/issues", "allow", "github/issues-and-comments", headers=[JSON],
         body=b'{"title":"Flaky test"}', id="github-create-issue"),
    case("POST", GH + "/issues/12/comments", "allow", "github/issues-and-comments", headers=[JSON],
         body=b'{"body":"Fixed in #13"}', id="github-comment"),
    case("POST", GH + "/pulls", "allow", "github/pull-requests-and-reviews", headers=[JSON],
         body=b'{"title":"Fix","head":"fix","base":"main"}', id="github-create-pr"),
    case("GET", "https://raw.githubusercontent.com/acme/app/main/README.md", "allow",
         "github/web-downloads", id="github-raw-file"),
    # Cloud reads and sign-in.
    case("POST", "https://ec2.us-east-1.amazonaws.com/", "allow", "cloud/aws-api-read",
         headers=[FORM], body=b"Action=DescribeInstances", id="aws-describe"),
    case("POST", "https://sts.amazonaws.com/", "allow", "identity/aws-sts-session-credentials",
         headers=[FORM], body=b"Action=AssumeRole&RoleArn=r", id="aws-assume-role"),
    case("GET", "https://data.s3.us-east-1.amazonaws.com/a.csv", "allow", "cloud/aws-s3-read",
         id="aws-s3-get-object"),
    case("GET", "https://compute.googleapis.com/compute/v1/projects/p/zones/z/instances", "allow",
         "cloud/gcp-control-plane-read", id="gcp-list-instances"),
    # Everything else is left to the default.
    case("GET", "https://docs.python.org/3/library/asyncio.html", "allow", None, id="read-docs"),
]  # fmt: skip

DANGEROUS_CALLS = [
    # Repository changes.
    case("POST", REPO + "/git-receive-pack", "hold", "git/push", headers=[RECEIVE_PACK],
         body=b"0000", id="git-push"),
    case("GET", REPO + "/info/refs?service=git-receive-pack", "hold", "git/push-discovery",
         id="git-push-discovery"),
    case("PUT", GH + "/pulls/7/merge", "hold", "github/merge-pull-request", headers=[JSON],
         body=b"{}", id="github-merge-pr"),
    case("PUT", "https://gitlab.com/api/v4/projects/1/merge_requests/2/merge", "hold",
         "gitlab/merge-merge-request", headers=[JSON], body=b"{}", id="gitlab-merge-mr"),
    # Money and deploys.
    case("POST", "https://api.stripe.com/v1/charges", "hold", "billing/stripe-charges",
         headers=[FORM], body=b"amount=5000&currency=usd&source=tok_visa", id="stripe-charge"),
    case("POST", "https://api.vercel.com/v13/deployments", "hold",
         "deploy/vercel-production-deployment", headers=[JSON],
         body=b'{"name":"app","target":"production"}', id="vercel-production-deploy"),
    case("DELETE", "https://console.neon.tech/api/v2/projects/p", "hold",
         "databases/neon-project-delete", id="neon-project-delete"),
    case("DELETE",
         "https://abc.gr7.us-east-1.eks.amazonaws.com/apis/apps/v1/namespaces/prod/deployments/web",
         "hold", "kubernetes/delete-resources", id="kubectl-delete-on-eks"),
    # Publishing.
    case("PUT", "https://registry.npmjs.org/@acme%2fapp", "hold", "packages/npm-publish",
         headers=[JSON], body=b"{}", id="npm-publish"),
    case("POST", "https://upload.pypi.org/legacy/", "hold", "packages/pypi-upload", body=b"--b",
         id="pypi-upload"),
    # Identity and secrets, decided before the cloud preset's read allows.
    case("POST", "https://iam.amazonaws.com/", "hold", "identity/aws-iam-change", headers=[FORM],
         body=b"Action=CreateUser&UserName=bot", id="aws-iam-create-user"),
    case("POST", "https://secretsmanager.us-east-1.amazonaws.com/", "hold",
         "identity/aws-secrets-manager-read-value",
         headers=[("X-Amz-Target", "secretsmanager.GetSecretValue")], body=b"{}",
         id="aws-get-secret-value"),
    case("POST", "https://cloudresourcemanager.googleapis.com/v3/projects/p:setIamPolicy", "hold",
         "identity/gcp-set-iam-policy", headers=[JSON], body=b"{}", id="gcp-set-iam-policy"),
    case("POST", "https://api.anthropic.com/v1/organizations/invites", "hold",
         "llm/anthropic-admin-change", headers=[JSON], body=b"{}", id="anthropic-admin-key"),
    # Cloud control planes.
    case("POST", "https://ec2.us-east-1.amazonaws.com/", "hold", "cloud/aws-api-destroy",
         headers=[FORM], body=b"Action=TerminateInstances&InstanceId.1=i-1", id="aws-terminate"),
    case("PUT",
         "https://management.azure.com/subscriptions/s/resourceGroups/rg/providers/"
         "Microsoft.Compute/virtualMachines/vm?api-version=2024-07-01", "hold",
         "cloud/azure-arm-write", headers=[JSON], body=b"{}", id="azure-create-vm"),
    # Internal networks.
    case("GET", "http://169.254.169.254/latest/meta-data/iam/security-credentials/", "deny",
         "network/cloud-metadata", id="metadata-endpoint"),
    case("GET", "http://2852039166/latest/", "deny", "network/cloud-metadata",
         id="metadata-decimal"),
    case("GET", "http://localhost:8080/admin", "deny", "network/loopback", id="localhost"),
    case("GET", "https://kubernetes.default.svc/api/v1/secrets", "deny", "network/internal-names",
         id="in-cluster-kubernetes"),
    case("GET", "http://10.0.0.12:9200/_cat/indices", "deny", "network/private-networks",
         id="private-network"),
]  # fmt: skip


@pytest.mark.parametrize("row", EVERYDAY_WORK + DANGEROUS_CALLS)
def test_day_of_a_coding_agent(policy: Policy, row: Row) -> None:
    check_decision(policy, row)


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
