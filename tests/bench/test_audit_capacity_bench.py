"""The audit log at capacity: a million records (opt-in: `pytest -m bench tests/bench -s`).

Targets from the issue: `audit list` with a filter answers in under a second, and an export
streams at least 50,000 records a second. The rows are generated straight into a database in
the temporary directory, with a valid chain and a checkpoint every 1,000 records.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import pytest

from proxy.auditexport import Progress, export_csv, export_jsonl, plan_export
from proxy.auditkeys import PUBLIC_KEY_FILE, VerifyKey, load_or_create_signing_key, public_pem
from proxy.auditquery import Filters, list_requests, open_readonly
from tests.proxy.auditkit import AGENTS, HOSTS, RULES, bulk_history, cli

pytestmark = pytest.mark.bench
RECORDS = 1_000_000
ROOT = Path(__file__).parents[2]
NOW = time.time()


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("capacity")
    start = time.perf_counter()
    bulk_history(root / "audit.db", RECORDS, load_or_create_signing_key(root), now=NOW)
    elapsed = time.perf_counter() - start
    size = (root / "audit.db").stat().st_size / 2**20
    print(f"\ngenerated {RECORDS:,} records in {elapsed:.1f} s ({size:.0f} MiB)")
    return root


FILTERS = {
    "--agent": Filters(agent=AGENTS[3]),
    "--host": Filters(host=HOSTS[17]),
    "--rule": Filters(rule=RULES[5]),
    "--outcome denied": Filters(outcome="denied"),
    "--outcome expired": Filters(outcome="expired"),
    "--decided-by person:bob": Filters(decided_by="person:bob"),
    "--since 2h": Filters(since=NOW - 2 * 3600),
    "--since 3d --until 2d": Filters(since=NOW - 3 * 86400, until=NOW - 2 * 86400),
    "--agent --since 1d": Filters(agent=AGENTS[7], since=NOW - 86400),
    "--host --outcome denied": Filters(host=HOSTS[2], outcome="denied"),
    "--agent nobody (no match)": Filters(agent="nobody"),
}


def test_list_with_a_filter_answers_in_under_a_second(data: Path) -> None:
    slowest = 0.0
    for name, filters in FILTERS.items():
        start = time.perf_counter()
        with closing(open_readonly(data / "audit.db")) as conn:
            rows = list_requests(conn, filters, 50)
        elapsed = time.perf_counter() - start
        slowest = max(slowest, elapsed)
        print(f"  audit list {name:<28} {len(rows):>3} rows in {elapsed * 1000:7.1f} ms")
        assert elapsed < 1.0, name
    env = {k: v for k, v in os.environ.items() if not k.startswith("INTERLOCK_")}
    start = time.perf_counter()
    run = subprocess.run(
        [sys.executable, "-m", "proxy.cli", "audit", "list", "--data-dir", str(data),
         "--agent", AGENTS[3], "--outcome", "denied"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    whole = time.perf_counter() - start
    print(f"  `interlock audit list --agent --outcome` as a process: {whole * 1000:.0f} ms "
          f"(slowest query {slowest * 1000:.0f} ms)")  # fmt: skip
    assert run.stdout.count("\n") == 51


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_export_streams_at_least_50000_records_a_second(data: Path, fmt: str) -> None:
    dest = data / f"export.{fmt}"
    with closing(open_readonly(data / "audit.db")) as conn, dest.open("w", newline="") as out:
        conn.execute("BEGIN")
        plan = plan_export(conn, Filters())
        quiet = Progress(plan.count, io.StringIO())  # not a terminal: no bar
        start = time.perf_counter()
        if fmt == "jsonl":
            key = VerifyKey.load(data / PUBLIC_KEY_FILE)
            pem = (key.key_id, public_pem(key.public))
            written = export_jsonl(conn, plan, out, quiet, pem, "bench")
        else:
            written = export_csv(conn, plan, out, quiet)
        elapsed = time.perf_counter() - start
    rate = written / elapsed
    print(f"\n  export {fmt}: {written:,} records in {elapsed:.1f} s = {rate:,.0f} records/s "
          f"({dest.stat().st_size / 2**20:.0f} MiB)")  # fmt: skip
    assert written == RECORDS
    assert rate >= 50_000


def test_verify_a_million_records(data: Path) -> None:
    """Not a target of the issue; how long a full check takes."""
    start = time.perf_counter()
    result = cli("audit", "verify", "--data-dir", str(data))
    elapsed = time.perf_counter() - start
    print(
        f"\n  verify: {RECORDS:,} records in {elapsed:.1f} s = {RECORDS / elapsed:,.0f} records/s"
    )
    assert result.code == 0, result.out + result.err
    export = data / "export.jsonl"
    if export.exists():
        start = time.perf_counter()
        result = cli("audit", "verify", "--file", str(export))
        elapsed = time.perf_counter() - start
        print(f"  verify --file: {RECORDS / elapsed:,.0f} records/s")
        assert result.code == 0, result.out + result.err
