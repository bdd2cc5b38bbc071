"""The hash chain and signed checkpoints, written by the store's single writer; the signing key
files; and the migration that chains a version 1 database."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import sqlite3
import stat
from contextlib import closing
from pathlib import Path

import pytest

from proxy.app import Interlock, RunSettings
from proxy.audit import AuditError, AuditStore
from proxy.auditchain import GENESIS, HASHED, INTERLOCK_VERSION, STORED, canonical, row_hash
from proxy.auditkeys import (
    KEY_FILE,
    PUBLIC_KEY_FILE,
    KeyFileError,
    SignedHead,
    SigningKey,
    VerifyKey,
    load_or_create_signing_key,
)
from proxy.auditschema import MIGRATIONS, SCHEMA_VERSION
from proxy.records import AuditRecord, Kind
from tests.proxy.auditkit import cli, record


def rows(db: Path) -> list[dict[str, object]]:
    with closing(sqlite3.connect(db)) as conn:
        found = conn.execute(f"SELECT {', '.join(STORED)} FROM audit ORDER BY seq").fetchall()
    return [dict(zip(STORED, r, strict=True)) for r in found]


def marks(db: Path) -> list[tuple[int, str]]:
    with closing(sqlite3.connect(db)) as conn:
        return conn.execute("SELECT seq, head_hash FROM checkpoints ORDER BY seq").fetchall()


def assert_chained(found: list[dict[str, object]]) -> None:
    prev = GENESIS
    for expected_seq, r in enumerate(found, start=1):
        assert r["seq"] == expected_seq
        assert r["prev_hash"] == prev
        assert r["hash"] == row_hash([r[name] for name in HASHED])
        prev = str(r["hash"])


@pytest.mark.parametrize(
    "value",
    [None, "", "plain", 'quo"te\\back\nline\x00\x1f', "é€😀\ud800", 0, -1, 2**70, 0.1, -0.0, 1e16,
     1e-7, True, False],
)  # fmt: skip
def test_row_hash_is_sha256_of_the_canonical_document(value: object) -> None:
    values = [f"v{i}" for i in range(len(HASHED))]
    values[3] = value
    document = dict(zip(HASHED, values, strict=True))
    assert row_hash(values) == hashlib.sha256(canonical(document)).hexdigest()


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_row_hash_refuses_what_json_cannot_say(value: float) -> None:
    with pytest.raises(ValueError):
        row_hash([value] * len(HASHED))


@pytest.fixture
def key() -> SigningKey:
    return SigningKey.generate()


async def test_every_row_chains_to_the_one_before(tmp_path: Path) -> None:
    store = await AuditStore.open(tmp_path / "audit.db")
    try:
        await asyncio.gather(*(store.append(record(i)) for i in range(200)))  # group commits
        await store.append(record(999, at=5, port="8443", status=True))  # typed as SQLite stores
    finally:
        await store.close()
    found = rows(tmp_path / "audit.db")
    assert len(found) == 201
    assert_chained(found)
    assert {r["interlock_version"] for r in found} == {INTERLOCK_VERSION}
    assert (found[-1]["at"], found[-1]["port"], found[-1]["status"]) == (5.0, 8443, 1)


async def test_a_failed_batch_leaves_the_chain_whole(tmp_path: Path) -> None:
    store = await AuditStore.open(tmp_path / "audit.db", commit_timeout=0.5)
    try:
        await store.append(record(1))
        await store._db.execute("PRAGMA query_only=ON")
        with pytest.raises(AuditError):
            await store.append(record(2))
        await store._db.execute("PRAGMA query_only=OFF")
        await store.append(record(3))
    finally:
        await store.close()
    found = rows(tmp_path / "audit.db")
    assert [r["request_id"] for r in found] == ["r_1", "r_3"]
    assert_chained(found)


async def test_checkpoints_every_n_rows_and_at_close(tmp_path: Path, key: SigningKey) -> None:
    published: list[SignedHead] = []
    store = await AuditStore.open(
        tmp_path / "audit.db", signing_key=key, checkpoint_every=10, on_checkpoint=published.append
    )
    for i in range(25):
        await store.append(record(i))
    assert [m.seq for m in published] == [10, 20]
    await store.close()
    assert [m.seq for m in published] == [10, 20, 25]  # the shutdown checkpoint
    found = {r["seq"]: r["hash"] for r in rows(tmp_path / "audit.db")}
    assert marks(tmp_path / "audit.db") == [(m.seq, found[m.seq]) for m in published]
    assert all(m.valid(key.verify_key) and m.key_id == key.key_id for m in published)
    assert [m.count for m in published] == [10, 20, 25]
    # Nothing new: reopening and closing signs nothing more.
    store = await AuditStore.open(
        tmp_path / "audit.db", signing_key=key, on_checkpoint=published.append
    )
    await store.close()
    assert len(published) == 3


async def test_timed_checkpoint_when_rows_trickle_in(tmp_path: Path, key: SigningKey) -> None:
    published: list[SignedHead] = []
    store = await AuditStore.open(
        tmp_path / "audit.db", signing_key=key, checkpoint_interval=0.2,
        on_checkpoint=published.append,
    )  # fmt: skip
    try:
        await store.append(record(1))
        await store.append(record(2))
        for _ in range(100):
            if published:
                break
            await asyncio.sleep(0.02)
        assert [m.seq for m in published] == [2]
        await asyncio.sleep(0.3)  # idle, nothing new: no further checkpoint
        assert len(published) == 1
    finally:
        await store.close()


async def test_a_failing_publisher_does_not_stop_the_writer(
    tmp_path: Path, key: SigningKey
) -> None:
    def broken(head: SignedHead) -> None:
        raise RuntimeError("log sink down")

    store = await AuditStore.open(
        tmp_path / "audit.db", signing_key=key, checkpoint_every=1, on_checkpoint=broken
    )
    try:
        await store.append(record(1))
        await store.append(record(2))
        assert store.healthy
    finally:
        await store.close()
    assert [seq for seq, _ in marks(tmp_path / "audit.db")] == [1, 2]


def test_signed_head_round_trips_and_rejects_tampering(key: SigningKey) -> None:
    head = SignedHead.sign(key, 42, "ab" * 32, 1_700_000_000.25, 42)
    document = json.loads(json.dumps(head.to_json()))
    assert document["event"] == "audit.checkpoint" and document["time"].endswith("Z")
    again = SignedHead.parse(json.dumps(document), "test")
    assert again == head and again.valid(key.verify_key)
    log = "\n".join(['{"outcome": "allowed"}', json.dumps(document), "not json"])
    assert SignedHead.parse(log, "log") == head  # the last checkpoint line of a log
    for name, value in (("seq", 43), ("hash", "cd" * 32), ("at", 1_700_000_001.0)):
        assert not SignedHead.from_json({**document, name: value}, "x").valid(key.verify_key)
    assert not head.valid(SigningKey.generate().verify_key)
    with pytest.raises(ValueError, match="no signed audit head"):
        SignedHead.parse("hello", "pasted")


# -- key files --------------------------------------------------------------------------------


def test_signing_key_is_created_once_mode_0400_with_the_public_key_exported(tmp_path: Path) -> None:
    key = load_or_create_signing_key(tmp_path)
    assert stat.S_IMODE((tmp_path / KEY_FILE).stat().st_mode) == 0o400
    public = VerifyKey.load(tmp_path / PUBLIC_KEY_FILE)
    assert public.key_id == key.key_id
    assert load_or_create_signing_key(tmp_path).key_id == key.key_id
    (tmp_path / PUBLIC_KEY_FILE).unlink()  # a lost public key is exported again
    assert load_or_create_signing_key(tmp_path).key_id == key.key_id
    assert VerifyKey.load(tmp_path / PUBLIC_KEY_FILE).key_id == key.key_id


def test_a_key_others_can_read_is_refused(tmp_path: Path) -> None:
    load_or_create_signing_key(tmp_path)
    (tmp_path / KEY_FILE).chmod(0o644)
    with pytest.raises(KeyFileError, match=r"open to others.*chmod 400"):
        load_or_create_signing_key(tmp_path)


def test_a_key_file_that_is_not_ed25519_is_named(tmp_path: Path) -> None:
    (tmp_path / KEY_FILE).write_text("not a key")
    (tmp_path / KEY_FILE).chmod(0o400)
    with pytest.raises(KeyFileError, match=f"{KEY_FILE}: not a PEM private key"):
        load_or_create_signing_key(tmp_path)
    (tmp_path / "x.pub").write_text("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")
    with pytest.raises(KeyFileError, match=r"x\.pub: not a PEM public key"):
        VerifyKey.load(tmp_path / "x.pub")


# -- migration --------------------------------------------------------------------------------


def _version_1_database(db: Path, count: int) -> None:
    with closing(sqlite3.connect(db, isolation_level=None)) as conn:
        first = MIGRATIONS[0]
        assert isinstance(first, tuple)
        for statement in first:
            conn.execute(statement)
        for i in range(count):
            conn.execute(
                "INSERT INTO audit (at, kind, request_id, agent, headers, detail)"
                " VALUES (?, 'request', ?, 'bot', '[]', ?)",
                (1_000 + i, f"old_{i}", json.dumps({"n": i}) if i % 2 else None),
            )
        conn.execute("PRAGMA user_version = 1")


async def test_version_1_rows_are_chained_by_the_migration(tmp_path: Path, key: SigningKey) -> None:
    db = tmp_path / "audit.db"
    _version_1_database(db, 5)
    store = await AuditStore.open(db, signing_key=key)
    try:
        await store.append(record(1))
    finally:
        await store.close()
    found = rows(db)
    assert_chained(found)
    assert [r["request_id"] for r in found] == [
        *(f"old_{i}" for i in range(5)),
        "migration_2",
        "r_1",
    ]
    migration = found[5]
    assert migration["kind"] == "migration"
    assert json.loads(str(migration["detail"])) == {
        "from_version": 1,
        "to_version": 2,
        "chained": 5,
    }
    assert found[0]["interlock_version"] is None  # written before versions were recorded
    with closing(sqlite3.connect(db)) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        triggers = {
            r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='trigger'")
        }
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            conn.execute("UPDATE audit SET agent = 'x' WHERE seq = 1")
    assert {"audit_no_update", "audit_no_delete", "checkpoints_no_update"} <= triggers


async def test_a_failed_migration_changes_nothing(tmp_path: Path) -> None:
    db = tmp_path / "audit.db"
    _version_1_database(db, 3)
    with closing(sqlite3.connect(db, isolation_level=None)) as conn:
        conn.execute("CREATE TABLE checkpoints (x)")  # the migration's CREATE TABLE will fail
    with pytest.raises(AuditError, match="checkpoints already exists"):
        await AuditStore.open(db)
    with closing(sqlite3.connect(db)) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 1
        names = [r[1] for r in conn.execute("PRAGMA table_info(audit)")]
        triggers = {
            r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='trigger'")
        }
    assert "hash" not in names and "audit_no_update" in triggers


def test_the_cli_asks_for_an_upgrade_of_a_version_1_database(tmp_path: Path) -> None:
    _version_1_database(tmp_path / "audit.db", 2)
    result = cli("audit", "list", "--db", str(tmp_path / "audit.db"))
    assert result.code == 2
    assert "schema version 1, from before the hash chain; start `interlock run` once" in result.err


# -- interlock run ----------------------------------------------------------------------------


async def test_interlock_run_signs_its_history_and_publishes_the_shutdown_checkpoint(
    tmp_path: Path,
) -> None:
    log = io.StringIO()
    settings = RunSettings(
        listen=("127.0.0.1", 0), api_listen=("127.0.0.1", 0), data_dir=tmp_path / "data",
        decision_log=log, watch_policy=False,
    )  # fmt: skip
    interlock = Interlock(settings)
    await interlock.start()
    try:
        assert any("checkpoints signed by ed25519:" in line for line in interlock.describe())
        await interlock.audit.append(AuditRecord(kind=Kind.POLICY, request_id="p_1"))
    finally:
        await interlock.stop()
    published = [json.loads(line) for line in log.getvalue().splitlines()]
    checkpoint = next(p for p in published if p.get("event") == "audit.checkpoint")
    data = tmp_path / "data"
    assert stat.S_IMODE((data / KEY_FILE).stat().st_mode) == 0o400
    assert SignedHead.from_json(checkpoint, "log").valid(VerifyKey.load(data / PUBLIC_KEY_FILE))
    verified = cli("audit", "verify", "--data-dir", str(data), "--head", json.dumps(checkpoint))
    assert verified.code == 0, verified.out + verified.err
    assert f"signed through seq {checkpoint['seq']}" in verified.out
