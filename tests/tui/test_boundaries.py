"""`tui/` reaches the proxy only over HTTP: no mitmproxy, database, policy or proxy internals."""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys

import tui

FORBIDDEN_ROOTS = ("mitmproxy", "aiosqlite", "policies", "addons", "starlette", "uvicorn")
ALLOWED_PROXY = {"proxy", "proxy.client", "proxy.datadir"}  # the typed HTTP client and its paths


def test_the_dashboard_imports_only_its_http_client_of_the_proxy() -> None:
    modules = sorted(m.name for m in pkgutil.walk_packages(tui.__path__, "tui."))
    code = (
        "import importlib, json, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = json.loads(out.stdout)
    assert "tui.app" in loaded and "textual" in loaded  # the probe really imported the app
    assert [m for m in loaded if m.split(".")[0] in FORBIDDEN_ROOTS] == []
    assert [m for m in loaded if m.split(".")[0] == "proxy" and m not in ALLOWED_PROXY] == []


def test_the_command_loads_textual_only_when_run() -> None:
    code = "import json, sys\nimport proxy.cli\nprint(json.dumps(sorted(sys.modules)))\n"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = json.loads(out.stdout)
    assert "proxy.commands.tui" in loaded
    assert not [m for m in loaded if m.split(".")[0] in ("tui", "textual")]
