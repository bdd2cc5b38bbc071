"""Where Interlock keeps its state: audit database, tokens, mitmproxy's CA, and the run lock."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import ssl
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

HOME_ENV = "INTERLOCK_HOME"
DEFAULT_HOME = Path("~/.interlock")
# mitmproxy names its CA files after this basename (`CONF_BASENAME` in mitmproxy/options.py).
CA_BASENAME = "mitmproxy"
CA_KEY_SIZE = 2048
# System trust stores that may hold roots certifi lacks (e.g. a company's own CA).
SYSTEM_BUNDLES = (
    Path("/etc/ssl/certs/ca-certificates.crt"),  # Debian, Ubuntu, Alpine
    Path("/etc/pki/tls/certs/ca-bundle.crt"),  # Fedora, RHEL
)
_PEM_CERT = re.compile(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.DOTALL)


def resolve_data_dir(arg: str | Path | None) -> Path:
    """`--data-dir`, else `$INTERLOCK_HOME`, else `~/.interlock`; created with mode 0700 if missing.

    An existing directory keeps its permissions: `--data-dir .` must not chmod the user's cwd.
    """
    raw = arg if arg not in (None, "") else os.environ.get(HOME_ENV) or DEFAULT_HOME
    path = Path(raw).expanduser().resolve()
    if not path.is_dir():
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        path.chmod(0o700)  # mkdir's mode is filtered by the umask
    return path


@dataclass(frozen=True)
class DataDir:
    """The files under one data directory."""

    root: Path

    @property
    def db(self) -> Path:
        return self.root / "audit.db"

    @property
    def tokens(self) -> Path:
        return self.root / "tokens.json"

    @property
    def confdir(self) -> Path:
        """mitmproxy's `confdir`: its CA lives here."""
        return self.root / "mitmproxy"

    @property
    def ca_cert(self) -> Path:
        """The CA's public certificate, the only CA file an agent may see."""
        return self.confdir / f"{CA_BASENAME}-ca-cert.pem"

    @property
    def ca_key(self) -> Path:
        """The CA's private key (with its certificate); it must never reach an agent."""
        return self.confdir / f"{CA_BASENAME}-ca.pem"

    @property
    def ca_bundle(self) -> Path:
        """Where `interlock env` writes system roots plus the Interlock CA unless told otherwise."""
        return self.root / "ca-bundle.pem"

    @property
    def api_json(self) -> Path:
        return self.root / "api.json"

    @property
    def operator_token(self) -> Path:
        return self.root / "operator.token"

    @property
    def lock(self) -> Path:
        return self.root / "run.lock"


def atomic_write(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Write `data` to a temporary file beside `path`, then rename it over `path`."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as file:
            os.fchmod(file.fileno(), mode)
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


class AlreadyRunning(Exception):
    """Another process holds the data directory's run lock."""

    def __init__(self, root: Path, pid: int | None) -> None:
        self.root = root
        self.pid = pid
        who = f"pid {pid}" if pid is not None else "pid unknown"
        super().__init__(
            f"Interlock is already running with data dir {root} ({who}); "
            "stop it first or pass a different --data-dir"
        )


class RunLock:
    """An exclusive `flock` on `run.lock`, held until `release()` or process exit."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        os.ftruncate(fd, 0)
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)

    def __enter__(self) -> RunLock:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()


def acquire_lock(d: DataDir) -> RunLock:
    """Take the run lock without waiting and write our pid in it; `AlreadyRunning` if it is held."""
    fd = os.open(d.lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 32).decode(errors="replace").strip()
        os.close(fd)
        raise AlreadyRunning(d.root, int(holder) if holder.isdigit() else None) from None
    except BaseException:
        os.close(fd)
        raise
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return RunLock(d.lock, fd)


def write_api_json(d: DataDir, url: str, pid: int, proxy: str | None = None) -> None:
    """Record where the control API listens (and the proxy URL agents use, when known)."""
    info: dict[str, Any] = {"url": url, "pid": pid}
    if proxy is not None:
        info["proxy"] = proxy
    atomic_write(d.api_json, (json.dumps(info, indent=2) + "\n").encode())


def read_api_json(d: DataDir) -> dict[str, Any] | None:
    """What `write_api_json` wrote, or None when it is missing or unreadable."""
    try:
        info = json.loads(d.api_json.read_text())
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) else None


def ensure_ca(d: DataDir) -> Path:
    """Create mitmproxy's CA in `confdir` if missing and return the public certificate's path."""
    from mitmproxy.certs import CertStore  # heavy import, only needed here

    d.confdir.mkdir(mode=0o700, exist_ok=True)
    # Two processes creating the CA at once would leave a key and certificate that do not match.
    fd = os.open(d.confdir, os.O_RDONLY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        store = CertStore.from_store(str(d.confdir), CA_BASENAME, CA_KEY_SIZE)
        if not d.ca_cert.exists():  # from_store only creates files when the key file is missing
            atomic_write(d.ca_cert, store.default_ca.to_pem(), mode=0o644)
    finally:
        os.close(fd)  # closing releases the flock
    return d.ca_cert


def pem_certificates(text: str) -> list[bytes]:
    """The DER bytes of each PEM certificate in `text`, skipping malformed blocks."""
    found = []
    for block in _PEM_CERT.findall(text):
        with contextlib.suppress(ValueError):
            found.append(ssl.PEM_cert_to_DER_cert(block))
    return found


def write_ca_bundle(
    ca_cert: Path, dest: Path, system_bundles: Sequence[Path] = SYSTEM_BUNDLES
) -> tuple[int, int]:
    """Write certifi's roots, any system bundle's roots and `ca_cert` to `dest`, without repeats.

    Returns (system roots written, Interlock certificates written).
    """
    import certifi

    ours = pem_certificates(ca_cert.read_text())
    if not ours:
        raise ValueError(f"{ca_cert}: no PEM certificate found")
    seen = set(ours)
    roots: list[bytes] = []
    for source in [Path(certifi.where()), *system_bundles]:
        if not source.is_file():
            continue
        for der in pem_certificates(source.read_text(errors="replace")):
            if der not in seen:
                seen.add(der)
                roots.append(der)
    parts = [f"# Interlock CA ({ca_cert})\n", *_pem(ours), "# System roots\n", *_pem(roots)]
    dest.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(dest, "".join(parts).encode(), mode=0o644)
    return len(roots), len(ours)


def bundle_contains(bundle: Path, cert: Path) -> bool:
    """Whether every certificate in `cert` appears in `bundle`."""
    try:
        have = set(pem_certificates(bundle.read_text(errors="replace")))
        want = pem_certificates(cert.read_text())
    except OSError:
        return False
    return bool(want) and all(der in have for der in want)


def _pem(certificates: list[bytes]) -> Iterator[str]:
    for der in certificates:
        yield ssl.DER_cert_to_PEM_cert(der)
