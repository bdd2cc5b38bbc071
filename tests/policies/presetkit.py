"""What every preset decision table needs: its preset loaded alone under `default: allow`."""

from __future__ import annotations

import pytest

from policies.engine import Policy
from policies.loader import load_policy


def load_preset(tmp_path_factory: pytest.TempPathFactory, name: str) -> Policy:
    """A top-level policy including only `interlock:NAME`, so the default is `allow`."""
    path = tmp_path_factory.mktemp(name) / "policy.yaml"
    path.write_text(f"version: 1\ndefault: allow\ninclude: [interlock:{name}]\nrules: []\n")
    return load_policy(path)
