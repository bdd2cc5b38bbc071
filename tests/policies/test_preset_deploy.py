"""Decision table for the shipped `deploy` preset, loaded alone under `default: allow`."""

from __future__ import annotations

import json

import pytest

from policies.engine import Policy
from policies.request import build_request
from tests.policies.presetkit import load_preset

JSON = [("Content-Type", "application/json")]
VERCEL = "https://api.vercel.com"
NETLIFY = "https://api.netlify.com/api/v1"
MACHINES = "https://api.machines.dev/v1/apps/my-app"
HEROKU = "https://api.heroku.com"
RENDER = "https://api.render.com/v1"
RAILWAY = "https://backboard.railway.com/graphql/v2"


@pytest.fixture(scope="module")
def policy(tmp_path_factory: pytest.TempPathFactory) -> Policy:
    return load_preset(tmp_path_factory, "deploy")


def body(value: object) -> bytes:
    return json.dumps(value).encode()


def graphql(query: str) -> bytes:
    return body({"query": query, "variables": {}})


CASES = [
    # Vercel
    pytest.param("GET", f"{VERCEL}/v6/deployments?projectId=prj_1", [], b"", "allow", None,
                 id="vercel-list-deployments-flows"),
    pytest.param("GET", f"{VERCEL}/v3/deployments/dpl_1/events", [], b"", "allow", None,
                 id="vercel-build-logs-flow"),
    pytest.param("POST", f"{VERCEL}/v2/files", [("x-vercel-digest", "ab")], b"file bytes",
                 "allow", None, id="vercel-file-upload-flows"),
    pytest.param("POST", f"{VERCEL}/v13/deployments", JSON,
                 body({"name": "web", "target": "production", "files": []}), "hold",
                 "deploy/vercel-production-deployment", id="vercel-production-deploy-held"),
    pytest.param("POST", f"{VERCEL}/v13/deployments?teamId=team_1", JSON,
                 body({"name": "web", "files": []}), "hold", "deploy/vercel-deployment",
                 id="vercel-preview-deploy-held-medium"),
    pytest.param("POST", f"{VERCEL}/v10/projects/prj_1/promote/dpl_1", [], b"", "hold",
                 "deploy/vercel-promote-rollback", id="vercel-promote-held"),
    pytest.param("POST", f"{VERCEL}/v1/projects/prj_1/rollback/dpl_0", [], b"", "hold",
                 "deploy/vercel-promote-rollback", id="vercel-rollback-held"),
    pytest.param("POST", f"{VERCEL}/v2/deployments/dpl_1/aliases", JSON,
                 body({"alias": "www.example.com"}), "hold", "deploy/vercel-aliases",
                 id="vercel-alias-held"),
    pytest.param("POST", f"{VERCEL}/v10/projects/web/env", JSON,
                 body({"key": "DATABASE_URL", "value": "x", "target": ["production"]}), "hold",
                 "deploy/vercel-env-vars", id="vercel-env-create-held"),
    pytest.param("DELETE", f"{VERCEL}/v9/projects/web/env/env_1", [], b"", "hold",
                 "deploy/vercel-env-vars", id="vercel-env-delete-held"),
    pytest.param("POST", f"{VERCEL}/v10/projects/web/domains", JSON,
                 body({"name": "example.com"}), "hold", "deploy/vercel-domains",
                 id="vercel-domain-add-held"),
    pytest.param("DELETE", f"{VERCEL}/v9/projects/web", [], b"", "hold",
                 "deploy/vercel-project-delete", id="vercel-project-delete-held"),
    pytest.param("PATCH", f"{VERCEL}/v9/projects/web", JSON, body({"buildCommand": "x"}),
                 "hold", "deploy/vercel-project-settings", id="vercel-project-settings-held"),
    pytest.param("POST", f"{VERCEL}/v1/integrations/deploy/prj_1/hook_1", [], b"", "hold",
                 "deploy/vercel-deploy-hook", id="vercel-deploy-hook-post-held"),
    pytest.param("GET", f"{VERCEL}/v1/integrations/deploy/prj_1/hook_1", [], b"", "hold",
                 "deploy/vercel-deploy-hook", id="vercel-deploy-hook-get-held"),
    # Netlify
    pytest.param("GET", f"{NETLIFY}/sites/site_1/deploys", [], b"", "allow", None,
                 id="netlify-list-deploys-flows"),
    pytest.param("PUT", f"{NETLIFY}/deploys/dep_1/files/index.html",
                 [("Content-Type", "application/octet-stream")], b"<html>", "allow", None,
                 id="netlify-file-upload-flows"),
    pytest.param("POST", f"{NETLIFY}/sites/site_1/deploys", JSON,
                 body({"files": {"/index.html": "sha"}}), "hold", "deploy/netlify-deploy",
                 id="netlify-production-deploy-held"),
    pytest.param("POST", f"{NETLIFY}/sites/site_1/deploys", JSON,
                 body({"files": {"/index.html": "sha"}, "draft": True}), "hold",
                 "deploy/netlify-draft-deploy", id="netlify-draft-deploy-held-medium"),
    pytest.param("POST", f"{NETLIFY}/sites/site_1/deploys/dep_0/restore", [], b"", "hold",
                 "deploy/netlify-publish-rollback", id="netlify-restore-held"),
    pytest.param("PATCH", f"{NETLIFY}/accounts/acct_1/env/API_KEY?site_id=site_1", JSON,
                 body({"context": "production", "value": "x"}), "hold",
                 "deploy/netlify-env-vars", id="netlify-env-set-held"),
    pytest.param("PATCH", f"{NETLIFY}/sites/site_1", JSON, body({"name": "new"}), "hold",
                 "deploy/netlify-site-settings", id="netlify-site-update-held"),
    pytest.param("POST", "https://api.netlify.com/build_hooks/5f1a", [], b"", "hold",
                 "deploy/netlify-build-hook", id="netlify-build-hook-held"),
    # Fly.io
    pytest.param("GET", f"{MACHINES}/machines", [], b"", "allow", None,
                 id="fly-list-machines-flows"),
    pytest.param("POST", f"{MACHINES}/machines/m1/lease", JSON, body({"ttl": 60}), "allow",
                 "deploy/fly-machine-lease", id="fly-lease-flows"),
    pytest.param("POST", f"{MACHINES}/machines/m1", JSON,
                 body({"config": {"image": "registry.fly.io/my-app:v2"}}), "hold",
                 "deploy/fly-machine-changes", id="fly-machine-update-held"),
    pytest.param("POST", f"{MACHINES}/machines/m1/exec", JSON, body({"cmd": "rm -rf /data"}),
                 "hold", "deploy/fly-machine-exec", id="fly-exec-held"),
    pytest.param("DELETE", f"{MACHINES}/volumes/vol_1", [], b"", "hold",
                 "deploy/fly-volume-delete", id="fly-volume-delete-held"),
    pytest.param("DELETE", MACHINES, [], b"", "hold", "deploy/fly-app-delete",
                 id="fly-app-delete-held"),
    pytest.param("POST", "https://api.fly.io/graphql", JSON,
                 graphql("query { viewer { email } }"), "allow", None,
                 id="fly-graphql-query-flows"),
    pytest.param("POST", "https://api.fly.io/graphql", JSON,
                 graphql("mutation($input: SetSecretsInput!) { setSecrets(input: $input) "
                         "{ release { id } } }"),
                 "hold", "deploy/fly-graphql-mutations", id="fly-graphql-mutation-held"),
    # Heroku
    pytest.param("GET", f"{HEROKU}/apps/my-app/releases", [], b"", "allow", None,
                 id="heroku-list-releases-flows"),
    pytest.param("POST", f"{HEROKU}/apps/my-app/builds", JSON,
                 body({"source_blob": {"url": "https://x/y.tgz"}}), "hold",
                 "deploy/heroku-builds-releases", id="heroku-build-held"),
    pytest.param("PATCH", f"{HEROKU}/apps/my-app/config-vars", JSON,
                 body({"DATABASE_URL": "postgres://x"}), "hold", "deploy/heroku-config-vars",
                 id="heroku-config-vars-held"),
    pytest.param("PATCH", f"{HEROKU}/apps/my-app/formation/web", JSON, body({"quantity": 0}),
                 "hold", "deploy/heroku-scaling", id="heroku-scale-held"),
    pytest.param("POST", f"{HEROKU}/pipeline-promotions", JSON,
                 body({"pipeline": {"id": "p"}, "source": {}, "targets": []}), "hold",
                 "deploy/heroku-pipeline-promotion", id="heroku-promotion-held"),
    pytest.param("DELETE", f"{HEROKU}/apps/my-app", [], b"", "hold",
                 "deploy/heroku-app-delete", id="heroku-app-delete-held"),
    pytest.param("POST", "https://git.heroku.com/my-app.git/git-receive-pack",
                 [("Content-Type", "application/x-git-receive-pack-request")], b"0000",
                 "hold", "deploy/heroku-git-push", id="heroku-git-push-held"),
    # Render
    pytest.param("GET", f"{RENDER}/services?limit=20", [], b"", "allow", None,
                 id="render-list-services-flows"),
    pytest.param("POST", f"{RENDER}/services/srv-1/deploys", JSON,
                 body({"clearCache": "clear"}), "hold", "deploy/render-deploys",
                 id="render-deploy-held"),
    pytest.param("PUT", f"{RENDER}/services/srv-1/env-vars/API_KEY", JSON,
                 body({"value": "x"}), "hold", "deploy/render-env-vars",
                 id="render-env-var-held"),
    pytest.param("POST", f"{RENDER}/services/srv-1/suspend", [], b"", "hold",
                 "deploy/render-service-changes", id="render-suspend-held"),
    pytest.param("GET", "https://api.render.com/deploy/srv-1?key=abc", [], b"", "hold",
                 "deploy/render-deploy-hook", id="render-deploy-hook-held"),
    # Railway
    pytest.param("POST", RAILWAY, JSON, graphql("query { me { email } }"), "allow", None,
                 id="railway-graphql-query-flows"),
    pytest.param("POST", RAILWAY, JSON,
                 graphql("mutation ServiceInstanceDeploy($environmentId: String!, "
                         "$serviceId: String!) { serviceInstanceDeployV2("
                         "environmentId: $environmentId, serviceId: $serviceId) }"),
                 "hold", "deploy/railway-graphql-mutations", id="railway-deploy-mutation-held"),
    pytest.param("POST", "https://backboard.railway.app/graphql/v2", JSON,
                 body([{"query": "query { me { id } }"},
                       {"query": "mutation { projectDelete(id: \"p\") }"}]),
                 "hold", "deploy/railway-graphql-mutations", id="railway-batched-mutation-held"),
    pytest.param("POST", "https://backboard.railway.com/project/p1/environment/e1/up?serviceId=s1",
                 [("Content-Type", "multipart/form-data")], b"tarball", "hold",
                 "deploy/railway-up", id="railway-up-held"),
]  # fmt: skip


@pytest.mark.parametrize(("method", "url", "headers", "body", "action", "rule"), CASES)
def test_deploy_preset(
    policy: Policy,
    method: str,
    url: str,
    headers: list[tuple[str, str]],
    body: bytes,
    action: str,
    rule: str | None,
) -> None:
    decision = policy.decide(build_request(method, url, headers, body))
    assert (decision.action, decision.rule) == (action, rule), decision.reason


def test_deploy_hosts_need_each_request_inspected(policy: Policy) -> None:
    assert policy.decide_host("api.vercel.com", 443).action == "needs_request"
    assert policy.decide_host("example.com", 443).action == "allow"
