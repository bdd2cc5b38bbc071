"""The data directory: location, modes, the run lock, api.json and mitmproxy's CA."""

from __future__ import annotations

import os
import ssl
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from proxy.datadir import (
    AlreadyRunning,
    DataDir,
    acquire_lock,
    bundle_contains,
    ensure_ca,
    pem_certificates,
    read_api_json,
    resolve_data_dir,
    write_api_json,
    write_ca_bundle,
)

ROOT = Path(__file__).parents[2]


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_resolve_prefers_argument_then_env_then_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INTERLOCK_HOME", str(tmp_path / "from-env"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert resolve_data_dir(tmp_path / "arg") == tmp_path / "arg"
    assert resolve_data_dir(None) == tmp_path / "from-env"
    monkeypatch.delenv("INTERLOCK_HOME")
    assert resolve_data_dir(None) == tmp_path / "home" / ".interlock"
    for made in ("arg", "from-env", "home/.interlock"):
        assert mode(tmp_path / made) == 0o700


def test_resolve_leaves_an_existing_directory_alone(tmp_path: Path) -> None:
    tmp_path.chmod(0o755)
    assert resolve_data_dir(str(tmp_path)) == tmp_path
    assert mode(tmp_path) == 0o755


def test_paths() -> None:
    d = DataDir(Path("/x"))
    assert (d.db, d.tokens, d.api_json, d.operator_token, d.lock) == (
        Path("/x/audit.db"), Path("/x/tokens.json"), Path("/x/api.json"),
        Path("/x/operator.token"), Path("/x/run.lock"),
    )  # fmt: skip
    assert d.ca_cert == Path("/x/mitmproxy/mitmproxy-ca-cert.pem")
    assert d.ca_key == Path("/x/mitmproxy/mitmproxy-ca.pem")


HOLDER = textwrap.dedent("""
    import sys
    from pathlib import Path
    from proxy.datadir import DataDir, acquire_lock
    lock = acquire_lock(DataDir(Path(sys.argv[1])))
    print("locked", flush=True)
    sys.stdin.read()
""")


def test_lock_refuses_a_second_holder_and_names_its_pid(tmp_path: Path) -> None:
    d = DataDir(resolve_data_dir(tmp_path))
    with subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(tmp_path)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT,
    ) as holder:  # fmt: skip
        assert holder.stdin is not None and holder.stdout is not None
        assert holder.stdout.readline() == "locked\n"
        with pytest.raises(AlreadyRunning) as caught:
            acquire_lock(d)
        assert caught.value.pid == holder.pid
        assert str(tmp_path) in str(caught.value) and f"pid {holder.pid}" in str(caught.value)
        holder.stdin.close()  # the holder exits, releasing the lock
    with acquire_lock(d) as lock:  # the holder exited, so the lock is free again
        assert d.lock.read_text() == f"{os.getpid()}\n"
        assert mode(d.lock) == 0o600
    lock.release()  # idempotent


def test_lock_is_exclusive_within_one_process_too(tmp_path: Path) -> None:
    d = DataDir(tmp_path)
    first = acquire_lock(d)
    with pytest.raises(AlreadyRunning):
        acquire_lock(d)
    first.release()
    acquire_lock(d).release()


def test_api_json_round_trip(tmp_path: Path) -> None:
    d = DataDir(tmp_path)
    assert read_api_json(d) is None
    write_api_json(d, "http://127.0.0.1:8081", 1234, proxy="http://127.0.0.1:8080")
    assert read_api_json(d) == {
        "url": "http://127.0.0.1:8081", "pid": 1234, "proxy": "http://127.0.0.1:8080",
    }  # fmt: skip
    assert mode(d.api_json) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["api.json"]  # no temporary files left
    d.api_json.write_text("{broken")
    assert read_api_json(d) is None


def test_ensure_ca_creates_once_and_keeps_the_key_private(tmp_path: Path) -> None:
    d = DataDir(resolve_data_dir(tmp_path / "home"))
    cert = ensure_ca(d)
    assert cert == d.ca_cert
    assert "PRIVATE KEY" not in cert.read_text()
    assert "PRIVATE KEY" in d.ca_key.read_text()
    assert mode(d.ca_key) == 0o600 and mode(d.confdir) == 0o700
    first = cert.read_bytes()
    assert ensure_ca(d).read_bytes() == first
    cert.unlink()  # the public certificate is rebuilt from the existing key
    assert ensure_ca(d).read_bytes() == first
    ssl.create_default_context(cafile=str(cert))


def test_bundle_has_system_roots_and_the_ca_without_repeats(tmp_path: Path) -> None:
    import certifi

    d = DataDir(tmp_path)
    cert = ensure_ca(d)
    extra = tmp_path / "system.pem"
    certifi_roots = pem_certificates(Path(certifi.where()).read_text())
    extra.write_text(Path(certifi.where()).read_text() + cert.read_text())  # all repeats
    bundle = tmp_path / "bundle.pem"
    roots, ours = write_ca_bundle(cert, bundle, system_bundles=[extra])
    assert (roots, ours) == (len(set(certifi_roots)), 1)
    found = pem_certificates(bundle.read_text())
    assert len(found) == len(set(found)) == roots + 1
    assert certifi_roots[0] in found and bundle_contains(bundle, cert)
    context = ssl.create_default_context(cafile=str(bundle))
    assert len(context.get_ca_certs()) == roots + 1
