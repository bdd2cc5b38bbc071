"""Decision table for the shipped `packages` preset, loaded alone under `default: allow`.

An allow decided by a named rule is explicit, so it also flows under a user policy with
`default: hold`; cases with no rule (None) fall to the default.
"""

from __future__ import annotations

from typing import Any

import pytest

from policies.engine import Policy
from policies.request import build_request
from tests.policies.presetkit import load_preset

PRESET = "packages"


@pytest.fixture(scope="module")
def policy(tmp_path_factory: pytest.TempPathFactory) -> Policy:
    return load_preset(tmp_path_factory, PRESET)


def case(
    case_id: str, method: str, url: str, action: str, rule_name: str | None, body: bytes = b""
) -> Any:
    rule_name = f"{PRESET}/{rule_name}" if rule_name else None
    return pytest.param(method, url, body, action, rule_name, id=case_id)


CASES = [
    # Python.
    case("pip-simple-index-flows", "GET", "https://pypi.org/simple/requests/", "allow",
         "python-package-downloads"),
    case("pip-json-metadata-flows", "GET", "https://pypi.org/pypi/requests/json", "allow",
         "python-package-downloads"),
    case("pip-wheel-download-flows", "GET",
         "https://files.pythonhosted.org/packages/aa/bb/requests-2.32.3-py3-none-any.whl", "allow",
         "python-package-downloads"),
    case("pypi-upload-held", "POST", "https://upload.pypi.org/legacy/", "hold", "pypi-upload",
         b"--boundary"),
    case("testpypi-upload-held", "POST", "https://test.pypi.org/legacy/", "hold", "pypi-upload",
         b"--boundary"),
    case("pypi-post-left-to-default", "POST", "https://pypi.org/account/login/", "allow", None),
    # npm.
    case("npm-packument-flows", "GET", "https://registry.npmjs.org/react", "allow",
         "npm-package-downloads"),
    case("npm-scoped-tarball-flows", "GET",
         "https://registry.npmjs.org/@types/node/-/node-22.0.0.tgz", "allow",
         "npm-package-downloads"),
    case("yarn-registry-flows", "HEAD", "https://registry.yarnpkg.com/lodash", "allow",
         "npm-package-downloads"),
    case("npm-audit-flows", "POST", "https://registry.npmjs.org/-/npm/v1/security/advisories/bulk",
         "allow", "npm-audit", b'{"react":["18.0.0"]}'),
    case("npm-publish-held", "PUT", "https://registry.npmjs.org/@acme%2fwidget", "hold",
         "npm-publish", b'{"name":"@acme/widget"}'),
    case("npm-unpublish-held", "DELETE", "https://registry.npmjs.org/widget/-rev/3-abc", "hold",
         "npm-publish"),
    case("npm-dist-tag-held", "PUT", "https://registry.npmjs.org/-/package/widget/dist-tags/latest",
         "hold", "npm-publish", b'"1.2.3"'),
    case("github-npm-publish-held", "PUT", "https://npm.pkg.github.com/@acme%2fwidget", "hold",
         "npm-publish", b"{}"),
    # Rust.
    case("cargo-sparse-index-flows", "GET", "https://index.crates.io/se/rd/serde", "allow",
         "rust-crate-downloads"),
    case("cargo-crate-download-flows", "GET",
         "https://static.crates.io/crates/serde/serde-1.0.200.crate", "allow",
         "rust-crate-downloads"),
    case("cargo-search-flows", "GET", "https://crates.io/api/v1/crates?q=serde", "allow",
         "rust-crate-downloads"),
    case("rustup-toolchain-flows", "GET",
         "https://static.rust-lang.org/dist/channel-rust-stable.toml", "allow",
         "rust-crate-downloads"),
    case("cargo-publish-held", "PUT", "https://crates.io/api/v1/crates/new", "hold",
         "crates-publish", b"\x00\x00"),
    case("cargo-yank-held", "DELETE", "https://crates.io/api/v1/crates/widget/1.0.0/yank", "hold",
         "crates-publish"),
    # Go, Ruby, JVM, OS packages.
    case("go-proxy-flows", "GET", "https://proxy.golang.org/golang.org/x/net/@v/list", "allow",
         "go-module-downloads"),
    case("go-sumdb-flows", "GET", "https://sum.golang.org/lookup/golang.org/x/net@v0.30.0", "allow",
         "go-module-downloads"),
    case("bundler-compact-index-flows", "GET", "https://index.rubygems.org/info/rails", "allow",
         "ruby-gem-downloads"),
    case("gem-push-held", "POST", "https://rubygems.org/api/v1/gems", "hold", "rubygems-push",
         b"gem"),
    case("maven-central-download-flows", "GET",
         "https://repo.maven.apache.org/maven2/org/slf4j/slf4j-api/2.0.13/slf4j-api-2.0.13.jar",
         "allow", "jvm-artifact-downloads"),
    case("maven-central-portal-upload-held", "POST",
         "https://central.sonatype.com/api/v1/publisher/upload", "hold", "maven-central-publish",
         b"zip"),
    case("apt-debian-flows", "GET", "http://deb.debian.org/debian/dists/bookworm/InRelease",
         "allow", "os-package-downloads"),
    case("apt-ubuntu-country-mirror-flows", "GET",
         "http://us.archive.ubuntu.com/ubuntu/dists/noble/InRelease", "allow",
         "os-package-downloads"),
    case("nuget-push-held", "PUT", "https://www.nuget.org/api/v2/package", "hold", "nuget-push",
         b"nupkg"),
    # Containers.
    case("docker-hub-manifest-pull-flows", "GET",
         "https://registry-1.docker.io/v2/library/python/manifests/3.12-slim", "allow",
         "container-image-pulls"),
    case("docker-hub-token-flows", "GET",
         "https://auth.docker.io/token?service=registry.docker.io&scope=repository:library/python:pull",
         "allow", "container-image-pulls"),
    case("ghcr-blob-pull-flows", "GET", "https://ghcr.io/v2/acme/app/blobs/sha256:abc", "allow",
         "container-image-pulls"),
    case("docker-hub-blob-upload-held", "POST",
         "https://registry-1.docker.io/v2/acme/app/blobs/uploads/", "hold", "container-image-push"),
    case("ghcr-manifest-push-held", "PUT", "https://ghcr.io/v2/acme/app/manifests/latest", "hold",
         "container-image-push", b"{}"),
    case("ecr-manifest-push-held", "PUT",
         "https://123456789012.dkr.ecr.us-east-1.amazonaws.com/v2/app/manifests/v1", "hold",
         "container-image-push", b"{}"),
    case("artifact-registry-blob-patch-held", "PATCH",
         "https://us-docker.pkg.dev/v2/p/repo/app/blobs/uploads/uuid", "hold",
         "container-image-push", b"layer"),
    case("ghcr-manifest-delete-held", "DELETE", "https://ghcr.io/v2/acme/app/manifests/sha256:1",
         "hold", "container-image-push"),
    # Lookalikes and other hosts get no rule.
    case("lookalike-registry-left-to-default", "GET",
         "https://registry.npmjs.org.evil.example/react", "allow", None),
    case("unrelated-host-left-to-default", "GET", "https://example.com/", "allow", None),
]  # fmt: skip


@pytest.mark.parametrize(("method", "url", "body", "action", "rule_name"), CASES)
def test_decide(
    policy: Policy, method: str, url: str, body: bytes, action: str, rule_name: str | None
) -> None:
    decision = policy.decide(build_request(method, url, body=body))
    assert (decision.action, decision.rule) == (action, rule_name)


def test_publishing_is_critical(policy: Policy) -> None:
    decision = policy.decide(build_request("PUT", "https://crates.io/api/v1/crates/new"))
    assert decision.severity == "critical"


def test_loads_without_warnings(policy: Policy) -> None:
    assert policy.warnings == ()
