"""Decision table for the `gitlab` preset (gitlab.com REST and GraphQL), loaded on its own."""

from __future__ import annotations

import pytest

from policies.engine import Policy
from tests.policies.presetkit import Row, case, check_decision, load_preset

PRESET = "gitlab"
API = "https://gitlab.com/api/v4"
P = f"{API}/projects/group%2Fsub%2Fproject"  # a project addressed by its URL-encoded path
JSON = ("Content-Type", "application/json")
FORM = ("Content-Type", "application/x-www-form-urlencoded")


@pytest.fixture(scope="module")
def policy(tmp_path_factory: pytest.TempPathFactory) -> Policy:
    return load_preset(tmp_path_factory, PRESET)


def g(name: str) -> str:
    return f"gitlab/{name}"


MERGE = g("merge-merge-request")
QUICK = g("merge-quick-action")
MULTIPART = (
    b'--XyZ\r\nContent-Disposition: form-data; name="body"\r\n\r\nShip it\r\n/merge\r\n--XyZ--\r\n'
)

HOLDS = [
    case("PUT", f"{API}/projects/42/merge_requests/7/merge", "hold", MERGE, id="merge-mr-held"),
    case("PUT", f"{P}/merge_requests/7/merge", "hold", MERGE, id="merge-mr-encoded-path-held"),
    case("PUT", f"{API}/projects/group/sub/project/merge_requests/7/merge", "hold", MERGE,
         id="merge-mr-decoded-path-held"),
    case("PUT", f"{API}/projects/group%252Fproject/merge_requests/7/merge/", "hold", MERGE,
         id="merge-mr-double-encoded-trailing-slash-held"),
    case("PUT", "https://gitlab.com//api/v4/projects/42/merge_requests/7/%6Derge", "hold", MERGE,
         id="merge-mr-double-slash-encoded-letter-held"),
    case("PUT", f"{API}/PROJECTS/42/MERGE_REQUESTS/7/MERGE", "hold", MERGE,
         id="merge-mr-uppercase-held"),
    case("POST", f"{P}/merge_trains/merge_requests/7", "hold", MERGE, id="merge-train-held"),
    case("POST", f"{P}/merge_requests/7/notes", "hold", QUICK,
         json_body={"body": "LGTM\n/merge"}, id="quick-action-merge-json-note-held"),
    case("POST", f"{P}/merge_requests/7/notes", "hold", QUICK, headers=(FORM,),
         body=b"body=LGTM%0A%2Fmerge", id="quick-action-merge-form-note-held"),
    case("POST", f"{P}/merge_requests/7/notes?body=%2Fmerge", "hold", QUICK,
         id="quick-action-merge-query-param-held"),
    case("POST", f"{P}/merge_requests/7/discussions", "hold", QUICK,
         headers=(("Content-Type", "multipart/form-data; boundary=XyZ"),), body=MULTIPART,
         id="quick-action-merge-multipart-held"),
    case("PUT", f"{P}/merge_requests/7", "hold", QUICK,
         json_body={"description": "Fixes #3\n  /merge"}, id="quick-action-merge-description-held"),
    case("POST", f"{P}/merge_requests/7/notes", "hold", QUICK, headers=(JSON,),
         body=b'{"body": "\\u002fmerge"}', id="quick-action-merge-json-escape-held"),
    case("POST", f"{P}/repository/commits", "hold", g("commit-via-api"),
         json_body={"branch": "main", "actions": []}, id="commit-via-api-held"),
    case("PUT", f"{P}/repository/files/src%2Fmain.py", "hold", g("commit-via-api"),
         id="update-file-held"),
    case("DELETE", f"{P}/repository/branches/feature%2Fx", "hold", g("delete-branch"),
         id="delete-branch-held"),
    case("POST", f"{P}/repository/branches?branch=x&ref=main", "hold", g("create-branch"),
         id="create-branch-held"),
    case("POST", f"{P}/repository/tags", "hold", g("tags"), id="create-tag-held"),
    case("POST", f"{P}/releases", "hold", g("release"), id="create-release-held"),
    case("DELETE", f"{P}/releases/v1.0", "hold", g("release"), id="delete-release-held"),
    case("POST", f"{P}/releases/v1.0/assets/links", "hold", g("release"),
         id="release-asset-link-held"),
    case("DELETE", f"{P}/protected_branches/main", "hold", g("protected-branches-and-tags"),
         id="unprotect-branch-held"),
    case("POST", f"{P}/protected_tags", "hold", g("protected-branches-and-tags"),
         id="protect-tag-held"),
    case("PUT", f"{P}/approval_rules/3", "hold", g("protected-branches-and-tags"),
         id="approval-rule-change-held"),
    case("POST", f"{P}/protected_environments", "hold", g("protected-environments"),
         id="protected-environment-held"),
    case("DELETE", P, "hold", g("delete-project-or-group"), id="delete-project-held"),
    case("DELETE", f"{API}/projects/42/", "hold", g("delete-project-or-group"),
         id="delete-project-trailing-slash-held"),
    case("DELETE", f"{API}/groups/my-group", "hold", g("delete-project-or-group"),
         id="delete-group-held"),
    case("PUT", f"{P}/transfer", "hold", g("transfer-project-or-group"), id="transfer-held"),
    case("PUT", P, "hold", g("project-settings"), json_body={"visibility": "public"},
         id="project-settings-held"),
    case("POST", f"{P}/archive", "hold", g("project-settings"), id="archive-project-held"),
    case("GET", f"{P}/variables", "hold", g("ci-variables"), id="read-ci-variables-held"),
    case("GET", f"{API}/groups/my-group/variables/DEPLOY_TOKEN", "hold", g("ci-variables"),
         id="read-group-variable-held"),
    case("POST", f"{P}/variables", "hold", g("ci-variables"), id="create-ci-variable-held"),
    case("GET", f"{P}/secure_files/3/download", "hold", g("ci-variables"),
         id="download-secure-file-held"),
    case("POST", f"{P}/deploy_keys", "hold", g("deploy-keys-and-tokens"),
         id="add-deploy-key-held"),
    case("POST", f"{P}/access_tokens", "hold", g("deploy-keys-and-tokens"),
         id="create-project-token-held"),
    case("POST", f"{API}/personal_access_tokens/self/rotate", "hold",
         g("deploy-keys-and-tokens"), id="rotate-own-token-held"),
    case("POST", f"{P}/members", "hold", g("members-and-sharing"), id="add-member-held"),
    case("POST", f"{P}/share", "hold", g("members-and-sharing"), id="share-with-group-held"),
    case("POST", f"{P}/hooks", "hold", g("webhooks-and-integrations"), id="add-webhook-held"),
    case("POST", f"{P}/pipeline?ref=main", "hold", g("run-pipeline"), id="create-pipeline-held"),
    case("POST", f"{P}/ref/main/trigger/pipeline?token=t", "hold", g("run-pipeline"),
         id="trigger-pipeline-by-ref-held"),
    case("POST", f"{P}/jobs/5/play", "hold", g("run-pipeline"), id="play-manual-job-held"),
    case("POST", f"{P}/pipelines/3/retry", "hold", g("run-pipeline"), id="retry-pipeline-held"),
    case("POST", f"{P}/deployments", "hold", g("deployments-and-environments"),
         id="create-deployment-held"),
    case("POST", f"{P}/environments/2/stop", "hold", g("deployments-and-environments"),
         id="stop-environment-held"),
    case("DELETE", f"{P}/pipelines/3", "hold", g("erase-ci-history"), id="delete-pipeline-held"),
    case("DELETE", f"{P}/packages/4", "hold", g("delete-packages-and-images"),
         id="delete-package-held"),
    case("POST", "https://gitlab.com/api/graphql", "hold", g("graphql-mutation"),
         json_body={"query": "mutation { mergeRequestAccept(input: {projectPath: \"g/p\", "
                             "iid: \"7\"}) { errors } }"},
         id="graphql-merge-held"),
    case("POST", "https://gitlab.com/api/graphql", "hold", g("graphql-mutation"),
         body=b"not json", id="graphql-unreadable-body-held"),
]  # fmt: skip

