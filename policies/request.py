"""The one builder of `RequestView`s, shared by the proxy and `interlock policy explain`."""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlsplit

from policies.body import INSPECT_LIMIT, decode_body
from policies.model import ANONYMOUS, RequestView
from policies.normalize import normalize_host

DEFAULT_PORTS = {"http": 80, "https": 443}


def make_request(
    method: str,
    scheme: str,
    host: str,
    port: int,
    target: str,
    headers: Sequence[tuple[str, str]] = (),
    body: bytes | None = b"",
    agent: str = ANONYMOUS,
    *,
    body_problem: str | None = None,
    inspect_limit: int = INSPECT_LIMIT,
) -> RequestView:
    """A view of a request from its parts; `target` is the path with its query.

    `body` is the body as sent (still content-encoded); None means it was not available, with
    `body_problem` saying why. Raises ValueError for a host that is not a valid host name.
    """
    path, _, query = target.partition("?")
    if not path.startswith("/"):
        path = "/" + path
    decoded: bytes | None = None
    if body is not None:
        encoding = ", ".join(v for k, v in headers if k.lower() == "content-encoding") or None
        decoded, body_problem = decode_body(body, encoding, limit=inspect_limit)
    elif body_problem is None:
        body_problem = "body not available"
    return RequestView(
        method=method.upper(),
        scheme=scheme.lower(),
        host=normalize_host(host),
        port=port,
        path=path,
        query=query,
        headers=tuple((k, v) for k, v in headers),
        body=decoded,
        body_problem=body_problem,
        agent=agent,
    )


def build_request(
    method: str,
    url: str,
    headers: Sequence[tuple[str, str]] = (),
    body: bytes = b"",
    agent: str = ANONYMOUS,
    *,
    inspect_limit: int = INSPECT_LIMIT,
) -> RequestView:
    """A view of a request given as a full URL, as `policy explain` and tests write them."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise ValueError(f"unsupported URL scheme in {url!r} (expected http or https)")
    if not parts.hostname:
        raise ValueError(f"no host in URL {url!r}")
    port = parts.port or DEFAULT_PORTS[scheme]
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    return make_request(
        method, scheme, parts.hostname, port, target, headers, body, agent,
        inspect_limit=inspect_limit,
    )  # fmt: skip
