"""Decision table for the `github` preset (REST, GraphQL, uploads and github.com), loaded alone."""

from __future__ import annotations

from typing import Any

import pytest

from policies.engine import Policy
from tests.policies.presetkit import Row, case, check_decision, load_preset

PRESET = "github"
API = "https://api.github.com"
GQL = f"{API}/graphql"
JSON = ("Content-Type", "application/json")


@pytest.fixture(scope="module")
def policy(tmp_path_factory: pytest.TempPathFactory) -> Policy:
    return load_preset(tmp_path_factory, PRESET)


def gql(query: str, action: str, rule: str | None, *, id: str, **variables: object) -> Any:
    return case("POST", GQL, action, rule, json_body={"query": query, "variables": variables},
                id=id)  # fmt: skip


def g(name: str) -> str:
    return f"github/{name}"


MERGE = g("merge-pull-request")

REST_HOLDS = [
    case("PUT", f"{API}/repos/a/b/pulls/1/merge", "hold", MERGE, id="merge-pr-held"),
    case("PUT", f"{API}/repos/a/b/pulls/1/merge/", "hold", MERGE, id="merge-pr-trailing-slash-held"),
    case("PUT", f"{API}//repos/a/b/pulls/1/merge", "hold", MERGE, id="merge-pr-double-slash-held"),
    case("PUT", f"{API}/repos/a/b/pulls/1/%6Derge", "hold", MERGE, id="merge-pr-encoded-letter-held"),
    case("PUT", f"{API}/REPOS/a/b/PULLS/1/MERGE", "hold", MERGE, id="merge-pr-uppercase-held"),
    case("PUT", f"{API}/repos/a/b/pulls/9/../1/./merge", "hold", MERGE, id="merge-pr-dot-segments-held"),
    case("PUT", f"{API}/repos/a/b/pulls/1/merge;x=1", "hold", MERGE, id="merge-pr-matrix-param-held"),
    case("PUT", f"{API}/repos/a/b/pulls/1%2Fmerge", "hold", MERGE, id="merge-pr-encoded-slash-held"),
    case("PUT", "https://api.octocorp.ghe.com/repos/a/b/pulls/1/merge", "hold", MERGE,
         id="merge-pr-ghe-com-held"),
    case("POST", f"{API}/repos/a/b/merges", "hold", g("merge-branch"), id="merge-branch-held"),
    case("POST", f"{API}/repos/a/b/merge-upstream", "hold", g("merge-branch"),
         id="merge-upstream-held"),
    case("PATCH", f"{API}/repos/a/b/git/refs/heads/main", "hold", g("force-update-ref"),
         id="update-ref-held"),
    case("DELETE", f"{API}/repos/a/b/git/refs/heads/feature/x", "hold", g("delete-ref"),
         id="delete-branch-held"),
    case("DELETE", f"{API}/repos/a/b/git/refs/tags%2Fv1.0", "hold", g("delete-ref"),
         id="delete-tag-encoded-slash-held"),
    case("POST", f"{API}/repos/a/b/git/refs", "hold", g("create-ref"), id="create-ref-held"),
    case("PUT", f"{API}/repos/a/b/contents/src/app.py", "hold", g("commit-file-contents"),
         id="contents-commit-held"),
    case("POST", f"{API}/repos/a/b/branches/main/rename", "hold", g("rename-branch"),
         id="rename-branch-held"),
    case("PUT", f"{API}/repos/a/b/branches/main/protection", "hold", g("branch-protection"),
         id="branch-protection-put-held"),
    case("DELETE", f"{API}/repos/a/b/branches/release/1.x/protection/required_pull_request_reviews",
         "hold", g("branch-protection"), id="branch-protection-slashed-branch-held"),
    case("POST", f"{API}/repos/a/b/branches/main/protection/enforce_admins", "hold",
         g("branch-protection"), id="branch-protection-post-held"),
    case("PUT", f"{API}/repos/a/b/rulesets/42", "hold", g("rulesets"), id="ruleset-update-held"),
    case("POST", f"{API}/orgs/o/rulesets", "hold", g("rulesets"), id="org-ruleset-create-held"),
    case("DELETE", f"{API}/repos/a/b", "hold", g("delete-repository"), id="delete-repo-held"),
    case("DELETE", f"{API}/repos/a%2Fb/", "hold", g("delete-repository"),
         id="delete-repo-encoded-held"),
    case("POST", f"{API}/repos/a/b/transfer", "hold", g("transfer-repository"),
         id="transfer-repo-held"),
    case("PATCH", f"{API}/repos/a/b", "hold", g("repository-settings"), id="repo-settings-held"),
    case("DELETE", f"{API}/repos/a/b/vulnerability-alerts", "hold", g("security-settings"),
         id="disable-vulnerability-alerts-held"),
    case("PUT", f"{API}/repos/a/b/actions/permissions/workflow", "hold", g("actions-settings"),
         id="actions-token-permissions-held"),
    case("PUT", f"{API}/repos/a/b/actions/workflows/ci.yml/disable", "hold",
         g("actions-settings"), id="disable-workflow-held"),
    case("PATCH", f"{API}/orgs/o", "hold", g("organization-settings"), id="org-settings-held"),
    case("DELETE", f"{API}/orgs/o", "hold", g("delete-organization"), id="delete-org-held"),
    case("DELETE", f"{API}/orgs/o/packages/container/img/versions/3", "hold", g("delete-package"),
         id="delete-package-version-held"),
    case("PUT", f"{API}/repos/a/b/collaborators/eve", "hold", g("collaborators-and-teams"),
         id="add-collaborator-held"),
    case("PUT", f"{API}/orgs/o/teams/t/repos/o/b", "hold", g("collaborators-and-teams"),
         id="team-repo-permission-held"),
    case("PUT", f"{API}/orgs/o/memberships/eve", "hold", g("collaborators-and-teams"),
         id="org-membership-held"),
    case("POST", f"{API}/repos/a/b/keys", "hold", g("deploy-and-ssh-keys"),
         id="add-deploy-key-held"),
    case("POST", f"{API}/user/keys", "hold", g("deploy-and-ssh-keys"), id="add-ssh-key-held"),
    case("PUT", f"{API}/repos/a/b/actions/secrets/NPM_TOKEN", "hold", g("secrets-and-variables"),
         id="set-actions-secret-held"),
    case("POST", f"{API}/repos/a/b/actions/variables", "hold", g("secrets-and-variables"),
         id="create-actions-variable-held"),
    case("PUT", f"{API}/repos/a/b/environments/prod/secrets/KEY", "hold",
         g("secrets-and-variables"), id="set-environment-secret-held"),
    case("DELETE", f"{API}/orgs/o/actions/secrets/KEY", "hold", g("secrets-and-variables"),
         id="delete-org-secret-held"),
    case("PUT", f"{API}/repos/a/b/environments/production", "hold", g("environments"),
         id="update-environment-held"),
    case("POST", f"{API}/repos/a/b/hooks", "hold", g("webhooks"), id="create-webhook-held"),
    case("PATCH", f"{API}/orgs/o/hooks/1/config", "hold", g("webhooks"),
         id="org-webhook-config-held"),
    case("POST", f"{API}/repos/a/b/secret-scanning/push-protection-bypasses", "hold",
         g("push-protection-bypass"), id="push-protection-bypass-held"),
    case("PATCH", f"{API}/repos/a/b/secret-scanning/alerts/3", "hold",
         g("dismiss-security-alert"), id="resolve-secret-alert-held"),
    case("POST", f"{API}/repos/a/b/releases", "hold", g("release"), id="create-release-held"),
    case("PATCH", f"{API}/repos/a/b/releases/9", "hold", g("release"), id="update-release-held"),
    case("DELETE", f"{API}/repos/a/b/releases/assets/5", "hold", g("release"),
         id="delete-release-asset-held"),
    case("POST", "https://uploads.github.com/repos/a/b/releases/9/assets?name=x.tgz", "hold",
         g("release-asset-upload"), id="upload-release-asset-held"),
    case("POST", f"{API}/repos/a/b/actions/workflows/deploy.yml/dispatches", "hold",
         g("workflow-dispatch"), id="workflow-dispatch-held"),
    case("POST", f"{API}/repos/a/b/dispatches", "hold", g("workflow-dispatch"),
         id="repository-dispatch-held"),
    case("POST", f"{API}/repos/a/b/actions/runs/1/rerun-failed-jobs", "hold", g("workflow-rerun"),
         id="rerun-failed-jobs-held"),
    case("POST", f"{API}/repos/a/b/actions/jobs/2/rerun", "hold", g("workflow-rerun"),
         id="rerun-job-held"),
    case("POST", f"{API}/repos/a/b/actions/runs/1/pending_deployments", "hold",
         g("approve-run-or-deployment"), id="approve-pending-deployment-held"),
    case("DELETE", f"{API}/repos/a/b/actions/runs/1/logs", "hold", g("delete-workflow-runs"),
         id="delete-run-logs-held"),
    case("POST", f"{API}/repos/a/b/deployments", "hold", g("deployments"),
         id="create-deployment-held"),
    case("POST", f"{API}/repos/a/b/deployments/4/statuses", "hold", g("deployments"),
         id="deployment-status-held"),
    case("POST", f"{API}/repos/a/b/pages/builds", "hold", g("pages"), id="pages-build-held"),
    case("PUT", f"{API}/repositories/1296269/pulls/1/merge", "hold", g("repository-id-alias-write"),
         id="merge-pr-by-repository-id-held"),
    case("POST", "https://github.com/a/b/settings/collaborators", "hold", g("web-settings"),
         id="web-repo-settings-held"),
    case("POST", "https://github.com/settings/tokens", "hold", g("web-settings"),
         id="web-token-settings-held"),
]  # fmt: skip

