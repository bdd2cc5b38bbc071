"""Decision table for the shipped `identity` preset, loaded alone under `default: allow`."""

from __future__ import annotations

import pytest

from policies.engine import Policy
from policies.model import RequestView
from policies.request import build_request
from tests.policies.presetkit import Row, case, check_decision, load_preset

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


def target(operation: str) -> list[tuple[str, str]]:
    return [("Content-Type", "application/x-amz-json-1.1"), ("X-Amz-Target", operation)]


CASES = [
    # AWS IAM and STS.
    case("POST", IAM, "hold", "identity/aws-iam-change", headers=[FORM],
         body=b"Action=CreateUser&UserName=bot&Version=2010-05-08", id="aws-iam-create-user-held"),
    case("POST", IAM, "hold", "identity/aws-iam-change", headers=[FORM],
         body=b"Action=AttachRolePolicy&RoleName=r&PolicyArn=arn:aws:iam::aws:policy/Admin",
         id="aws-iam-attach-policy-held"),
    case("GET", IAM + "?Action=CreateAccessKey&UserName=u", "hold", "identity/aws-iam-change",
         id="aws-iam-create-key-in-query-held"),
    case("POST", IAM, "allow", None, headers=[FORM], body=b"Action=ListUsers&Version=2010-05-08",
         id="aws-iam-list-users-not-held"),
    case("POST", STS, "allow", "identity/aws-sts-session-credentials", headers=[FORM],
         body=b"Action=AssumeRole&RoleArn=arn:aws:iam::1:role/dev&RoleSessionName=s",
         id="aws-sts-assume-role-flows"),
    case("POST", STS, "allow", "identity/aws-sts-session-credentials", headers=[FORM],
         body=b"Action=AssumeRoleWithWebIdentity&WebIdentityToken=t",
         id="aws-sts-web-identity-flows"),
    case("GET", "https://sts.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15", "allow",
         "identity/aws-sts-session-credentials", id="aws-sts-caller-identity-flows"),
    case("POST", STS, "hold", "identity/aws-sts-privileged-credentials", headers=[FORM],
         body=b"Action=GetFederationToken&Name=x", id="aws-sts-federation-token-held"),
    case("POST", STS + "?Action=AssumeRole", "hold", "identity/aws-sts-privileged-credentials",
         headers=[FORM], body=b"Action=AssumeRoot", id="aws-sts-mixed-actions-held"),
    case("GET", "https://signin.aws.amazon.com/federation?Action=getSigninToken&Session=x", "hold",
         "identity/aws-console-sign-in-token", id="aws-console-sign-in-token-held"),
    # AWS secrets.
    case("POST", SECRETS, "hold", "identity/aws-secrets-manager-read-value",
         headers=target("secretsmanager.GetSecretValue"), body=b'{"SecretId":"prod/db"}',
         id="aws-get-secret-value-held"),
    case("POST", SECRETS, "hold", "identity/aws-secrets-manager-read-value",
         headers=target("secretsmanager.BatchGetSecretValue"), body=b"{}",
         id="aws-batch-get-secret-value-held"),
    case("POST", SECRETS, "allow", None, headers=target("secretsmanager.ListSecrets"), body=b"{}",
         id="aws-list-secrets-not-held"),
    case("POST", SECRETS, "hold", "identity/aws-secrets-manager-change",
         headers=target("secretsmanager.PutSecretValue"), body=b"{}",
         id="aws-put-secret-value-held"),
    case("POST", SSM, "hold", "identity/aws-ssm-decrypt-parameter",
         headers=target("AmazonSSM.GetParameter"),
         body=b'{"Name":"/prod/db","WithDecryption":true}', id="aws-ssm-decrypt-parameter-held"),
    case("POST", SSM, "allow", None, headers=target("AmazonSSM.GetParameter"),
         body=b'{"Name":"/prod/region","WithDecryption":false}',
         id="aws-ssm-plain-parameter-not-held"),
    case("POST", KMS, "hold", "identity/aws-kms-key-admin",
         headers=target("TrentService.ScheduleKeyDeletion"), body=b'{"KeyId":"k"}',
         id="aws-kms-schedule-deletion-held"),
    case("POST", KMS, "hold", "identity/aws-kms-decrypt", headers=target("TrentService.Decrypt"),
         body=b"{}", id="aws-kms-decrypt-held"),
    case("POST", KMS, "allow", None, headers=target("TrentService.Encrypt"), body=b"{}",
         id="aws-kms-encrypt-not-held"),
    # Google Cloud.
    case("POST", "https://cloudresourcemanager.googleapis.com/v3/projects/p:setIamPolicy", "hold",
         "identity/gcp-set-iam-policy", headers=[JSON], body=b"{}",
         id="gcp-project-set-iam-policy-held"),
    case("POST", "https://run.googleapis.com/v2/projects/p/locations/l/services/s:setIamPolicy",
         "hold", "identity/gcp-set-iam-policy", headers=[JSON], body=b"{}",
         id="gcp-run-service-set-iam-policy-held"),
    case("PUT", "https://storage.googleapis.com/storage/v1/b/b/iam", "hold",
         "identity/gcp-set-iam-policy", headers=[JSON], body=b"{}", id="gcp-bucket-iam-put-held"),
    case("POST", GCP_IAM + "/sa@p.iam.gserviceaccount.com/keys", "hold",
         "identity/gcp-service-account-key-create", headers=[JSON], body=b"{}",
         id="gcp-service-account-key-held"),
    case("POST", GCP_IAM, "hold", "identity/gcp-iam-change", headers=[JSON],
         body=b'{"accountId":"bot"}', id="gcp-create-service-account-held"),
    case("GET", GCP_IAM, "allow", None, id="gcp-list-service-accounts-not-held"),
    case("POST", "https://iam.googleapis.com/v1/roles:queryGrantableRoles", "allow",
         "identity/gcp-iam-read-queries", headers=[JSON], body=b"{}",
         id="gcp-query-grantable-roles-flows"),
    case("GET", GCP_SECRETS + "/db/versions/latest:access", "hold", "identity/gcp-secret-access",
         id="gcp-secret-access-held"),
    case("GET",
         "https://secretmanager.europe-west1.rep.googleapis.com/v1/projects/p/locations/"
         "europe-west1/secrets/db/versions/3:access", "hold", "identity/gcp-secret-access",
         id="gcp-regional-secret-access-held"),
    case("GET", GCP_SECRETS, "allow", None, id="gcp-list-secrets-not-held"),
    case("POST", GCP_SECRETS + "/db:addVersion", "hold", "identity/gcp-secret-manager-change",
         headers=[JSON], body=b"{}", id="gcp-add-secret-version-held"),
    case("POST", GCP_SECRETS + "/db/versions/2:destroy", "hold", "identity/gcp-secret-destroy",
         headers=[JSON], body=b"{}", id="gcp-destroy-secret-version-held"),
    case("POST",
         "https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/"
         "sa@p.iam.gserviceaccount.com:generateAccessToken", "allow", None, headers=[JSON],
         body=b"{}", id="gcp-impersonation-token-not-held"),
    # Azure.
    case("PUT", ARM + "/Microsoft.Authorization/roleAssignments/1?api-version=2022-04-01", "hold",
         "identity/azure-authorization-change", headers=[JSON], body=b"{}",
         id="azure-role-assignment-held"),
    case("DELETE", ARM + "/Microsoft.Authorization/locks/keep?api-version=2016-09-01", "hold",
         "identity/azure-authorization-change", id="azure-delete-lock-held"),
    case("POST", ARM + "/Microsoft.Storage/storageAccounts/sa/listKeys?api-version=2023-01-01",
         "hold", "identity/azure-list-keys", id="azure-storage-list-keys-held"),
    case("POST",
         ARM + "/Microsoft.ContainerService/managedClusters/c/listClusterAdminCredential"
         "?api-version=2024-05-01", "hold", "identity/azure-list-keys",
         id="azure-aks-admin-credential-held"),
    case("POST", ARM + "/Microsoft.Compute/virtualMachines/vm/restart?api-version=2024-07-01",
         "allow", None, id="azure-vm-restart-not-held"),
    case("GET", KEY_VAULT + "/secrets/db-password?api-version=7.5", "hold",
         "identity/azure-key-vault-secret-read", id="azure-key-vault-secret-read-held"),
    case("GET", KEY_VAULT + "/secrets/db-password/0123abcd?api-version=7.5", "hold",
         "identity/azure-key-vault-secret-read", id="azure-key-vault-secret-version-read-held"),
    case("GET", KEY_VAULT + "/secrets?api-version=7.5", "allow", None,
         id="azure-key-vault-list-secrets-not-held"),
    case("PUT", KEY_VAULT + "/secrets/db-password?api-version=7.5", "hold",
         "identity/azure-key-vault-change", headers=[JSON], body=b'{"value":"x"}',
         id="azure-key-vault-set-secret-held"),
    case("POST", KEY_VAULT + "/keys/k/1/decrypt?api-version=7.5", "hold",
         "identity/azure-key-vault-change", headers=[JSON], body=b"{}",
         id="azure-key-vault-decrypt-held"),
    case("DELETE", KEY_VAULT + "/deletedsecrets/db-password?api-version=7.5", "hold",
         "identity/azure-key-vault-purge", id="azure-key-vault-purge-held"),
    case("POST", GRAPH + "/applications/abc/addPassword", "hold", "identity/entra-directory-change",
         headers=[JSON], body=b"{}", id="entra-add-app-password-held"),
    case("POST", GRAPH + "/users", "hold", "identity/entra-directory-change", headers=[JSON],
         body=b"{}", id="entra-create-user-held"),
    case("GET", GRAPH + "/users?$top=5", "allow", None, id="entra-read-users-not-held"),
    case("POST", GRAPH + "/users/u/sendMail", "allow", None, headers=[JSON], body=b"{}",
         id="graph-send-mail-not-held"),
    case("POST", GRAPH + "/$batch", "hold", "identity/entra-directory-change-in-batch",
         headers=[JSON],
         body=b'{"requests":[{"id":"1","method":"GET","url":"/me"},'
              b'{"id":"2","method":"POST","url":"/groups/g/members/$ref","body":{}}]}',
         id="entra-change-in-batch-held"),
    case("POST", GRAPH + "/$batch", "allow", None, headers=[JSON],
         body=b'{"requests":[{"id":"1","method":"GET","url":"/me/messages"}]}',
         id="graph-read-only-batch-not-held"),
    # HashiCorp Vault.
    case("POST", VAULT + "/auth/approle/login", "allow", None, headers=[JSON],
         body=b'{"role_id":"r","secret_id":"s"}', id="vault-approle-login-not-held"),
    case("POST", VAULT + "/auth/userpass/login/alice", "allow", None, headers=[JSON], body=b"{}",
         id="vault-userpass-login-not-held"),
    case("POST", VAULT + "/auth/token/renew-self", "allow", None,
         id="vault-token-renew-self-not-held"),
    case("POST", VAULT + "/auth/token/create", "hold", "identity/vault-auth-change", headers=[JSON],
         body=b'{"policies":["root"]}', id="vault-token-create-held"),
    case("POST", VAULT + "/auth/approle/role/ci/secret-id", "hold", "identity/vault-auth-change",
         id="vault-approle-secret-id-held"),
    case("PUT", VAULT + "/sys/policies/acl/admin", "hold", "identity/vault-sys-change",
         headers=[JSON], body=b'{"policy":"path \\"*\\" {}"}', id="vault-write-policy-held"),
    case("DELETE", VAULT + "/sys/audit/file", "hold", "identity/vault-sys-change",
         id="vault-disable-audit-held"),
    case("POST", VAULT + "/team-a/sys/mounts/kv2", "hold", "identity/vault-sys-change",
         headers=[JSON], body=b"{}", id="vault-namespaced-mount-held"),
    case("POST", VAULT + "/auth/userpass/login/../../../sys/seal", "hold",
         "identity/vault-sys-change", id="vault-traversal-to-sys-held"),
    case("POST", VAULT + "/sys/capabilities-self", "allow", None, headers=[JSON],
         body=b'{"paths":["secret/data/x"]}', id="vault-capabilities-self-not-held"),
    case("GET", VAULT + "/sys/raw/logical/abc", "hold", "identity/vault-sys-raw",
         id="vault-sys-raw-read-held"),
    case("GET", VAULT + "/secret/data/prod/db", "hold", "identity/vault-kv-read",
         id="vault-kv2-read-held"),
    case("GET", VAULT + "/secret/metadata/prod/db", "allow", None,
         id="vault-kv-metadata-read-not-held"),
    case("POST", VAULT + "/secret/data/prod/db", "hold", "identity/vault-kv-write", headers=[JSON],
         body=b'{"data":{}}', id="vault-kv2-write-held"),
    case("DELETE", VAULT + "/secret/metadata/prod/db", "hold", "identity/vault-kv-destroy",
         id="vault-kv2-delete-all-versions-held"),
    case("POST", "https://vault.example.com/v1/sys/mounts/kv2", "hold", "identity/vault-sys-change",
         headers=[("X-Vault-Token", "hvs.x")], body=b"{}",
         id="vault-behind-https-with-token-header-held"),
    case("GET", "https://vault.example.com/v1/secret/data/prod/db", "hold",
         "identity/vault-kv-read", headers=[("Authorization", "Bearer hvs.CAESIabc")],
         id="vault-behind-https-with-bearer-held"),
    case("GET", "https://vault-cluster-public-vault-1a2b.z1.hashicorp.cloud/v1/secret/data/db",
         "hold", "identity/vault-kv-read", id="hcp-vault-kv-read-held"),
    case("POST", "https://api.example.com/v1/auth/token", "allow", None, headers=[JSON], body=b"{}",
         id="vault-like-path-without-vault-signal-not-held"),
    case("POST", "https://api.stripe.com/v1/identity/verification_sessions", "allow", None,
         headers=[("Content-Type", "application/x-www-form-urlencoded")], body=b"type=document",
         id="stripe-identity-is-not-vault"),
    # 1Password Connect.
    case("GET", CONNECT + "/it3m", "hold", "identity/onepassword-connect-item-read",
         id="onepassword-item-read-held"),
    case("GET", CONNECT, "allow", None, id="onepassword-list-items-not-held"),
    case("PATCH", CONNECT + "/it3m", "hold", "identity/onepassword-connect-change", headers=[JSON],
         body=b"[]", id="onepassword-item-update-held"),
    # Okta and Auth0.
    case("POST", OKTA + "/authn", "allow", None, headers=[JSON],
         body=b'{"username":"a","password":"b"}', id="okta-authn-not-held"),
    case("POST", OKTA + "/users?activate=true", "hold", "identity/okta-admin-change",
         headers=[JSON], body=b"{}", id="okta-create-user-held"),
    case("DELETE", OKTA + "/apps/0oa1", "hold", "identity/okta-admin-change",
         id="okta-delete-app-held"),
    case("GET", OKTA + "/users", "allow", None, id="okta-list-users-not-held"),
    case("POST", AUTH0 + "/api/v2/users", "hold", "identity/auth0-management-change",
         headers=[JSON], body=b"{}", id="auth0-create-user-held"),
    case("POST", AUTH0 + "/oauth/token", "allow", None, headers=[JSON], body=b"{}",
         id="auth0-token-not-held"),
    case("GET", AUTH0 + "/api/v2/users", "allow", None, id="auth0-list-users-not-held"),
]  # fmt: skip


@pytest.mark.parametrize("row", CASES)
def test_decide(policy: Policy, row: Row) -> None:
    check_decision(policy, row)


@pytest.mark.parametrize(
    ("view", "severity"),
    [
        pytest.param(
            build_request("POST", IAM, (FORM,), b"Action=CreateUser"), "critical", id="iam"
        ),
        pytest.param(
            build_request("POST", SECRETS, target("secretsmanager.GetSecretValue"), b"{}"),
            "high",
            id="secret-read",
        ),
        pytest.param(build_request("PUT", VAULT + "/sys/seal"), "critical", id="vault-seal"),
    ],
)
def test_severity(policy: Policy, view: RequestView, severity: str) -> None:
    assert policy.decide(view).severity == severity


def test_loads_without_warnings(policy: Policy) -> None:
    assert policy.warnings == ()
