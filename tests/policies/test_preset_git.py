"""Decision table for the `git` preset (smart HTTP and Git LFS on any host), loaded on its own."""

from __future__ import annotations

import pytest

from policies.engine import Policy
from tests.policies.presetkit import Row, case, check_decision, load_preset

PRESET = "git"
UPLOAD_PACK = ("Content-Type", "application/x-git-upload-pack-request")
LFS_JSON = ("Content-Type", "application/vnd.git-lfs+json")


@pytest.fixture(scope="module")
def policy(tmp_path_factory: pytest.TempPathFactory) -> Policy:
    return load_preset(tmp_path_factory, PRESET)


def lfs(operation: str) -> dict[str, object]:
    return {"operation": operation, "transfers": ["basic"], "objects": [{"oid": "ab12", "size": 9}]}


CASES = [
    # Pushes wait, on any host.
    case("POST", "https://github.com/a/b.git/git-receive-pack", "hold", "git/push",
         id="push-github-held"),
    case("GET", "https://github.com/a/b.git/info/refs?service=git-receive-pack", "hold",
         "git/push-discovery", id="push-discovery-held"),
    case("POST", "https://git.example.com/group/sub/proj.git/git-receive-pack", "hold", "git/push",
         id="push-self-hosted-nested-held"),
    case("POST", "http://10.1.2.3:8080/repo/git-receive-pack", "hold", "git/push",
         id="push-ip-host-held"),
    case("POST", "https://host.example/git-receive-pack", "hold", "git/push",
         id="push-repo-at-root-held"),
    case("POST", "https://github.com/a/b.git/GIT-RECEIVE-PACK", "hold", "git/push",
         id="push-uppercase-held"),
    case("POST", "https://github.com/a/b.git/git-%72eceive-pack", "hold", "git/push",
         id="push-percent-encoded-held"),
    case("POST", "https://github.com//a/b.git//git-receive-pack/", "hold", "git/push",
         id="push-double-slash-trailing-slash-held"),
    case("POST", "https://github.com/a/b.git/x/../git-receive-pack;v=1", "hold", "git/push",
         id="push-dot-segment-param-held"),
    case("GET", "https://github.com/a/b.git/info/refs?service=git-upload-pack"
         "&service=git-receive-pack", "hold", "git/push-discovery",
         id="push-discovery-repeated-param-held"),
    # Fetch and clone flow.
    case("GET", "https://github.com/a/b.git/info/refs?service=git-upload-pack", "allow",
         "git/fetch-discovery", id="fetch-discovery-flows"),
    case("POST", "https://github.com/a/b.git/git-upload-pack", "allow", "git/fetch",
         headers=(UPLOAD_PACK,), id="fetch-flows"),
    case("POST", "https://git.example.com/group/sub/proj/git-upload-pack", "allow", "git/fetch",
         headers=(UPLOAD_PACK,), id="fetch-self-hosted-flows"),
    case("POST", "https://github.com/a/b.git/git-upload-pack", "allow", None,
         id="fetch-without-content-type-left-to-default"),
    case("GET", "https://github.com/a/b.git/info/refs", "allow", None,
         id="dumb-http-refs-left-to-default"),
    # Git LFS: uploads wait, downloads flow, unreadable batch requests wait.
    case("POST", "https://github.com/a/b.git/info/lfs/objects/batch", "hold", "git/lfs-upload",
         headers=(LFS_JSON,), json_body=lfs("upload"), id="lfs-upload-held"),
    case("POST", "https://lfs.example.com/info/lfs/objects/batch", "hold", "git/lfs-upload",
         headers=(LFS_JSON,), json_body=lfs("upload"), id="lfs-upload-at-root-held"),
    case("POST", "https://github.com/a/b.git/info/lfs/objects/batch", "hold", "git/lfs-upload",
         headers=(LFS_JSON,), body=b"operation=download", id="lfs-unreadable-body-held"),
    case("POST", "https://github.com/a/b.git/info/LFS/objects/%62atch", "hold", "git/lfs-upload",
         headers=(LFS_JSON,), json_body=lfs("upload"), id="lfs-upload-path-variant-held"),
    case("POST", "https://github.com/a/b.git/info/lfs/objects/batch", "allow", "git/lfs-download",
         headers=(LFS_JSON,), json_body=lfs("download"), id="lfs-download-flows"),
]  # fmt: skip


@pytest.mark.parametrize("row", CASES)
def test_decision(policy: Policy, row: Row) -> None:
    check_decision(policy, row)


def test_preset_loads_without_warnings(policy: Policy) -> None:
    assert policy.warnings == ()