GRAPHQL = [
    gql("mutation { createIssue(input: {repositoryId: \"R\", title: \"Bug\"}) { issue { url } } }",
        "allow", g("graphql-everyday-mutation"), id="graphql-create-issue-flows"),
    gql("mutation PullRequestCreate($input: CreatePullRequestInput!) {\n"
        "  createPullRequest(input: $input) { pullRequest { id url } }\n}",
        "allow", g("graphql-everyday-mutation"), id="graphql-create-pr-flows",
        input={"title": "Fix", "baseRefName": "main", "headRefName": "fix"}),
    gql("mutation($id: ID!, $logins: [String!]!) {\n"
        "  updatePullRequest(input: {pullRequestId: $id, title: \"t\"}) { clientMutationId }\n"
        "  requestReviewsByLogin(input: {pullRequestId: $id, userLogins: $logins}) {\n"
        "    clientMutationId }\n}",
        "allow", g("graphql-everyday-mutation"), id="graphql-pr-edit-flows"),
    gql("mutation { addPullRequestReview(input: {pullRequestId: \"P\", event: COMMENT}) {"
        " clientMutationId } }",
        "allow", g("graphql-everyday-mutation"), id="graphql-review-flows"),
    gql("query { viewer { login repositories(first: 5) { nodes { name } } } }",
        "allow", g("graphql-query"), id="graphql-query-flows"),
    gql("mutation { mergePullRequest(input: {pullRequestId: \"P\"}) { clientMutationId } }",
        "hold", g("graphql-merge-mutation"), id="graphql-merge-pr-held"),
    gql("mutation($id: ID!) { enablePullRequestAutoMerge(input: {pullRequestId: $id}) {"
        " clientMutationId } }",
        "hold", g("graphql-merge-mutation"), id="graphql-auto-merge-held"),
    gql("mutation { enqueuePullRequest(input: {pullRequestId: \"P\"}) { clientMutationId } }",
        "hold", g("graphql-merge-mutation"), id="graphql-merge-queue-held"),
    gql("mutation { createIssue(input: $a) { issue { id } }\n"
        "  mergePullRequest(input: $b) { clientMutationId } }",
        "hold", g("graphql-merge-mutation"), id="graphql-merge-smuggled-beside-allowed-held"),
    gql("mutation { x: mergePullRequest , (input: {pullRequestId: \"P\"}) { clientMutationId } }",
        "hold", g("graphql-merge-mutation"), id="graphql-merge-alias-and-comma-held"),
    gql("mutation { createIssue(input: $a) { issue { id } } }\n"
        "mutation Other { mergePullRequest # sneaky\n (input: $b) { clientMutationId } }",
        "hold", g("graphql-merge-mutation"), id="graphql-merge-second-operation-held"),
    gql("mutation { updateBranchProtectionRule(input: {branchProtectionRuleId: \"B\"}) {"
        " clientMutationId } }",
        "hold", g("graphql-protection-mutation"), id="graphql-branch-protection-held"),
    gql("query A { viewer { login } }\nmutation B { deleteRef(input: {refId: \"R\"}) {"
        " clientMutationId } }",
        "hold", g("graphql-destructive-mutation"), id="graphql-delete-ref-after-query-held"),
    gql("# starring\nmutation { addStar(input: {starrableId: \"S\"}) { clientMutationId } }",
        "hold", g("graphql-mutation"), id="graphql-unlisted-mutation-held"),
    gql("mutation { createIssue(input: $a) { issue { labels(first: 3) { nodes { name } } } } }",
        "hold", g("graphql-mutation"), id="graphql-allowed-with-field-arguments-held"),
    case("POST", GQL, "hold", g("graphql-merge-mutation"),
         body=b'{"query": "mutation { merge\\u0050ullRequest(input: {}) { clientMutationId } }"}',
         headers=(JSON,), id="graphql-json-unicode-escape-held"),
    case("POST", GQL, "hold", g("graphql-unreadable"), headers=(JSON,),
         body=b'{"query": "query { viewer { login } }", "query": "mutation { deleteRef }"}',
         id="graphql-duplicate-keys-held"),
    case("POST", GQL, "hold", g("graphql-unreadable"),
         body=b"mutation { mergePullRequest(input: {}) { clientMutationId } }",
         id="graphql-not-json-held"),
]  # fmt: skip

