"""The image's health check: GET /healthz on the API address `interlock run` recorded in api.json.

Standard library only (the slim image has no curl). Exit 0 when healthy, 1 otherwise.
"""

from __future__ import annotations

import json
import os
import ssl
import sys
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

WILDCARDS = {"0.0.0.0": "127.0.0.1", "::": "::1"}


def healthz_url(home: Path) -> str:
    url = str(json.loads((home / "api.json").read_text())["url"])
    parts = urlsplit(url)
    host = parts.hostname or ""
    if host in WILDCARDS:  # listening everywhere: ask over loopback
        local = WILDCARDS[host]
        netloc = f"[{local}]:{parts.port}" if ":" in local else f"{local}:{parts.port}"
        parts = parts._replace(netloc=netloc)
    return urlunsplit((parts.scheme, parts.netloc, "/healthz", "", ""))


def main() -> int:
    home = Path(os.environ.get("INTERLOCK_HOME") or "/data")
    try:
        url = healthz_url(home)
        # Liveness only, and no token is sent: an API certificate for another name must not fail it.
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        # No proxy: the API is asked directly, whatever HTTP_PROXY the container has.
        opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=context)
        )
        with opener.open(url, timeout=3) as response:
            healthy = response.status == 200
    except Exception as exc:
        print(f"interlock healthcheck: {exc}", file=sys.stderr)
        return 1
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())
