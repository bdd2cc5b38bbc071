"""`interlock audit list | show | stats | export | head | prune` on real databases."""

from __future__ import annotations

import csv
import io
import json
import os
import sqlite3
import stat
import subprocess
import sys
import time
import tracemalloc
from contextlib import closing
from pathlib import Path

import pytest

from proxy.auditexport import Progress, export_jsonl, plan_export
from proxy.auditkeys import SigningKey
from proxy.auditquery import Filters, open_readonly
from proxy.datadir import DataDir, acquire_lock
from tests.proxy.auditkit import T0, attacker, bulk_history, cli, history, lines_of

ROOT = Path(__file__).parents[2]


@pytest.fixture
def data(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    history(root, 35)
    return root


def audit(data: Path, *argv: str) -> str:
    result = cli("audit", *argv, "--data-dir", str(data))
    assert result.code == 0, result.err
    return result.out


# -- list -------------------------------------------------------------------------------------


def test_list_table_newest_first(data: Path) -> None:
    header, *rows = audit(data, "list", "--limit", "3").splitlines()
    assert header.split() == ["TIME", "(UTC)", "REQUEST", "AGENT", "METHOD", "URL", "RULE",
                              "OUTCOME", "BY", "STATUS"]  # fmt: skip
    assert [r.split()[2] for r in rows] == ["r_34", "r_33", "r_32"]
    assert rows[0].split()[3:] == ["ci", "GET", "https://api.example/v1/items/34", "reads",
                                   "allowed", "policy", "200"]  # fmt: skip
    assert rows[0].startswith("2023-11-14 22:13:54")


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        (["--agent", "bot"], [f"r_{i}" for i in range(33, 0, -2)]),
        (["--host", "pay.example"], ["r_30", "r_25", "r_20", "r_15", "r_10", "r_5", "r_0"]),
        (["--outcome", "denied"], ["r_30", "r_15", "r_0"]),  # the final outcome, from the hold
        (["--outcome", "approved", "--agent", "bot"], ["r_25", "r_5"]),
        (["--rule", "payments", "--limit", "2"], ["r_30", "r_25"]),
        (
            ["--decided-by", "person:alice", "--outcome", "approved"],
            ["r_25", "r_20", "r_10", "r_5"],
        ),
        (
            ["--since", "2023-11-14T22:13:50Z", "--until", "2023-11-14T22:13:53+00:00"],
            ["r_32", "r_31", "r_30"],
        ),
        (["--since", "2023-11-14", "--outcome", "pending"], []),
    ],
)
def test_list_filters(data: Path, filters: list[str], expected: list[str]) -> None:
    listed = json.loads(audit(data, "list", "--json", "--limit", "100", *filters))
    assert [r["request_id"] for r in listed] == expected


