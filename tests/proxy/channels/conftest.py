"""The Slack tests' real parts: a hold queue over a real audit store, and the local fake Slack."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.proxy.channels.fakeslack import FakeSlack
from tests.proxy.channels.test_slack import Core, running_core, running_fake


@pytest.fixture
async def core(tmp_path: Path) -> AsyncIterator[Core]:
    async with running_core(tmp_path) as running:
        yield running


@pytest.fixture
async def fake() -> AsyncIterator[FakeSlack]:
    async with running_fake() as running:
        yield running
