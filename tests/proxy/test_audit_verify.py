"""`interlock audit verify` on real databases and real exports, tampered with the way someone with
write access to the files would: each tampering is caught, and named."""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from proxy.auditchain import HASHED, encode_json_columns, row_hash
from proxy.auditkeys import SignedHead, SigningKey, public_pem
from proxy.auditschema import INSERT_CHECKPOINT_SQL
from tests.proxy.auditkit import (
    T0,
    attacker,
    cli,
    history,
    lines_of,
    rebuild_chain,
    rewrite,
    row,
    write_lines,
)

ROWS = 77  # 35 requests, 7 holds, 35 completions; checkpoints at 10, 20, ..., 70 and 77


@pytest.fixture
def data(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    history(root, 35)
    return root


def verify(data: Path, *extra: str) -> tuple[int, str]:
    result = cli("audit", "verify", "--data-dir", str(data), *extra)
    return result.code, result.out + result.err


def export(data: Path, dest: Path, *extra: str) -> Path:
    result = cli("audit", "export", "--data-dir", str(data), "-o", str(dest), *extra)
    assert result.code == 0, result.err
    return dest


def verify_file(path: Path, *extra: str) -> tuple[int, str]:
    result = cli("audit", "verify", "--file", str(path), *extra)
    return result.code, result.out + result.err


def head(data: Path) -> str:
    result = cli("audit", "head", "--data-dir", str(data))
    assert result.code == 0, result.err
    return result.out.strip()


def test_an_untouched_history_verifies(data: Path) -> None:
    code, out = verify(data)
    assert code == 0, out
    assert (
        f"verified: {ROWS} records (seq 1-{ROWS}), chain intact, 8 checkpoints, signed through seq {ROWS}"
        in out
    )
    assert "warning" not in out
    report = json.loads(cli("audit", "verify", "--data-dir", str(data), "--json").out)
    assert report["ok"] and report["unsigned_tail"] == 0 and report["problem"] is None


# -- the database -----------------------------------------------------------------------------


def test_edited_row(data: Path) -> None:
    with attacker(data / "audit.db") as conn:
        conn.execute("UPDATE audit SET outcome = 'allowed' WHERE seq = 12")
    code, out = verify(data)
    assert code == 1
    assert (
        "BROKEN at seq 12 (changed): record seq 12 was changed: its content does not match its hash"
        in out
    )


def test_edited_row_with_its_own_hash_recomputed(data: Path) -> None:
    with attacker(data / "audit.db") as conn:
        values = row(conn, 12)
        values["outcome"] = "allowed"
        values["hash"] = row_hash([values[name] for name in HASHED])
        rewrite(conn, 12, values)
    code, out = verify(data)
    assert code == 1
    assert (
        "BROKEN at seq 12 (changed): record seq 12 was changed: seq 13 chains from a different hash"
        in out
    )


def test_deleted_row(data: Path) -> None:
    with attacker(data / "audit.db") as conn:
        conn.execute("DELETE FROM audit WHERE seq = 12")
    code, out = verify(data)
    assert code == 1
    assert "BROKEN at seq 12 (missing): record seq 12 is missing: seq 13 follows seq 11" in out


def test_reordered_rows(data: Path) -> None:
    with attacker(data / "audit.db") as conn:
        first, second = row(conn, 12), row(conn, 14)
        rewrite(conn, 12, second)
        rewrite(conn, 14, first)
    code, out = verify(data)
    assert code == 1
    assert (
        "BROKEN at seq 12 (reordered): record seq 12 is out of order: its content was written as seq 14"
        in out
    )


def test_edit_with_the_whole_chain_rebuilt_is_caught_by_the_signature(data: Path) -> None:
    with attacker(data / "audit.db") as conn:
        conn.execute("UPDATE audit SET decided_by = 'person:mallory' WHERE seq = 12")
        rebuild_chain(conn, 12)
    code, out = verify(data)
    assert code == 1
    assert re.search(
        r"BROKEN at seq 20 \(changed\): record seq 20 does not match the checkpoint signed at "
        r"\S+Z: records after seq 10 were changed and the chain rebuilt",
        out,
    ), out


def test_rebuilt_chain_with_checkpoints_rewritten_has_bad_signatures(data: Path) -> None:
    with attacker(data / "audit.db") as conn:
        conn.execute("UPDATE audit SET decided_by = 'person:mallory' WHERE seq = 12")
        rebuild_chain(conn, 12)
        conn.execute("UPDATE checkpoints SET head_hash = (SELECT hash FROM audit a"
                     " WHERE a.seq = checkpoints.seq)")  # fmt: skip
    code, out = verify(data)
    assert code == 1
    assert (
        "BROKEN at seq 20 (bad signature): the checkpoint at seq 20 has a bad signature for key ed25519:"
        in out
    )


def test_rebuilt_chain_signed_with_another_key_is_refused(data: Path) -> None:
    mallory = SigningKey.generate()
    with attacker(data / "audit.db") as conn:
        conn.execute("UPDATE audit SET decided_by = 'person:mallory' WHERE seq = 12")
        rebuild_chain(conn, 12)
        conn.execute("DELETE FROM checkpoints WHERE seq >= 20")
        for seq in (20, ROWS):
            forged = SignedHead.sign(mallory, seq, row(conn, seq)["hash"], T0, seq)
            conn.execute(INSERT_CHECKPOINT_SQL, (seq, forged.at, forged.hash, seq,
                                                 forged.signature, forged.key_id))  # fmt: skip
    code, out = verify(data)
    assert code == 1
    assert (
        f"BROKEN at seq 20 (bad signature): the checkpoint at seq 20 (signed by {mallory.key_id})"
        in out
    )


def test_cut_tail_is_caught_by_a_later_checkpoint(data: Path) -> None:
    with attacker(data / "audit.db") as conn:
        conn.execute("DELETE FROM audit WHERE seq > 65")
    code, out = verify(data)
    assert code == 1
    assert re.search(
        r"BROKEN at seq 66 \(missing\): records after seq 65 are missing: the "
        r"checkpoint signed at \S+ covers up to seq 70 \(the tail was cut\)",
        out,
    ), out


def test_cut_tail_with_its_checkpoints_is_caught_by_a_pinned_head(data: Path) -> None:
    pinned = head(data)
    with attacker(data / "audit.db") as conn:
        conn.execute("DELETE FROM audit WHERE seq > 65")
        conn.execute("DELETE FROM checkpoints WHERE seq > 65")
    code, out = verify(data)
    assert code == 0 and "verified: 65 records" in out  # consistent on its own ...
    code, out = verify(data, "--head", pinned)
    assert code == 1  # ... but not with the head kept elsewhere
    assert (
        "BROKEN at seq 66 (older than the pinned head): history older than the pinned head: the log ends at seq 65, the pinned head"
        in out
    )
    assert f"is at seq {ROWS}; it was rolled back to an older copy or cut" in out


def test_rollback_to_an_older_copy_is_caught_against_a_pinned_head(tmp_path: Path) -> None:
    data = tmp_path / "data"
    history(data, 10)
    old = tmp_path / "old.db"
    with closing(sqlite3.connect(data / "audit.db")) as src, closing(sqlite3.connect(old)) as dst:
        src.backup(dst)  # a consistent copy, as a backup tool would take
    history(data, 10, start=10)
    pinned_file = tmp_path / "pinned.json"
    pinned_file.write_text(head(data))
    shutil.copy(old, data / "audit.db")
    for suffix in ("-wal", "-shm"):
        (data / f"audit.db{suffix}").unlink(missing_ok=True)
    code, out = verify(data)
    assert code == 0, out  # an older history is still a valid history ...
    code, out = verify(data, "--head", str(pinned_file))
    assert code == 1  # ... but not the one pinned
    assert (
        "(older than the pinned head): history older than the pinned head: the log ends at seq 22"
        in out
    )


def test_a_rewritten_record_does_not_match_the_pinned_head(data: Path) -> None:
    pinned = head(data)
    with attacker(data / "audit.db") as conn:
        conn.execute("DELETE FROM checkpoints")
        conn.execute("UPDATE audit SET reason = 'fine' WHERE seq = 76")
        rebuild_chain(conn, 76)
    assert verify(data)[0] == 0
    code, out = verify(data, "--head", pinned)
    assert code == 1
    assert (
        f"BROKEN at seq {ROWS} (changed): record seq {ROWS} does not match the pinned head" in out
    )


def test_a_forged_pinned_head_is_refused(data: Path) -> None:
    document = json.loads(head(data))
    document["seq"] = 70
    code, out = verify(data, "--head", json.dumps(document))
    assert code == 1
    assert "(bad signature): the pinned head (seq 70) has a bad signature" in out


def test_unsigned_tail_is_a_warning(tmp_path: Path) -> None:
    data = tmp_path / "data"
    history(data, 12, checkpoint_every=10)
    with attacker(data / "audit.db") as conn:  # as if the process died before its last checkpoint
        conn.execute("DELETE FROM checkpoints WHERE seq > 20")
    code, out = verify(data)
    assert code == 0
    assert "signed through seq 20" in out
    assert (
        "warning: unsigned tail: 7 records (seq 21-27) come after the last signed checkpoint" in out
    )


def test_signatures_are_checked_against_the_key_given(data: Path, tmp_path: Path) -> None:
    (data / "audit-signing.pub").rename(tmp_path / "kept-elsewhere.pub")
    code, out = verify(data)
    assert code == 2 and "cannot check signatures: no public key" in out
    assert verify(data, "--pubkey", str(tmp_path / "kept-elsewhere.pub"))[0] == 0
    other = tmp_path / "other.pub"
    other.write_text(public_pem(SigningKey.generate().private.public_key()))
    code, out = verify(data, "--pubkey", str(other))
    assert code == 1 and "BROKEN at seq 10 (bad signature)" in out


# -- exports ----------------------------------------------------------------------------------


@pytest.fixture
def exported(data: Path, tmp_path: Path) -> Path:
    return export(data, tmp_path / "audit.jsonl")


def record_lines(lines: list[str]) -> dict[int, int]:
    """Line index by seq, for record lines."""
    return {json.loads(line)["seq"]: i for i, line in enumerate(lines)
            if json.loads(line)["type"] == "record"}  # fmt: skip


def test_an_export_verifies_on_its_own(exported: Path, data: Path) -> None:
    code, out = verify_file(exported)
    assert code == 0, out
    assert f"verified: {ROWS} records (seq 1-{ROWS}), chain intact, 8 checkpoints" in out
    assert "checked against the public key inside the export" in out
    code, out = verify_file(
        exported, "--pubkey", str(data / "audit-signing.pub"), "--head", head(data)
    )
    assert code == 0 and "inside the export" not in out


def test_export_edited_line(exported: Path) -> None:
    lines = lines_of(exported)
    index = record_lines(lines)[12]
    document = json.loads(lines[index])
    document["reason"] = "approved by the CFO"
    lines[index] = json.dumps(document) + "\n"
    write_lines(exported, lines)
    code, out = verify_file(exported)
    assert code == 1
    assert (
        "BROKEN at seq 12 (changed): record seq 12 was changed: its content does not match its hash"
        in out
    )


def test_export_deleted_line(exported: Path) -> None:
    lines = lines_of(exported)
    del lines[record_lines(lines)[12]]
    write_lines(exported, lines)
    code, out = verify_file(exported)
    assert code == 1
    assert "BROKEN at seq 12 (missing): record seq 12 is missing: seq 13 follows seq 11" in out


def test_export_reordered_lines(exported: Path) -> None:
    lines = lines_of(exported)
    at = record_lines(lines)
    lines[at[12]], lines[at[14]] = lines[at[14]], lines[at[12]]
    write_lines(exported, lines)
    code, out = verify_file(exported)
    assert code == 1
    assert (
        "BROKEN at seq 12 (reordered): record seq 14 comes before seq 13: the records were reordered"
        in out
    )


def test_export_edited_and_rehashed_is_caught_by_the_signature(exported: Path) -> None:
    lines = lines_of(exported)
    prev = None
    for i, line in enumerate(lines):
        document = json.loads(line)
        if document["type"] != "record" or document["seq"] < 12:
            continue
        if document["seq"] == 12:
            document["decided_by"] = "person:mallory"
        if prev is not None:
            document["prev_hash"] = prev
        stored = encode_json_columns(document)
        document["hash"] = prev = row_hash([stored[name] for name in HASHED])
        lines[i] = json.dumps(document) + "\n"
    write_lines(exported, lines)
    code, out = verify_file(exported)
    assert code == 1
    assert (
        "BROKEN at seq 20 (changed): record seq 20 does not match the checkpoint signed at" in out
    )


def test_export_cut_tail(exported: Path, data: Path) -> None:
    lines = lines_of(exported)
    write_lines(exported, lines[: record_lines(lines)[60] + 1])
    code, out = verify_file(exported)
    assert code == 1
    assert (
        f"BROKEN at seq 61 (missing): records after seq 60 are missing: the export's header lists records up to seq {ROWS}"
        in out
    )
    header = json.loads(lines[0])
    header["last_seq"] = 60  # the header is not signed: only a pinned head catches this
    write_lines(exported, [json.dumps(header) + "\n", *lines[1 : record_lines(lines)[60] + 1]])
    assert verify_file(exported)[0] == 0
    code, out = verify_file(exported, "--head", head(data))
    assert code == 1 and "(older than the pinned head)" in out


def test_time_bounded_export_is_a_segment_that_verifies(data: Path, tmp_path: Path) -> None:
    path = export(data, tmp_path / "segment.jsonl", "--since", "2023-11-14T22:13:40Z",
                  "--until", "2023-11-14T22:13:50Z")  # fmt: skip
    header = json.loads(lines_of(path)[0])
    assert (
        header["chain"] == "segment"
        and header["count"] == header["last_seq"] - header["first_seq"] + 1
    )
    code, out = verify_file(path)
    assert code == 0, out
    assert f"this export starts at seq {header['first_seq']}" in out


def test_filtered_export_checks_each_record(data: Path, tmp_path: Path) -> None:
    path = export(data, tmp_path / "bot.jsonl", "--agent", "bot")
    code, out = verify_file(path)
    assert code == 0, out
    assert "filtered by column" in out
    lines = lines_of(path)
    document = json.loads(lines[1])
    document["host"] = "evil.example"
    lines[1] = json.dumps(document) + "\n"
    write_lines(path, lines)
    code, out = verify_file(path)
    assert code == 1 and "(changed)" in out


def test_verify_names_bad_input(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    path.write_text('{"schema": "interlock.audit/1", "type": "export"}\nnot json\n')
    code, out = verify_file(path)
    assert code == 2 and f"{path}:2: not JSON" in out
    path.write_text('{"a": 1}\n')
    assert f"{path}:1: not an interlock.audit/1 line" in verify_file(path)[1]
    code, out = verify_file(tmp_path / "missing.jsonl")
    assert code == 2 and "cannot read" in out
