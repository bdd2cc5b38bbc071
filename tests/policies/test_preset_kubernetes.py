"""Decision table for the `kubernetes` preset (API servers on any host), loaded on its own."""

from __future__ import annotations

import pytest

from policies.engine import Policy
from tests.policies.presetkit import Row, case, check_decision, load_preset

PRESET = "kubernetes"
K = "https://10.0.0.1:6443"
SVC = "https://kubernetes.default.svc"
NS = f"{K}/api/v1/namespaces/default"
DEPLOY = f"{K}/apis/apps/v1/namespaces/default/deployments"
PATCH_JSON = (("Content-Type", "application/strategic-merge-patch+json"),)


@pytest.fixture(scope="module")
def policy(tmp_path_factory: pytest.TempPathFactory) -> Policy:
    return load_preset(tmp_path_factory, PRESET)


def k(name: str) -> str:
    return f"kubernetes/{name}"


EXEC = k("exec-attach-portforward")
SECRETS = k("secrets")

HOLDS = [
    case("POST", f"{NS}/pods/web/exec?command=sh&stdin=true&tty=true", "hold", EXEC,
         id="exec-spdy-post-held"),
    case("GET", f"{NS}/pods/web/exec?command=ls", "hold", EXEC,
         headers=(("Upgrade", "websocket"), ("Connection", "Upgrade")), id="exec-websocket-held"),
    case("GET", f"{SVC}/api/v1/namespaces/kube-system/pods/web/attach?stdin=true", "hold", EXEC,
         id="attach-held"),
    case("POST", f"{NS}/pods/db-0/portforward?ports=5432", "hold", EXEC, id="portforward-held"),
    case("POST", f"{NS}/pods/web/%65xec?command=sh", "hold", EXEC, id="exec-encoded-letter-held"),
    case("GET", f"{NS}/services/web:80/proxy/admin", "hold", k("proxy"),
         id="service-proxy-held"),
    case("GET", f"{K}/api/v1/nodes/n1/proxy/pods", "hold", k("proxy"), id="kubelet-proxy-held"),
    case("GET", f"{NS}/secrets", "hold", SECRETS, id="list-secrets-held"),
    case("GET", f"{NS}/secrets/db", "hold", SECRETS, id="read-secret-held"),
    case("GET", f"{K}/api/v1/secrets?limit=500", "hold", SECRETS,
         id="list-secrets-all-namespaces-held"),
    case("GET", f"{K}/api/v1/watch/namespaces/default/secrets", "hold", SECRETS,
         id="watch-secrets-legacy-path-held"),
    case("GET", f"{NS}/secrets/db/", "hold", SECRETS, id="read-secret-trailing-slash-held"),
    case("GET", f"{K}//api/v1/namespaces/default//secrets/db", "hold", SECRETS,
         id="read-secret-double-slash-held"),
    case("GET", f"{NS}/%73ecrets/db", "hold", SECRETS, id="read-secret-encoded-letter-held"),
    case("GET", f"{K}/api/v1/namespaces/default/pods/../secrets/db", "hold", SECRETS,
         id="read-secret-dot-segment-held"),
    case("PATCH", f"{NS}/secrets/db?dryRun=All", "hold", SECRETS, headers=PATCH_JSON,
         body=b"{}", id="dry-run-patch-secret-held"),
    case("POST", f"{NS}/serviceaccounts/default/token", "hold", k("service-account-token"),
         id="mint-sa-token-held"),
    case("POST", DEPLOY, "hold", k("write-resources"), id="create-deployment-held"),
    case("PATCH", f"{DEPLOY}/web", "hold", k("write-resources"), headers=PATCH_JSON,
         body=b'{"spec": {"replicas": 0}}', id="scale-deployment-held"),
    case("PUT", f"{SVC}/api/v1/namespaces/default/configmaps/app", "hold", k("write-resources"),
         id="replace-configmap-held"),
    case("POST", f"{K}/api/v1/namespaces", "hold", k("write-resources"),
         id="create-namespace-held"),
    case("PATCH", f"{K}/api/v1/nodes/n1", "hold", k("write-resources"), id="cordon-node-held"),
    case("POST", f"{NS}/pods/web/eviction", "hold", k("write-resources"), id="evict-pod-held"),
    case("PATCH", f"{K}/apis/example.com/v1alpha1/namespaces/default/widgets/w?dryRun=All",
         "hold", k("write-resources"), id="dry-run-custom-group-held"),
    case("PATCH", f"{DEPLOY}/web?dryRun=All&dryRun=None", "hold", k("write-resources"),
         id="dry-run-repeated-param-held"),
    case("DELETE", f"{K}/api/v1/namespaces/prod", "hold", k("delete-resources"),
         id="delete-namespace-held"),
    case("DELETE", f"{NS}/pods", "hold", k("delete-resources"), id="delete-collection-held"),
    case("DELETE", f"{K}/apis/cert-manager.io/v1/namespaces/x/certificates/y", "hold",
         k("delete-resources"), id="delete-custom-resource-held"),
    case("DELETE", f"{K}/APIS/APPS/V1/namespaces/default/deployments/web", "hold",
         k("delete-resources"), id="delete-deployment-uppercase-held"),
    case("POST", f"{K}/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", "hold",
         k("access-control-changes"), id="create-clusterrolebinding-held"),
    case("PUT", f"{K}/apis/certificates.k8s.io/v1/certificatesigningrequests/csr1/approval",
         "hold", k("access-control-changes"), id="approve-csr-held"),
]  # fmt: skip

FLOWS = [
    case("GET", f"{NS}/pods", "allow", None, id="list-pods-flows"),
    case("GET", f"{NS}/pods/web/log?container=app&tailLines=100", "allow", None,
         id="pod-logs-flow"),
    case("GET", f"{K}/apis/apps/v1/deployments?watch=true", "allow", None,
         id="watch-deployments-flows"),
    case("GET", f"{NS}/configmaps/app", "allow", None, id="read-configmap-flows"),
    case("GET", f"{K}/apis", "allow", None, id="discovery-flows"),
    case("POST", f"{K}/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", "allow",
         k("access-review"), id="auth-can-i-flows"),
    case("POST", f"{K}/apis/authentication.k8s.io/v1/selfsubjectreviews", "allow",
         k("access-review"), id="auth-whoami-flows"),
    case("PATCH", f"{DEPLOY}/web?dryRun=All&fieldManager=kubectl", "allow",
         k("server-side-dry-run"), headers=PATCH_JSON, body=b"{}", id="kubectl-diff-flows"),
    case("POST", f"{K}/apis/networking.k8s.io/v1/namespaces/default/ingresses?dryRun=All",
         "allow", k("server-side-dry-run"), id="dry-run-create-ingress-flows"),
    case("POST", "https://api.example.com/api/v1/users", "allow", None,
         id="non-kubernetes-api-v1-post-ignored"),
    case("DELETE", "https://api.example.com/api/v1/projects/3", "allow", None,
         id="non-kubernetes-api-v1-delete-ignored"),
    case("POST", "https://api.example.com/apis/foo/bar/baz", "allow", None,
         id="non-kubernetes-apis-shape-ignored"),
]  # fmt: skip


@pytest.mark.parametrize("row", HOLDS + FLOWS)
def test_decision(policy: Policy, row: Row) -> None:
    check_decision(policy, row)


def test_preset_loads_without_warnings(policy: Policy) -> None:
    assert policy.warnings == ()