FLOWS = [
    case("GET", f"{API}/repos/a/b", "allow", g("read-api"), id="read-repo-flows"),
    case("GET", f"{API}/repos/a/b/pulls/1/merge", "allow", g("read-api"),
         id="check-merged-flows"),
    case("GET", f"{API}/repos/a/b/commits/abc/check-runs", "allow", g("read-api"),
         id="read-check-runs-flows"),
    case("GET", f"{API}/repos/a/b/actions/secrets", "allow", g("read-api"),
         id="list-secret-names-flows"),
    case("POST", f"{API}/repos/a/b/issues", "allow", g("issues-and-comments"),
         json_body={"title": "Bug"}, id="create-issue-flows"),
    case("POST", f"{API}/repos/a/b/issues/3/comments", "allow", g("issues-and-comments"),
         json_body={"body": "Done"}, id="comment-flows"),
    case("POST", f"{API}/repos/a/b/labels", "allow", g("issues-and-comments"),
         json_body={"name": "bug"}, id="create-label-flows"),
    case("POST", f"{API}/repos/a/b/pulls", "allow", g("pull-requests-and-reviews"),
         json_body={"title": "Fix", "head": "fix", "base": "main"}, id="create-pr-flows"),
    case("PATCH", f"{API}/repos/a/b/pulls/3", "allow", g("pull-requests-and-reviews"),
         json_body={"body": "Updated"}, id="edit-pr-flows"),
    case("POST", f"{API}/repos/a/b/pulls/3/reviews", "allow", g("pull-requests-and-reviews"),
         json_body={"event": "COMMENT", "body": "nit"}, id="review-flows"),
    case("PUT", f"{API}/repos/a/b/pulls/3/update-branch", "allow", g("pull-requests-and-reviews"),
         id="update-pr-branch-flows"),
    case("POST", f"{API}/repos/a/b/releases/generate-notes", "allow", None,
         id="generate-release-notes-left-to-default"),
    case("POST", f"{API}/repos/a/b/check-runs", "allow", None, id="create-check-run-default"),
    case("GET", "https://github.com/a/b/releases/download/v1/tool.tgz", "allow",
         g("web-downloads"), id="release-download-flows"),
    case("GET", "https://codeload.github.com/a/b/tar.gz/main", "allow", g("web-downloads"),
         id="codeload-flows"),
    case("POST", "https://github.com/login/device/code", "allow", g("device-login"),
         id="gh-auth-device-flow-flows"),
    case("POST", "https://github.com/a/b.git/git-receive-pack", "allow", None,
         id="git-push-left-to-git-preset"),
]  # fmt: skip


@pytest.mark.parametrize("row", REST_HOLDS + GRAPHQL + FLOWS)
def test_decision(policy: Policy, row: Row) -> None:
    check_decision(policy, row)


def test_preset_loads_without_warnings(policy: Policy) -> None:
    assert policy.warnings == ()
