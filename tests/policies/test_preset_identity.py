"""Decision table for the shipped `identity` preset, loaded alone under `default: allow`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from policies.engine import Policy
from policies.request import build_request
from tests.policies.presetkit import load_preset

PRESET = "identity"
FORM = ("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
JSON = ("Content-Type", "application/json")
IAM = "https://iam.amazonaws.com/"
STS = "https://sts.us-east-1.amazonaws.com/"
SECRETS = "https://secretsmanager.us-east-1.amazonaws.com/"
SSM = "https://ssm.us-east-1.amazonaws.com/"
KMS = "https://kms.us-east-1.amazonaws.com/"
GCP_IAM = "https://iam.googleapis.com/v1/projects/p/serviceAccounts"
GCP_SECRETS = "https://secretmanager.googleapis.com/v1/projects/p/secrets"
ARM = "https://management.azure.com/subscriptions/s/resourceGroups/rg/providers"
KEY_VAULT = "https://team-kv.vault.azure.net"
GRAPH = "https://graph.microsoft.com/v1.0"
VAULT = "https://vault.example.com:8200/v1"
CONNECT = "http://op-connect.example.com:8080/v1/vaults/v1a2/items"
OKTA = "https://acme.okta.com/api/v1"
AUTH0 = "https://acme.eu.auth0.com"


@pytest.fixture(scope="module")
def policy(tmp_path_factory: pytest.TempPathFactory) -> Policy:
    return load_preset(tmp_path_factory, PRESET)


def case(
    case_id: str,
    method: str,
    url: str,
    action: str,
    rule_name: str | None,
    headers: Sequence[tuple[str, str]] = (),
    body: bytes = b"",
) -> Any:
    rule_name = f"{PRESET}/{rule_name}" if rule_name else None
    return pytest.param(method, url, tuple(headers), body, action, rule_name, id=case_id)


def target(operation: str) -> list[tuple[str, str]]:
    return [("Content-Type", "application/x-amz-json-1.1"), ("X-Amz-Target", operation)]


CASES = [
    # AWS IAM and STS.
    case("aws-iam-create-user-held", "POST", IAM, "hold", "aws-iam-change", [FORM],
         b"Action=CreateUser&UserName=bot&Version=2010-05-08"),
    case("aws-iam-attach-policy-held", "POST", IAM, "hold", "aws-iam-change", [FORM],
         b"Action=AttachRolePolicy&RoleName=r&PolicyArn=arn:aws:iam::aws:policy/Admin"),
    case("aws-iam-create-key-in-query-held", "GET", IAM + "?Action=CreateAccessKey&UserName=u",
         "hold", "aws-iam-change"),
    case("aws-iam-list-users-not-held", "POST", IAM, "allow", None, [FORM],
         b"Action=ListUsers&Version=2010-05-08"),
    case("aws-sts-assume-role-flows", "POST", STS, "allow", "aws-sts-session-credentials", [FORM],
         b"Action=AssumeRole&RoleArn=arn:aws:iam::1:role/dev&RoleSessionName=s"),
    case("aws-sts-web-identity-flows", "POST", STS, "allow", "aws-sts-session-credentials", [FORM],
         b"Action=AssumeRoleWithWebIdentity&WebIdentityToken=t"),
    case("aws-sts-caller-identity-flows", "GET",
         "https://sts.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15", "allow",
         "aws-sts-session-credentials"),
    case("aws-sts-federation-token-held", "POST", STS, "hold", "aws-sts-privileged-credentials",
         [FORM], b"Action=GetFederationToken&Name=x"),
    case("aws-sts-mixed-actions-held", "POST", STS + "?Action=AssumeRole", "hold",
         "aws-sts-privileged-credentials", [FORM], b"Action=AssumeRoot"),
    case("aws-console-sign-in-token-held", "GET",
         "https://signin.aws.amazon.com/federation?Action=getSigninToken&Session=x", "hold",
         "aws-console-sign-in-token"),
    # AWS secrets.
    case("aws-get-secret-value-held", "POST", SECRETS, "hold", "aws-secrets-manager-read-value",
         target("secretsmanager.GetSecretValue"), b'{"SecretId":"prod/db"}'),
    case("aws-batch-get-secret-value-held", "POST", SECRETS, "hold",
         "aws-secrets-manager-read-value", target("secretsmanager.BatchGetSecretValue"), b"{}"),
    case("aws-list-secrets-not-held", "POST", SECRETS, "allow", None,
         target("secretsmanager.ListSecrets"), b"{}"),
    case("aws-put-secret-value-held", "POST", SECRETS, "hold", "aws-secrets-manager-change",
         target("secretsmanager.PutSecretValue"), b"{}"),
    case("aws-ssm-decrypt-parameter-held", "POST", SSM, "hold", "aws-ssm-decrypt-parameter",
         target("AmazonSSM.GetParameter"), b'{"Name":"/prod/db","WithDecryption":true}'),
    case("aws-ssm-plain-parameter-not-held", "POST", SSM, "allow", None,
         target("AmazonSSM.GetParameter"), b'{"Name":"/prod/region","WithDecryption":false}'),
    case("aws-kms-schedule-deletion-held", "POST", KMS, "hold", "aws-kms-key-admin",
         target("TrentService.ScheduleKeyDeletion"), b'{"KeyId":"k"}'),
    case("aws-kms-decrypt-held", "POST", KMS, "hold", "aws-kms-decrypt",
         target("TrentService.Decrypt"), b"{}"),
    case("aws-kms-encrypt-not-held", "POST", KMS, "allow", None, target("TrentService.Encrypt"),
         b"{}"),
    # Google Cloud.
    case("gcp-project-set-iam-policy-held", "POST",
         "https://cloudresourcemanager.googleapis.com/v3/projects/p:setIamPolicy", "hold",
         "gcp-set-iam-policy", [JSON], b"{}"),
    case("gcp-run-service-set-iam-policy-held", "POST",
         "https://run.googleapis.com/v2/projects/p/locations/l/services/s:setIamPolicy", "hold",
         "gcp-set-iam-policy", [JSON], b"{}"),
    case("gcp-bucket-iam-put-held", "PUT", "https://storage.googleapis.com/storage/v1/b/b/iam",
         "hold", "gcp-set-iam-policy", [JSON], b"{}"),
    case("gcp-service-account-key-held", "POST", GCP_IAM + "/sa@p.iam.gserviceaccount.com/keys",
         "hold", "gcp-service-account-key-create", [JSON], b"{}"),
    case("gcp-create-service-account-held", "POST", GCP_IAM, "hold", "gcp-iam-change", [JSON],
         b'{"accountId":"bot"}'),
    case("gcp-list-service-accounts-not-held", "GET", GCP_IAM, "allow", None),
    case("gcp-query-grantable-roles-flows", "POST",
         "https://iam.googleapis.com/v1/roles:queryGrantableRoles", "allow", "gcp-iam-read-queries",
         [JSON], b"{}"),
    case("gcp-secret-access-held", "GET", GCP_SECRETS + "/db/versions/latest:access", "hold",
         "gcp-secret-access"),
    case("gcp-regional-secret-access-held", "GET",
         "https://secretmanager.europe-west1.rep.googleapis.com/v1/projects/p/locations/"
         "europe-west1/secrets/db/versions/3:access", "hold", "gcp-secret-access"),
    case("gcp-list-secrets-not-held", "GET", GCP_SECRETS, "allow", None),
    case("gcp-add-secret-version-held", "POST", GCP_SECRETS + "/db:addVersion", "hold",
         "gcp-secret-manager-change", [JSON], b"{}"),
    case("gcp-destroy-secret-version-held", "POST", GCP_SECRETS + "/db/versions/2:destroy", "hold",
         "gcp-secret-destroy", [JSON], b"{}"),
    case("gcp-impersonation-token-not-held", "POST",
         "https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/"
         "sa@p.iam.gserviceaccount.com:generateAccessToken", "allow", None, [JSON], b"{}"),
    # Azure.
    case("azure-role-assignment-held", "PUT",
         ARM + "/Microsoft.Authorization/roleAssignments/1?api-version=2022-04-01", "hold",
         "azure-authorization-change", [JSON], b"{}"),
    case("azure-delete-lock-held", "DELETE",
         ARM + "/Microsoft.Authorization/locks/keep?api-version=2016-09-01", "hold",
         "azure-authorization-change"),
    case("azure-storage-list-keys-held", "POST",
         ARM + "/Microsoft.Storage/storageAccounts/sa/listKeys?api-version=2023-01-01", "hold",
         "azure-list-keys"),
    case("azure-aks-admin-credential-held", "POST",
         ARM + "/Microsoft.ContainerService/managedClusters/c/listClusterAdminCredential"
         "?api-version=2024-05-01", "hold", "azure-list-keys"),
    case("azure-vm-restart-not-held", "POST",
         ARM + "/Microsoft.Compute/virtualMachines/vm/restart?api-version=2024-07-01", "allow",
         None),
    case("azure-key-vault-secret-read-held", "GET",
         KEY_VAULT + "/secrets/db-password?api-version=7.5", "hold", "azure-key-vault-secret-read"),
    case("azure-key-vault-secret-version-read-held", "GET",
         KEY_VAULT + "/secrets/db-password/0123abcd?api-version=7.5", "hold",
         "azure-key-vault-secret-read"),
    case("azure-key-vault-list-secrets-not-held", "GET", KEY_VAULT + "/secrets?api-version=7.5",
         "allow", None),
    case("azure-key-vault-set-secret-held", "PUT",
         KEY_VAULT + "/secrets/db-password?api-version=7.5", "hold", "azure-key-vault-change",
         [JSON], b'{"value":"x"}'),
    case("azure-key-vault-decrypt-held", "POST", KEY_VAULT + "/keys/k/1/decrypt?api-version=7.5",
         "hold", "azure-key-vault-change", [JSON], b"{}"),
    case("azure-key-vault-purge-held", "DELETE",
         KEY_VAULT + "/deletedsecrets/db-password?api-version=7.5", "hold",
         "azure-key-vault-purge"),
    case("entra-add-app-password-held", "POST", GRAPH + "/applications/abc/addPassword", "hold",
         "entra-directory-change", [JSON], b"{}"),
    case("entra-create-user-held", "POST", GRAPH + "/users", "hold", "entra-directory-change",
         [JSON], b"{}"),
    case("entra-read-users-not-held", "GET", GRAPH + "/users?$top=5", "allow", None),
    case("graph-send-mail-not-held", "POST", GRAPH + "/users/u/sendMail", "allow", None, [JSON],
         b"{}"),
    case("entra-change-in-batch-held", "POST", GRAPH + "/$batch", "hold",
         "entra-directory-change-in-batch", [JSON],
         b'{"requests":[{"id":"1","method":"GET","url":"/me"},'
         b'{"id":"2","method":"POST","url":"/groups/g/members/$ref","body":{}}]}'),
    case("graph-read-only-batch-not-held", "POST", GRAPH + "/$batch", "allow", None, [JSON],
         b'{"requests":[{"id":"1","method":"GET","url":"/me/messages"}]}'),
    # HashiCorp Vault.
    case("vault-approle-login-not-held", "POST", VAULT + "/auth/approle/login", "allow", None,
         [JSON], b'{"role_id":"r","secret_id":"s"}'),
    case("vault-userpass-login-not-held", "POST", VAULT + "/auth/userpass/login/alice", "allow",
         None, [JSON], b"{}"),
    case("vault-token-renew-self-not-held", "POST", VAULT + "/auth/token/renew-self", "allow",
         None),
    case("vault-token-create-held", "POST", VAULT + "/auth/token/create", "hold",
         "vault-auth-change", [JSON], b'{"policies":["root"]}'),
    case("vault-approle-secret-id-held", "POST", VAULT + "/auth/approle/role/ci/secret-id", "hold",
         "vault-auth-change"),
    case("vault-write-policy-held", "PUT", VAULT + "/sys/policies/acl/admin", "hold",
         "vault-sys-change", [JSON], b'{"policy":"path \\"*\\" {}"}'),
    case("vault-disable-audit-held", "DELETE", VAULT + "/sys/audit/file", "hold",
         "vault-sys-change"),
    case("vault-namespaced-mount-held", "POST", VAULT + "/team-a/sys/mounts/kv2", "hold",
         "vault-sys-change", [JSON], b"{}"),
    case("vault-traversal-to-sys-held", "POST", VAULT + "/auth/userpass/login/../../../sys/seal",
         "hold", "vault-sys-change"),
    case("vault-capabilities-self-not-held", "POST", VAULT + "/sys/capabilities-self", "allow",
         None, [JSON], b'{"paths":["secret/data/x"]}'),
    case("vault-sys-raw-read-held", "GET", VAULT + "/sys/raw/logical/abc", "hold", "vault-sys-raw"),
    case("vault-kv2-read-held", "GET", VAULT + "/secret/data/prod/db", "hold", "vault-kv-read"),
    case("vault-kv-metadata-read-not-held", "GET", VAULT + "/secret/metadata/prod/db", "allow",
         None),
    case("vault-kv2-write-held", "POST", VAULT + "/secret/data/prod/db", "hold", "vault-kv-write",
         [JSON], b'{"data":{}}'),
    case("vault-kv2-delete-all-versions-held", "DELETE", VAULT + "/secret/metadata/prod/db", "hold",
         "vault-kv-destroy"),
    case("vault-behind-https-with-token-header-held", "POST",
         "https://vault.example.com/v1/sys/mounts/kv2", "hold", "vault-sys-change",
         [("X-Vault-Token", "hvs.x")], b"{}"),
    case("vault-behind-https-with-bearer-held", "GET",
         "https://vault.example.com/v1/secret/data/prod/db", "hold", "vault-kv-read",
         [("Authorization", "Bearer hvs.CAESIabc")]),
    case("hcp-vault-kv-read-held", "GET",
         "https://vault-cluster-public-vault-1a2b.z1.hashicorp.cloud/v1/secret/data/db", "hold",
         "vault-kv-read"),
    case("vault-like-path-without-vault-signal-not-held", "POST",
         "https://api.example.com/v1/auth/token", "allow", None, [JSON], b"{}"),
    case("stripe-identity-is-not-vault", "POST",
         "https://api.stripe.com/v1/identity/verification_sessions", "allow", None,
         [("Content-Type", "application/x-www-form-urlencoded")], b"type=document"),
    # 1Password Connect.
    case("onepassword-item-read-held", "GET", CONNECT + "/it3m", "hold",
         "onepassword-connect-item-read"),
    case("onepassword-list-items-not-held", "GET", CONNECT, "allow", None),
    case("onepassword-item-update-held", "PATCH", CONNECT + "/it3m", "hold",
         "onepassword-connect-change", [JSON], b"[]"),
    # Okta and Auth0.
    case("okta-authn-not-held", "POST", OKTA + "/authn", "allow", None, [JSON],
         b'{"username":"a","password":"b"}'),
    case("okta-create-user-held", "POST", OKTA + "/users?activate=true", "hold",
         "okta-admin-change", [JSON], b"{}"),
    case("okta-delete-app-held", "DELETE", OKTA + "/apps/0oa1", "hold", "okta-admin-change"),
    case("okta-list-users-not-held", "GET", OKTA + "/users", "allow", None),
    case("auth0-create-user-held", "POST", AUTH0 + "/api/v2/users", "hold",
         "auth0-management-change", [JSON], b"{}"),
    case("auth0-token-not-held", "POST", AUTH0 + "/oauth/token", "allow", None, [JSON], b"{}"),
    case("auth0-list-users-not-held", "GET", AUTH0 + "/api/v2/users", "allow", None),
]  # fmt: skip


@pytest.mark.parametrize(("method", "url", "headers", "body", "action", "rule_name"), CASES)
def test_decide(
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
    ("method", "url", "headers", "body", "severity"),
    [
        pytest.param("POST", IAM, (FORM,), b"Action=CreateUser", "critical", id="iam"),
        pytest.param(
            "POST",
            SECRETS,
            tuple(target("secretsmanager.GetSecretValue")),
            b"{}",
            "high",
            id="secret-read",
        ),
        pytest.param("PUT", VAULT + "/sys/seal", (), b"", "critical", id="vault-seal"),
    ],
)
def test_severity(
    policy: Policy,
    method: str,
    url: str,
    headers: tuple[tuple[str, str], ...],
    body: bytes,
    severity: str,
) -> None:
    assert policy.decide(build_request(method, url, headers, body)).severity == severity


def test_loads_without_warnings(policy: Policy) -> None:
    assert policy.warnings == ()