FLOWS = [
    case("GET", f"{P}/merge_requests/7", "allow", g("read-api"), id="read-mr-flows"),
    case("GET", f"{P}/pipelines?ref=main", "allow", g("read-api"), id="read-pipelines-flows"),
    case("GET", f"{P}/repository/files/src%2Fvariables%2Findex.ts?ref=main", "allow",
         g("read-api"), id="read-file-in-variables-folder-flows"),
    case("GET", f"{P}/jobs/5/trace", "allow", g("read-api"), id="read-job-log-flows"),
    case("POST", f"{P}/issues", "allow", g("issues-and-notes"), json_body={"title": "Bug"},
         id="create-issue-flows"),
    case("POST", f"{P}/issues/3/notes", "allow", g("issues-and-notes"),
         json_body={"body": "Repro attached"}, id="issue-note-flows"),
    case("POST", f"{P}/merge_requests", "allow", g("merge-requests-and-reviews"),
         json_body={"source_branch": "fix", "target_branch": "main", "title": "Fix"},
         id="create-mr-flows"),
    case("PUT", f"{P}/merge_requests/7", "allow", g("merge-requests-and-reviews"),
         json_body={"title": "Fix the bug"}, id="edit-mr-flows"),
    case("POST", f"{P}/merge_requests/7/notes", "allow", g("merge-requests-and-reviews"),
         json_body={"body": "Not ready to /merge yet"}, id="mr-note-mentioning-merge-flows"),
    case("POST", f"{P}/merge_requests/7/notes", "allow", g("merge-requests-and-reviews"),
         headers=(FORM,), body=b"body=Looks+good", id="mr-form-note-flows"),
    case("POST", f"{P}/merge_requests/7/approve", "allow", g("merge-requests-and-reviews"),
         id="approve-mr-flows"),
    case("POST", "https://gitlab.com/api/graphql", "allow", g("graphql-query"),
         json_body={"query": "query { currentUser { username } }"}, id="graphql-query-flows"),
    case("PUT", "https://gitlab.example.com/api/v4/projects/1/merge_requests/7/merge", "allow",
         None, id="self-managed-host-not-covered"),
]  # fmt: skip


@pytest.mark.parametrize("row", HOLDS + FLOWS)
def test_decision(policy: Policy, row: Row) -> None:
    check_decision(policy, row)


def test_preset_loads_without_warnings(policy: Policy) -> None:
    assert policy.warnings == ()
