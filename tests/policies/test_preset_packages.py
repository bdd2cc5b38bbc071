"""Decision table for the shipped `packages` preset, loaded alone under `default: allow`.

An allow decided by a named rule is explicit, so it also flows under a user policy with
`default: hold`; cases with no rule (None) fall to the default.
"""

from __future__ import annotations

import pytest

from policies.engine import Policy
from policies.request import build_request
from tests.policies.presetkit import Row, case, check_decision, load_preset

PRESET = "packages"


@pytest.fixture(scope="module")
def policy(tmp_path_factory: pytest.TempPathFactory) -> Policy:
    return load_preset(tmp_path_factory, PRESET)


CASES = [
    # Python.
    case("GET", "https://pypi.org/simple/requests/", "allow", "packages/python-package-downloads",
         id="pip-simple-index-flows"),
    case("GET", "https://pypi.org/pypi/requests/json", "allow", "packages/python-package-downloads",
         id="pip-json-metadata-flows"),
    case("GET", "https://files.pythonhosted.org/packages/aa/bb/requests-2.32.3-py3-none-any.whl",
         "allow", "packages/python-package-downloads", id="pip-wheel-download-flows"),
    case("POST", "https://upload.pypi.org/legacy/", "hold", "packages/pypi-upload",
         body=b"--boundary", id="pypi-upload-held"),
    case("POST", "https://test.pypi.org/legacy/", "hold", "packages/pypi-upload",
         body=b"--boundary", id="testpypi-upload-held"),
    case("POST", "https://pypi.org/account/login/", "allow", None, id="pypi-post-left-to-default"),
    # npm.
    case("GET", "https://registry.npmjs.org/react", "allow", "packages/npm-package-downloads",
         id="npm-packument-flows"),
    case("GET", "https://registry.npmjs.org/@types/node/-/node-22.0.0.tgz", "allow",
         "packages/npm-package-downloads", id="npm-scoped-tarball-flows"),
    case("HEAD", "https://registry.yarnpkg.com/lodash", "allow", "packages/npm-package-downloads",
         id="yarn-registry-flows"),
    case("POST", "https://registry.npmjs.org/-/npm/v1/security/advisories/bulk", "allow",
         "packages/npm-audit", body=b'{"react":["18.0.0"]}', id="npm-audit-flows"),
    case("PUT", "https://registry.npmjs.org/@acme%2fwidget", "hold", "packages/npm-publish",
         body=b'{"name":"@acme/widget"}', id="npm-publish-held"),
    case("DELETE", "https://registry.npmjs.org/widget/-rev/3-abc", "hold", "packages/npm-publish",
         id="npm-unpublish-held"),
    case("PUT", "https://registry.npmjs.org/-/package/widget/dist-tags/latest", "hold",
         "packages/npm-publish", body=b'"1.2.3"', id="npm-dist-tag-held"),
    case("PUT", "https://npm.pkg.github.com/@acme%2fwidget", "hold", "packages/npm-publish",
         body=b"{}", id="github-npm-publish-held"),
    # Rust.
    case("GET", "https://index.crates.io/se/rd/serde", "allow", "packages/rust-crate-downloads",
         id="cargo-sparse-index-flows"),
    case("GET", "https://static.crates.io/crates/serde/serde-1.0.200.crate", "allow",
         "packages/rust-crate-downloads", id="cargo-crate-download-flows"),
    case("GET", "https://crates.io/api/v1/crates?q=serde", "allow", "packages/rust-crate-downloads",
         id="cargo-search-flows"),
    case("GET", "https://static.rust-lang.org/dist/channel-rust-stable.toml", "allow",
         "packages/rust-crate-downloads", id="rustup-toolchain-flows"),
    case("PUT", "https://crates.io/api/v1/crates/new", "hold", "packages/crates-publish",
         body=b"\x00\x00", id="cargo-publish-held"),
    case("DELETE", "https://crates.io/api/v1/crates/widget/1.0.0/yank", "hold",
         "packages/crates-publish", id="cargo-yank-held"),
    # Go, Ruby, JVM, OS packages.
    case("GET", "https://proxy.golang.org/golang.org/x/net/@v/list", "allow",
         "packages/go-module-downloads", id="go-proxy-flows"),
    case("GET", "https://sum.golang.org/lookup/golang.org/x/net@v0.30.0", "allow",
         "packages/go-module-downloads", id="go-sumdb-flows"),
    case("GET", "https://index.rubygems.org/info/rails", "allow", "packages/ruby-gem-downloads",
         id="bundler-compact-index-flows"),
    case("POST", "https://rubygems.org/api/v1/gems", "hold", "packages/rubygems-push", body=b"gem",
         id="gem-push-held"),
    case("GET",
         "https://repo.maven.apache.org/maven2/org/slf4j/slf4j-api/2.0.13/slf4j-api-2.0.13.jar",
         "allow", "packages/jvm-artifact-downloads", id="maven-central-download-flows"),
    case("POST", "https://central.sonatype.com/api/v1/publisher/upload", "hold",
         "packages/maven-central-publish", body=b"zip", id="maven-central-portal-upload-held"),
    case("GET", "http://deb.debian.org/debian/dists/bookworm/InRelease", "allow",
         "packages/os-package-downloads", id="apt-debian-flows"),
    case("GET", "http://us.archive.ubuntu.com/ubuntu/dists/noble/InRelease", "allow",
         "packages/os-package-downloads", id="apt-ubuntu-country-mirror-flows"),
    case("PUT", "https://www.nuget.org/api/v2/package", "hold", "packages/nuget-push",
         body=b"nupkg", id="nuget-push-held"),
    # Containers.
    case("GET", "https://registry-1.docker.io/v2/library/python/manifests/3.12-slim", "allow",
         "packages/container-image-pulls", id="docker-hub-manifest-pull-flows"),
    case("GET",
         "https://auth.docker.io/token?service=registry.docker.io&scope=repository:library/python:pull",
         "allow", "packages/container-image-pulls", id="docker-hub-token-flows"),
    case("GET", "https://ghcr.io/v2/acme/app/blobs/sha256:abc", "allow",
         "packages/container-image-pulls", id="ghcr-blob-pull-flows"),
    case("POST", "https://registry-1.docker.io/v2/acme/app/blobs/uploads/", "hold",
         "packages/container-image-push", id="docker-hub-blob-upload-held"),
    case("PUT", "https://ghcr.io/v2/acme/app/manifests/latest", "hold",
         "packages/container-image-push", body=b"{}", id="ghcr-manifest-push-held"),
    case("PUT", "https://123456789012.dkr.ecr.us-east-1.amazonaws.com/v2/app/manifests/v1", "hold",
         "packages/container-image-push", body=b"{}", id="ecr-manifest-push-held"),
    case("PATCH", "https://us-docker.pkg.dev/v2/p/repo/app/blobs/uploads/uuid", "hold",
         "packages/container-image-push", body=b"layer", id="artifact-registry-blob-patch-held"),
    case("DELETE", "https://ghcr.io/v2/acme/app/manifests/sha256:1", "hold",
         "packages/container-image-push", id="ghcr-manifest-delete-held"),
    # Lookalikes and other hosts get no rule.
    case("GET", "https://registry.npmjs.org.evil.example/react", "allow", None,
         id="lookalike-registry-left-to-default"),
    case("GET", "https://example.com/", "allow", None, id="unrelated-host-left-to-default"),
]  # fmt: skip


@pytest.mark.parametrize("row", CASES)
def test_decide(policy: Policy, row: Row) -> None:
    check_decision(policy, row)


def test_publishing_is_critical(policy: Policy) -> None:
    decision = policy.decide(build_request("PUT", "https://crates.io/api/v1/crates/new"))
    assert decision.severity == "critical"


def test_loads_without_warnings(policy: Policy) -> None:
    assert policy.warnings == ()