def test_list_relative_since_json_and_jsonl(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    key = SigningKey.generate()
    bulk_history(data / "audit.db", 3000, key, now=time.time(), every=500)
    recent = json.loads(audit(data, "list", "--since", "2h", "--limit", "1000", "--json"))
    assert recent and all(r["at"] >= time.time() - 2 * 3600 - 5 for r in recent)
    assert len(recent) < 3000 / 30 * 2 / 24 + 5  # about 2 hours of a 30-day spread
    lines = audit(data, "list", "--jsonl", "--limit", "5").splitlines()
    first = json.loads(lines[0])
    assert len(lines) == 5 and first["time"].endswith("Z") and first["hash"]
    assert first["final_outcome"] in ("allowed", "denied", "pending", "approved", "expired")


def test_list_says_so_when_nothing_matches_and_names_bad_values(data: Path) -> None:
    assert audit(data, "list", "--agent", "nobody") == "no requests match\n"
    result = cli("audit", "list", "--since", "yesterday", "--data-dir", str(data))
    assert result.code == 2 and "invalid time 'yesterday'" in result.err
    result = cli("audit", "list", "--limit", "0", "--data-dir", str(data))
    assert result.code == 2 and "expected a positive whole number" in result.err


def test_missing_database_is_named(tmp_path: Path) -> None:
    result = cli("audit", "list", "--db", str(tmp_path / "nope.db"))
    assert result.code == 2 and f"no audit database at {tmp_path / 'nope.db'}" in result.err


def test_db_elsewhere_and_interlock_home(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    moved = tmp_path / "archive" / "2023.db"
    moved.parent.mkdir()
    with closing(sqlite3.connect(data / "audit.db")) as src, closing(sqlite3.connect(moved)) as dst:
        src.backup(dst)
    assert cli("audit", "list", "--db", str(moved), "--limit", "1").out.count("r_34") == 1
    monkeypatch.setenv("INTERLOCK_HOME", str(data))
    assert "r_34" in cli("audit", "list", "--limit", "1").out


# -- show -------------------------------------------------------------------------------------


def test_show_a_held_request_with_its_trail(data: Path) -> None:
    out = audit(data, "show", "r_25")
    assert "request r_25 (seq" in out and "at 2023-11-14T22:13:45.000000Z" in out
    for expected in (
        "agent        bot from 127.0.0.1",
        "request      POST https://pay.example/v1/items/25",
        "policy       digest dddddddddddddddd, Interlock 0.1.0",
        "decision approved",
        "rule         payments (action hold)",
        "held at      2023-11-14T22:13:45.000000Z",
        "hold         h_25",
        "decided by   person:alice via slack at 2023-11-14T22:13:45.500000Z, after 1.5 s",
        "why          looks fine",
        "response 200, 12 bytes in 30 ms",
    ):
        assert expected in out, expected
    trail = out.split("trail\n")[1].splitlines()
    assert [line.split()[3] for line in trail] == ["request", "hold", "completion"]


def test_show_json_by_hold_id_and_by_seq(data: Path) -> None:
    shown = json.loads(audit(data, "show", "h_30", "--json"))
    assert shown["request_id"] == "r_30"
    assert shown["decision"] | {"decided_at": None} == {
        "outcome": "denied", "rule": "payments", "action": "hold", "decided_by": "person:alice",
        "channel": "slack", "reason": "not this vendor", "hold_id": "h_30", "held_at": T0 + 30,
        "decided_at": None, "held_ms": 1530, "votes": [], "grant_id": None, "replay_of": None,
    }  # fmt: skip
    assert shown["request"]["headers"] == [] and shown["response"]["status"] == 200
    by_seq = json.loads(audit(data, "show", str(shown["seq"]), "--json"))
    assert by_seq["request_id"] == "r_30"
    result = cli("audit", "show", "r_nope", "--data-dir", str(data))
    assert result.code == 1 and "no request 'r_nope'" in result.err


# -- stats ------------------------------------------------------------------------------------


def test_stats(data: Path) -> None:
    result = json.loads(
        audit(data, "stats", "--json", "--min-decisions", "3", "--threshold", "0.5")
    )
    by_agent = {e["agent"]: e for e in result["requests"]}
    assert by_agent["ci"]["outcomes"] == {"allowed": 14, "approved": 2, "denied": 2}
    assert by_agent["bot"]["total"] == 17
    (payments,) = result["holds"]
    assert payments | {"median_decide_ms": 0} == {
        "rule": "payments", "holds": 7, "approved": 4, "denied": 3, "expired": 0, "error": 0,
        "approval_rate": 0.5714, "median_decide_ms": 0,
    }  # fmt: skip
    assert payments["median_decide_ms"] == 1515
    assert result["allow_candidates"] == ["payments"]
    text = audit(data, "stats", "--since", "2023-11-14T22:13:40Z")
    assert "requests per agent since 2023-11-14T22:13:40.000000Z" in text
    assert "candidates for `allow` (at least 10 decisions, 95% approved): none" in text


# -- export -----------------------------------------------------------------------------------


def test_export_jsonl_and_csv_to_files(data: Path, tmp_path: Path) -> None:
    jsonl, table = tmp_path / "a.jsonl", tmp_path / "a.csv"
    result = cli("audit", "export", "--data-dir", str(data), "-o", str(jsonl))
    assert result.err == f"exported 77 records to {jsonl} (jsonl, complete)\n"
    assert stat.S_IMODE(jsonl.stat().st_mode) == 0o600
    lines = [json.loads(line) for line in lines_of(jsonl)]
    assert [line["type"] for line in lines].count("record") == 77
    assert [line["type"] for line in lines].count("checkpoint") == 8
    record = next(line for line in lines if line["type"] == "record")
    assert record["schema"] == "interlock.audit/1" and record["time"] == "2023-11-14T22:13:20.000Z"
    assert isinstance(record["headers"], list) and record["prev_hash"] == "0" * 64
    cli("audit", "export", "--data-dir", str(data), "--format", "csv", "-o", str(table))
    with table.open(newline="") as file:
        parsed = list(csv.DictReader(file))
    assert len(parsed) == 77 and parsed[0]["seq"] == "1" and float(parsed[0]["at"]) == T0
    assert parsed[0]["hash"] == record["hash"]


async def test_csv_quotes_what_needs_quoting(tmp_path: Path) -> None:
    from proxy.audit import AuditStore
    from proxy.records import AuditRecord, Kind

    store = await AuditStore.open(tmp_path / "audit.db")
    reason = 'he said "no, not today",\nthen left; café'
    try:
        await store.append(
            AuditRecord(
                kind=Kind.HOLD,
                request_id="r_1",
                reason=reason,
                detail={"note": 'a "quoted", value'},
                port=8443,
            )
        )
    finally:
        await store.close()
    out = cli("audit", "export", "--db", str(tmp_path / "audit.db"), "--format", "csv").out
    (parsed,) = csv.DictReader(io.StringIO(out, newline=""))
    assert parsed["reason"] == reason and parsed["port"] == "8443" and parsed["agent"] == ""
    assert json.loads(parsed["detail"]) == {"note": 'a "quoted", value'}


def test_export_to_stdout_with_filters(data: Path) -> None:
    lines = audit(data, "export", "--outcome", "denied").splitlines()
    header = json.loads(lines[0])
    assert header["chain"] == "partial" and header["filters"] == {"outcome": "denied"}
    assert {json.loads(line)["kind"] for line in lines[1:] if '"record"' in line} == {"hold"}


def test_export_progress_bar_on_a_terminal(data: Path) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    screen, out = Terminal(), io.StringIO()
    with closing(open_readonly(data / "audit.db")) as conn:
        plan = plan_export(conn, Filters())
        assert export_jsonl(conn, plan, out, Progress(plan.count, screen), None, "db") == 77
    assert "100% 77/77 records" in screen.getvalue() and screen.getvalue().endswith("\n")
    quiet = io.StringIO()
    assert not Progress(10, quiet).enabled


def test_export_streams_in_constant_memory(tmp_path: Path) -> None:
    class Counter(io.StringIO):
        size = 0

        def write(self, text: str) -> int:
            self.size += len(text)
            return len(text)

    db = tmp_path / "audit.db"
    bulk_history(db, 30_000, SigningKey.generate(), now=time.time())
    sink = Counter()
    with closing(open_readonly(db)) as conn:
        plan = plan_export(conn, Filters())
        tracemalloc.start()
        written = export_jsonl(conn, plan, sink, Progress(plan.count, io.StringIO()), None, "db")
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert written == 30_000
    assert peak < 16 * 1024 * 1024 and peak < sink.size / 2, (peak, sink.size)  # chunks only


# -- head -------------------------------------------------------------------------------------


def test_head_prints_the_latest_signed_head(data: Path, tmp_path: Path) -> None:
    printed = json.loads(audit(data, "head"))
    assert printed["event"] == "audit.checkpoint" and printed["seq"] == 77
    assert set(printed) == {"event", "seq", "hash", "at", "time", "count", "signature", "key_id"}
    empty = tmp_path / "empty"
    history(empty, 0)
    result = cli("audit", "head", "--data-dir", str(empty))
    assert result.code == 1 and "no signed checkpoint" in result.err


# -- prune ------------------------------------------------------------------------------------


def test_prune_leaves_a_signed_anchor_and_the_kept_history_verifies(data: Path) -> None:
    pinned = audit(data, "head").strip()
    dry = audit(data, "prune", "--before", "2023-11-14T22:13:40Z", "--dry-run")
    assert dry == "would remove 44 records (seq 1-44) from before 2023-11-14T22:13:40.000000Z\n"
    out = audit(data, "prune", "--before", "2023-11-14T22:13:40Z")
    assert out.startswith("removed 44 records (seq 1-44); the signed anchor is seq 78\n")
    verified = audit(data, "verify", "--head", pinned)
    assert "verified: 34 records (seq 45-78)" in verified
    assert "44 older records pruned under a signed anchor" in verified
    exported = data / "pruned.jsonl"
    audit(data, "export", "-o", str(exported))
    assert "44 older records pruned" in audit(data, "verify", "--file", str(exported))
    anchor = json.loads(audit(data, "export", "--outcome", "x").splitlines()[0])  # header only
    assert anchor["chain"] == "partial"
    rows = [json.loads(line) for line in audit(data, "export").splitlines()[1:]]
    prune_row = next(r for r in rows if r.get("kind") == "prune")
    assert prune_row["decided_by"].startswith("person:") and prune_row["channel"] == "cli"
    assert prune_row["detail"]["removed_count"] == 44 and prune_row["detail"]["signature"]
    assert audit(data, "list", "--limit", "1000").count("\n") == 1 + 15  # r_20 .. r_34
    with (data / "audit.db").open("rb") as file:
        assert b"/v1/items/3\x00" not in file.read()  # removed, not just unlinked
    assert "nothing to prune" in audit(data, "prune", "--before", "2023-11-14T22:13:40Z")


def test_pruned_history_with_more_removed_is_caught(data: Path) -> None:
    audit(data, "prune", "--before", "2023-11-14T22:13:40Z")
    with attacker(data / "audit.db") as conn:
        conn.execute("DELETE FROM audit WHERE seq < 50")
    result = cli("audit", "verify", "--data-dir", str(data))
    assert result.code == 1
    assert (
        "BROKEN at seq 49 (missing): records before seq 50 are missing: the first record chains from"
        in result.out
    )


def test_forged_prune_anchor_is_caught(data: Path) -> None:
    from tests.proxy.auditkit import rebuild_chain, rewrite, row

    audit(data, "prune", "--before", "2023-11-14T22:13:40Z")
    with attacker(data / "audit.db") as conn:
        anchor = row(conn, 78)
        detail = json.loads(anchor["detail"])
        detail["removed_count"] = 4  # claim fewer were removed
        anchor["detail"] = json.dumps(detail)
        rewrite(conn, 78, anchor)
        rebuild_chain(conn, 78)
        conn.execute("DELETE FROM checkpoints WHERE seq >= 78")
    result = cli("audit", "verify", "--data-dir", str(data))
    assert result.code == 1
    assert (
        "BROKEN at seq 78 (bad signature): the prune anchor at seq 78 has a bad signature"
        in result.out
    )


def test_prune_is_refused_while_interlock_runs(data: Path) -> None:
    with acquire_lock(DataDir(data)):
        result = cli("audit", "prune", "--before", "1d", "--data-dir", str(data))
    assert result.code == 1
    assert "refusing to prune: Interlock is already running with data dir" in result.err
    assert "its audit writer owns the chain head" in result.err
    result = cli("audit", "prune", "--before", "2099-01-01", "--data-dir", str(data))
    assert result.code == 2 and "is in the future" in result.err


# -- redaction --------------------------------------------------------------------------------

SECRETS = (
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhZ2VudCJ9.c2lnbmF0dXJl", "sess-0123456789abcdef",
    "ak-live-5f3c9a7e1b", "hunter2-Pa55", "correct-horse-battery", "ghp_abcdefghijklmnopqrstuvwxyz0123",
)  # fmt: skip


async def test_no_output_nor_file_holds_a_credential_redacted_at_capture(tmp_path: Path) -> None:
    from proxy.audit import AuditStore
    from proxy.auditkeys import load_or_create_signing_key
    from proxy.records import AuditRecord, Kind
    from proxy.redact import Redactor

    data = tmp_path / "data"
    data.mkdir()
    capture = Redactor()  # what the gate does at capture; the store redacts again
    jwt, cookie, api_key, password, form_password, token = SECRETS
    store = await AuditStore.open(data / "audit.db", signing_key=load_or_create_signing_key(data))
    try:
        await store.append(
            AuditRecord(
                kind=Kind.REQUEST,
                request_id="r_json",
                agent="bot",
                method="POST",
                scheme="https",
                host="api.example",
                port=443,
                path=f"/login/{token}",
                query=f"api_key={api_key}",
                headers=(
                    ("Authorization", f"Bearer {jwt}"),
                    ("Cookie", f"session={cookie}"),
                    ("X-API-Key", api_key),
                ),
                body_preview=capture.body_preview(
                    json.dumps({"user": "bob", "password": password}).encode(), "application/json"
                ),
                outcome="pending",
                hold_id="h_1",
                reason=f"token {token} seen",
                detail={"password": password},
            )
        )
        await store.append(
            AuditRecord(
                kind=Kind.REQUEST,
                request_id="r_form",
                agent="bot",
                method="POST",
                body_preview=capture.body_preview(
                    f"user=bob&password={form_password}".encode(),
                    "application/x-www-form-urlencoded",
                ),
                headers=capture.headers([("Proxy-Authorization", f"Basic {jwt}")]),
            )
        )
        await store.append(
            AuditRecord(
                kind=Kind.HOLD,
                request_id="r_json",
                hold_id="h_1",
                outcome="approved",
                decided_by="person:alice",
                reason=f"ok, password={password}",
            )
        )
    finally:
        await store.close()
    outputs = {}
    for name, argv in {
        "table": ["list"],
        "json": ["list", "--json"],
        "jsonl": ["list", "--jsonl"],
        "show": ["show", "r_json"],
        "show json": ["show", "r_json", "--json"],
        "show form": ["show", "r_form", "--json"],
        "export jsonl": ["export"],
        "export csv": ["export", "--format", "csv"],
        "stats": ["stats", "--json"],
    }.items():
        outputs[name] = audit(data, *argv)
    assert "[REDACTED]" in outputs["show json"]
    files = {str(p): p.read_bytes() for p in data.iterdir() if p.is_file()}
    leaks = [
        (secret, where)
        for secret in SECRETS
        for where, text in [*outputs.items(), *((k, v.decode("latin-1")) for k, v in files.items())]
        if secret in text
    ]
    assert leaks == []


# -- the real command -------------------------------------------------------------------------


def test_interlock_audit_as_a_subprocess(data: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INTERLOCK_")}
    run = subprocess.run(
        [sys.executable, "-m", "proxy.cli", "audit", "verify", "--data-dir", str(data)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert run.returncode == 0 and "audit log verified: 77 records" in run.stdout
    helped = subprocess.run([sys.executable, "-m", "proxy.cli", "audit", "--help"], cwd=ROOT,
                            env=env, capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    for command in ("list", "show", "stats", "export", "verify", "head", "prune"):
        assert command in helped.stdout
