"""`interlock holds | approve | deny | lockdown` as a real subprocess against a real API server."""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from proxy.apiserver import ApiServer, bind_socket
from proxy.datadir import DataDir, write_api_json
from proxy.outcomes import Outcome
from tests.proxy.test_api import Core, open_hold

ROOT = Path(__file__).parents[2]


@dataclass
class Result:
    code: int
    out: str
    err: str


@dataclass
class Running:
    core: Core
    data_dir: Path
    url: str

    async def interlock(self, *args: str, data_dir: bool = True) -> Result:
        """Run the CLI without blocking the loop, which keeps serving the API meanwhile."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("INTERLOCK_")}
        extra = ["--data-dir", str(self.data_dir)] if data_dir else []
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "proxy.cli", *args, *extra, cwd=ROOT, env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(process.communicate(), 30)
        assert process.returncode is not None
        return Result(process.returncode, out.decode(), err.decode())


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[Running]:
    """A data dir as `interlock run` leaves it: api.json, operator.token and tokens.json."""
    core = Core(tmp_path)
    data = DataDir(tmp_path)
    data.operator_token.write_text(core.admin + "\n")
    server = ApiServer(core.app())
    await server.start("127.0.0.1", 0)
    assert server.url is not None
    write_api_json(data, server.url, os.getpid())
    yield Running(core, tmp_path, server.url)
    await server.stop()


async def test_holds_table_and_json(running: Running) -> None:
    empty = await running.interlock("holds")
    assert empty.code == 0 and "no requests are waiting" in empty.out
    first = open_hold(running.core.holds, 1, timeout=600)
    open_hold(running.core.holds, 2, agent="ci-bot")
    table = await running.interlock("holds")
    assert table.code == 0, table.err
    header, row, _ = table.out.splitlines()
    assert header.split() == ["ID", "AGE", "AGENT", "METHOD", "URL", "RULE", "DEADLINE", "IN"]
    hold_id, age, agent, method, url, rule, deadline_in = row.split()
    assert [hold_id, agent, method, url, rule] == [first.id, "bot", "PUT", first.request.url, "r"]
    assert re.fullmatch(r"\d+s", age) and re.fullmatch(r"10m|9m\d+s", deadline_in)
    listed = await running.interlock("holds", "--json")
    assert [h["agent"] for h in json.loads(listed.out)] == ["bot", "ci-bot"]
    lines = (await running.interlock("holds", "--jsonl")).out.splitlines()
    assert [json.loads(line)["id"] for line in lines] == [
        h.id for h in running.core.holds.pending()
    ]


async def test_approve_then_a_second_decision_names_who_won(running: Running) -> None:
    hold = open_hold(running.core.holds)
    approved = await running.interlock("approve", hold.id, "--reason", "expected deploy")
    assert approved.code == 0, approved.err
    assert approved.out.startswith(f"approved {hold.id} (PUT https://api.github.com/")
    assert hold.done.result() is Outcome.APPROVED
    assert (hold.decided_by, hold.channel, hold.decision_reason) == (
        "person:alice", "cli", "expected deploy")  # fmt: skip
    late = await running.interlock("deny", hold.id, "--reason", "no")
    assert late.code == 1
    assert "the decision stands: approved by person:alice via cli" in late.err


async def test_deny_requires_a_reason_and_records_it(running: Running) -> None:
    hold = open_hold(running.core.holds)
    missing = await running.interlock("deny", hold.id)
    assert missing.code == 2 and "--reason" in missing.err  # argparse's usage error
    denied = await running.interlock("deny", hold.id, "--reason", "use staging")
    assert denied.code == 0 and denied.out.startswith(f"denied {hold.id}")
    assert hold.state is Outcome.DENIED and hold.decision_reason == "use staging"


async def test_quorum_approval_reports_the_vote(running: Running) -> None:
    hold = open_hold(running.core.holds, approvals=2)
    vote = await running.interlock("approve", hold.id)
    assert vote.code == 0 and "1 of 2 needed" in vote.out
    assert hold.pending


async def test_link_prints_signed_urls_to_send_by_hand(running: Running) -> None:
    hold = open_hold(running.core.holds, timeout=600)
    made = await running.interlock("link", hold.id, "--for", "bob")
    assert made.code == 0, made.err
    review, approve, deny, note = made.out.splitlines()
    label, url = review.split()
    assert label == "review:" and url.startswith("https://approve.example.com/l/")
    assert approve.split() == ["approve:", f"{url}?action=approve"]
    assert deny.split() == ["deny:", f"{url}?action=deny"]
    assert re.fullmatch(
        r"for bob, usable once, expires in (10m|9m\d+s); anyone with it can decide", note
    )
    claim = running.core.links.verify(url.rsplit("/", 1)[1])
    assert (claim.hold_id, claim.audience, claim.channel) == (hold.id, "bob", "manual:alice")
    as_json = json.loads((await running.interlock("link", hold.id, "--for", "bob", "--json")).out)
    assert as_json["review"] != url and as_json["expires_at"] == int(hold.deadline)
    assert hold.pending
    nameless = await running.interlock("link", hold.id)
    assert nameless.code == 2 and "--for" in nameless.err  # argparse's usage error
    running.core.links.public_url = ""  # as when the proxy runs without a public listener
    refused = await running.interlock("link", hold.id, "--for", "bob")
    assert refused.code == 1 and "--public-listen" in refused.err and "(HTTP 409)" in refused.err


async def test_lockdown_on_status_off(running: Running) -> None:
    on = await running.interlock("lockdown", "on", "--reason", "incident 42")
    assert on.code == 0 and on.out.startswith("lockdown ON")
    assert running.core.lockdown.on and running.core.lockdown.changed_by == "person:alice"
    status = await running.interlock("lockdown", "status", "--json")
    assert json.loads(status.out)["reason"] == "incident 42"
    off = await running.interlock("lockdown", "off")
    assert off.code == 0 and off.out.startswith("lockdown off") and not running.core.lockdown.on


async def test_refusals_exit_one(running: Running) -> None:
    missing = await running.interlock("approve", "h_nope")
    assert missing.code == 1 and "no hold 'h_nope' (HTTP 404)" in missing.err
    viewer = running.core.viewer
    read_only = await running.interlock("lockdown", "on", "--token", viewer)
    assert read_only.code == 1 and "may only read (HTTP 403)" in read_only.err
    assert (await running.interlock("lockdown", "status", "--token", viewer)).code == 0


async def test_unreachable_api_exits_two_naming_the_url(running: Running, tmp_path: Path) -> None:
    closed = bind_socket("127.0.0.1", 0)
    url = f"http://127.0.0.1:{closed.getsockname()[1]}"
    try:
        result = await running.interlock("holds", "--api", url)
    finally:
        closed.close()
    assert result.code == 2
    assert f"cannot reach the Interlock control API at {url}" in result.err
    empty = tmp_path / "elsewhere"
    no_address = await running.interlock("holds", "--data-dir", str(empty), data_dir=False)
    assert no_address.code == 2 and f"{empty / 'api.json'} is missing" in no_address.err
