"""Decision table for the shipped `deploy` preset, loaded alone under `default: allow`."""

from __future__ import annotations

import json

import pytest

from policies.engine import Policy
from tests.policies.presetkit import Row, case, check_decision, load_preset

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
    case("GET", f"{VERCEL}/v6/deployments?projectId=prj_1", "allow", None,
         id="vercel-list-deployments-flows"),
    case("GET", f"{VERCEL}/v3/deployments/dpl_1/events", "allow", None,
         id="vercel-build-logs-flow"),
    case("POST", f"{VERCEL}/v2/files", "allow", None, headers=[("x-vercel-digest", "ab")],
         body=b"file bytes", id="vercel-file-upload-flows"),
    case("POST", f"{VERCEL}/v13/deployments", "hold", "deploy/vercel-production-deployment",
         headers=JSON, body=body({"name": "web", "target": "production", "files": []}),
         id="vercel-production-deploy-held"),
    case("POST", f"{VERCEL}/v13/deployments?teamId=team_1", "hold", "deploy/vercel-deployment",
         headers=JSON, body=body({"name": "web", "files": []}),
         id="vercel-preview-deploy-held-medium"),
    case("POST", f"{VERCEL}/v10/projects/prj_1/promote/dpl_1", "hold",
         "deploy/vercel-promote-rollback", id="vercel-promote-held"),
    case("POST", f"{VERCEL}/v1/projects/prj_1/rollback/dpl_0", "hold",
         "deploy/vercel-promote-rollback", id="vercel-rollback-held"),
    case("POST", f"{VERCEL}/v2/deployments/dpl_1/aliases", "hold", "deploy/vercel-aliases",
         headers=JSON, body=body({"alias": "www.example.com"}), id="vercel-alias-held"),
    case("POST", f"{VERCEL}/v10/projects/web/env", "hold", "deploy/vercel-env-vars", headers=JSON,
         body=body({"key": "DATABASE_URL", "value": "x", "target": ["production"]}),
         id="vercel-env-create-held"),
    case("DELETE", f"{VERCEL}/v9/projects/web/env/env_1", "hold", "deploy/vercel-env-vars",
         id="vercel-env-delete-held"),
    case("POST", f"{VERCEL}/v10/projects/web/domains", "hold", "deploy/vercel-domains",
         headers=JSON, body=body({"name": "example.com"}), id="vercel-domain-add-held"),
    case("DELETE", f"{VERCEL}/v9/projects/web", "hold", "deploy/vercel-project-delete",
         id="vercel-project-delete-held"),
    case("PATCH", f"{VERCEL}/v9/projects/web", "hold", "deploy/vercel-project-settings",
         headers=JSON, body=body({"buildCommand": "x"}), id="vercel-project-settings-held"),
    case("POST", f"{VERCEL}/v1/integrations/deploy/prj_1/hook_1", "hold",
         "deploy/vercel-deploy-hook", id="vercel-deploy-hook-post-held"),
    case("GET", f"{VERCEL}/v1/integrations/deploy/prj_1/hook_1", "hold",
         "deploy/vercel-deploy-hook", id="vercel-deploy-hook-get-held"),
    # Netlify
    case("GET", f"{NETLIFY}/sites/site_1/deploys", "allow", None, id="netlify-list-deploys-flows"),
    case("PUT", f"{NETLIFY}/deploys/dep_1/files/index.html", "allow", None,
         headers=[("Content-Type", "application/octet-stream")], body=b"<html>",
         id="netlify-file-upload-flows"),
    case("POST", f"{NETLIFY}/sites/site_1/deploys", "hold", "deploy/netlify-deploy", headers=JSON,
         body=body({"files": {"/index.html": "sha"}}), id="netlify-production-deploy-held"),
    case("POST", f"{NETLIFY}/sites/site_1/deploys", "hold", "deploy/netlify-draft-deploy",
         headers=JSON, body=body({"files": {"/index.html": "sha"}, "draft": True}),
         id="netlify-draft-deploy-held-medium"),
    case("POST", f"{NETLIFY}/sites/site_1/deploys/dep_0/restore", "hold",
         "deploy/netlify-publish-rollback", id="netlify-restore-held"),
    case("PATCH", f"{NETLIFY}/accounts/acct_1/env/API_KEY?site_id=site_1", "hold",
         "deploy/netlify-env-vars", headers=JSON,
         body=body({"context": "production", "value": "x"}), id="netlify-env-set-held"),
    case("PATCH", f"{NETLIFY}/sites/site_1", "hold", "deploy/netlify-site-settings", headers=JSON,
         body=body({"name": "new"}), id="netlify-site-update-held"),
    case("POST", "https://api.netlify.com/build_hooks/5f1a", "hold", "deploy/netlify-build-hook",
         id="netlify-build-hook-held"),
    # Fly.io
    case("GET", f"{MACHINES}/machines", "allow", None, id="fly-list-machines-flows"),
    case("POST", f"{MACHINES}/machines/m1/lease", "allow", "deploy/fly-machine-lease", headers=JSON,
         body=body({"ttl": 60}), id="fly-lease-flows"),
    case("POST", f"{MACHINES}/machines/m1", "hold", "deploy/fly-machine-changes", headers=JSON,
         body=body({"config": {"image": "registry.fly.io/my-app:v2"}}),
         id="fly-machine-update-held"),
    case("POST", f"{MACHINES}/machines/m1/exec", "hold", "deploy/fly-machine-exec", headers=JSON,
         body=body({"cmd": "rm -rf /data"}), id="fly-exec-held"),
    case("DELETE", f"{MACHINES}/volumes/vol_1", "hold", "deploy/fly-volume-delete",
         id="fly-volume-delete-held"),
    case("DELETE", MACHINES, "hold", "deploy/fly-app-delete", id="fly-app-delete-held"),
    case("POST", "https://api.fly.io/graphql", "allow", None, headers=JSON,
         body=graphql("query { viewer { email } }"), id="fly-graphql-query-flows"),
    case("POST", "https://api.fly.io/graphql", "hold", "deploy/fly-graphql-mutations", headers=JSON,
         body=graphql("mutation($input: SetSecretsInput!) { setSecrets(input: $input) "
                      "{ release { id } } }"), id="fly-graphql-mutation-held"),
    # Heroku
    case("GET", f"{HEROKU}/apps/my-app/releases", "allow", None, id="heroku-list-releases-flows"),
    case("POST", f"{HEROKU}/apps/my-app/builds", "hold", "deploy/heroku-builds-releases",
         headers=JSON, body=body({"source_blob": {"url": "https://x/y.tgz"}}),
         id="heroku-build-held"),
    case("PATCH", f"{HEROKU}/apps/my-app/config-vars", "hold", "deploy/heroku-config-vars",
         headers=JSON, body=body({"DATABASE_URL": "postgres://x"}), id="heroku-config-vars-held"),
    case("PATCH", f"{HEROKU}/apps/my-app/formation/web", "hold", "deploy/heroku-scaling",
         headers=JSON, body=body({"quantity": 0}), id="heroku-scale-held"),
    case("POST", f"{HEROKU}/pipeline-promotions", "hold", "deploy/heroku-pipeline-promotion",
         headers=JSON, body=body({"pipeline": {"id": "p"}, "source": {}, "targets": []}),
         id="heroku-promotion-held"),
    case("DELETE", f"{HEROKU}/apps/my-app", "hold", "deploy/heroku-app-delete",
         id="heroku-app-delete-held"),
    case("POST", "https://git.heroku.com/my-app.git/git-receive-pack", "hold",
         "deploy/heroku-git-push",
         headers=[("Content-Type", "application/x-git-receive-pack-request")], body=b"0000",
         id="heroku-git-push-held"),
    # Render
    case("GET", f"{RENDER}/services?limit=20", "allow", None, id="render-list-services-flows"),
    case("POST", f"{RENDER}/services/srv-1/deploys", "hold", "deploy/render-deploys", headers=JSON,
         body=body({"clearCache": "clear"}), id="render-deploy-held"),
    case("PUT", f"{RENDER}/services/srv-1/env-vars/API_KEY", "hold", "deploy/render-env-vars",
         headers=JSON, body=body({"value": "x"}), id="render-env-var-held"),
    case("POST", f"{RENDER}/services/srv-1/suspend", "hold", "deploy/render-service-changes",
         id="render-suspend-held"),
    case("GET", "https://api.render.com/deploy/srv-1?key=abc", "hold", "deploy/render-deploy-hook",
         id="render-deploy-hook-held"),
    # Railway
    case("POST", RAILWAY, "allow", None, headers=JSON, body=graphql("query { me { email } }"),
         id="railway-graphql-query-flows"),
    case("POST", RAILWAY, "hold", "deploy/railway-graphql-mutations", headers=JSON,
         body=graphql("mutation ServiceInstanceDeploy($environmentId: String!, "
                      "$serviceId: String!) { serviceInstanceDeployV2("
                      "environmentId: $environmentId, serviceId: $serviceId) }"),
         id="railway-deploy-mutation-held"),
    case("POST", "https://backboard.railway.app/graphql/v2", "hold",
         "deploy/railway-graphql-mutations", headers=JSON,
         body=body([{"query": "query { me { id } }"},
                    {"query": "mutation { projectDelete(id: \"p\") }"}]),
         id="railway-batched-mutation-held"),
    case("POST", "https://backboard.railway.com/project/p1/environment/e1/up?serviceId=s1", "hold",
         "deploy/railway-up", headers=[("Content-Type", "multipart/form-data")], body=b"tarball",
         id="railway-up-held"),
]  # fmt: skip


@pytest.mark.parametrize("row", CASES)
def test_deploy_preset(policy: Policy, row: Row) -> None:
    check_decision(policy, row)


def test_deploy_hosts_need_each_request_inspected(policy: Policy) -> None:
    assert policy.decide_host("api.vercel.com", 443).action == "needs_request"
    assert policy.decide_host("example.com", 443).action == "allow"
