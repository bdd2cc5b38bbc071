"""`policies/` stays pure: importing it must not pull in the proxy, UI or database stacks."""

from __future__ import annotations

import json
import subprocess
import sys

FORBIDDEN = ("mitmproxy", "textual", "aiosqlite", "httpx", "proxy", "addons", "tui")


def test_policies_import_no_proxy_ui_or_database_modules() -> None:
    code = (
        "import json, sys\n"
        "import policies.loader, policies.engine, policies.request, policies.schema\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = json.loads(out.stdout)
    bad = [m for m in loaded if m.split(".")[0] in FORBIDDEN]
    assert bad == []
    assert "policies.engine" in loaded  # the probe really imported the package
