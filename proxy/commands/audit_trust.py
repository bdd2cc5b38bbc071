"""`interlock audit export | verify | head | prune`: the records out, checked, pinned, retired."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

from proxy.auditchain import STORED, AuditError
from proxy.auditexport import (
    ExportError,
    Progress,
    export_csv,
    export_jsonl,
    export_records,
    plan_export,
    scan_export,
)
from proxy.auditkeys import (
    KEY_FILE,
    PUBLIC_KEY_FILE,
    KeyFileError,
    SignedHead,
    SigningKey,
    VerifyKey,
    public_pem,
    rfc3339,
)
from proxy.auditprune import prune
from proxy.auditquery import checkpoints, iter_rows, latest_checkpoint, parse_time
from proxy.auditschema import KIND_PRUNE
from proxy.auditverify import ChainVerifier, Report
from proxy.commands.audit_common import (
    FAILED,
    OK,
    UNREADABLE,
    Source,
    fail,
    filters_of,
    snapshot,
    source_of,
)
from proxy.datadir import AlreadyRunning, DataDir, acquire_lock
from proxy.output import emit_json


def _public_key(keys: Path) -> VerifyKey | None:
    path = keys / PUBLIC_KEY_FILE
    return VerifyKey.load(path) if path.is_file() else None


def run_export(args: argparse.Namespace) -> int:
    try:
        filters = filters_of(args)
        source = source_of(args)
        key = _public_key(source.keys)
        with snapshot(source.db) as conn, _output(args.output) as out:
            plan = plan_export(conn, filters)
            progress = Progress(plan.count)
            if args.output is None and sys.stdout.isatty():
                progress.enabled = False  # the records are on the same terminal
            if args.format == "csv":
                written = export_csv(conn, plan, out, progress)
            else:
                pem = (key.key_id, public_pem(key.public)) if key is not None else None
                written = export_jsonl(conn, plan, out, progress, pem, str(source.db))
    except (AuditError, KeyFileError, ValueError) as exc:
        return fail(str(exc))
    except BrokenPipeError:
        raise
    except OSError as exc:
        return fail(f"cannot write {args.output or 'stdout'}: {exc.strerror}")
    if args.output is not None:
        print(
            f"exported {written} records to {args.output} ({args.format}, {plan.chain})",
            file=sys.stderr,
        )
    return OK


@contextlib.contextmanager
def _output(path: Path | None) -> Iterator[TextIO]:
    if path is None:
        yield sys.stdout
        return
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    with open(fd, "w", encoding="utf-8", newline="") as file:
        yield file


def _pinned_head(text: str | None) -> SignedHead | None:
    if text is None:
        return None
    if text.lstrip().startswith("{"):
        return SignedHead.parse(text, "--head")
    path = Path(text)
    try:
        return SignedHead.parse(path.read_text(), str(path))
    except OSError as exc:
        raise ValueError(f"cannot read --head {path}: {exc.strerror}") from exc


def run_verify(args: argparse.Namespace) -> int:
    if args.file is not None and args.db is not None:
        return fail("pass either --db or --file, not both")
    notes: list[str] = []
    try:
        pinned = _pinned_head(args.head)
        if args.file is not None:
            report = _verify_file(args.file, args.pubkey, pinned, notes)
        else:
            report = _verify_db(source_of(args), args.pubkey, pinned, notes)
    except (AuditError, ExportError, KeyFileError, ValueError) as exc:
        return fail(str(exc))
    if report is None:
        return UNREADABLE
    report.warnings[:0] = notes
    if args.json:
        emit_json(report.to_json())
    else:
        _print_report(report)
    return OK if report.ok else FAILED


def _verify_db(
    source: Source, pubkey: Path | None, pinned: SignedHead | None, notes: list[str]
) -> Report | None:
    key = VerifyKey.load(pubkey) if pubkey is not None else _public_key(source.keys)
    with snapshot(source.db) as conn:
        marks = checkpoints(conn)
        if key is None and (marks or pinned is not None):
            fail(
                f"cannot check signatures: no public key at {source.keys / PUBLIC_KEY_FILE}; "
                "pass --pubkey FILE"
            )
            return None
        columns = ", ".join(STORED)
        anchors = [
            dict(zip(STORED, row, strict=True))
            for row in conn.execute(f"SELECT {columns} FROM audit WHERE kind = ?", (KIND_PRUNE,))
        ]
        verifier = ChainVerifier(marks, key, pinned=pinned, anchors=anchors)
        for row in iter_rows(conn, f"SELECT {columns} FROM audit ORDER BY seq", ()):
            if not verifier.feed(dict(zip(STORED, row, strict=True))):
                break
    if key is not None:
        notes.append(f"signatures checked against {key.key_id}")
    return verifier.finish()


def _verify_file(
    path: Path, pubkey: Path | None, pinned: SignedHead | None, notes: list[str]
) -> Report | None:
    scan = scan_export(path)
    header = scan.header
    if pubkey is not None:
        key: VerifyKey | None = VerifyKey.load(pubkey)
    elif header.get("public_key"):
        key = VerifyKey.from_pem(str(header["public_key"]), f"{path} (its public_key)")
        notes.append(
            f"signatures checked against the public key inside the export "
            f"({key.key_id}); pass --pubkey with a copy you trust"
        )
    else:
        key = None
    if key is None and (scan.checkpoints or pinned is not None):
        fail(f"cannot check signatures: {path} carries no public key; pass --pubkey FILE")
        return None
    chain = header.get("chain")
    if chain == "partial":
        notes.append(
            "this export is filtered by column: each record and signature is checked, "
            "but not that none is missing"
        )
    verifier = ChainVerifier(
        scan.checkpoints,
        key,
        pinned=pinned,
        anchors=scan.anchors,
        segment=chain == "segment",
        partial=chain == "partial",
        expect_last=header.get("last_seq") if chain != "partial" else None,
    )
    for row in export_records(path):
        if not verifier.feed(row):
            break
    return verifier.finish()


def _print_report(report: Report) -> None:
    if report.problem is not None:
        problem = report.problem
        where = f"seq {problem.seq}" if problem.seq is not None else "the start"
        print(f"audit log BROKEN at {where} ({problem.kind}): {problem.message}")
    elif report.records == 0:
        print("audit log verified: no records")
    else:
        signed = (
            f"signed through seq {report.signed_through}"
            if report.signed_through is not None
            else "no signed checkpoint yet"
        )
        pruned = (
            f", {report.pruned} older records pruned under a signed anchor" if report.pruned else ""
        )
        print(
            f"audit log verified: {report.records} records (seq {report.first_seq}-"
            f"{report.last_seq}), chain intact, {_plural(report.checkpoints, 'checkpoint')}, "
            f"{signed}{pruned}"
        )
    for warning in report.warnings:
        print(f"  note: {warning}" if warning.startswith("signatures") else f"  warning: {warning}")


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def run_head(args: argparse.Namespace) -> int:
    try:
        source = source_of(args)
        with snapshot(source.db) as conn:
            mark = latest_checkpoint(conn)
    except AuditError as exc:
        return fail(str(exc))
    if mark is None:
        return fail(f"no signed checkpoint in {source.db} yet", FAILED)
    print(json.dumps(mark.to_json()))
    return OK


# -- prune --------------------------------------------------------------------------------------


def run_prune(args: argparse.Namespace) -> int:
    """Refused while `interlock run` holds the data directory: its writer owns the chain head,
    and a long delete would hold the write lock past the gate's commit timeout."""
    try:
        before = parse_time(args.before)
    except ValueError as exc:
        return fail(str(exc))
    if before > time.time():
        return fail(f"--before {args.before} is in the future; that would remove everything")
    source = source_of(args)
    if not source.db.is_file():
        return fail(f"no audit database at {source.db}")
    try:
        lock = acquire_lock(DataDir(source.keys))
    except AlreadyRunning as exc:
        return fail(f"refusing to prune: {exc}; its audit writer owns the chain head", FAILED)
    with lock:
        try:
            key = SigningKey.load(source.keys / KEY_FILE)
            plan, signed = prune(source.db, before, key, dry_run=args.dry_run)
        except (AuditError, KeyFileError) as exc:
            return fail(str(exc))
    if plan is None:
        print(f"nothing to prune: no record is older than {rfc3339(before)}")
    elif args.dry_run:
        print(
            f"would remove {plan.count} records (seq {plan.first}-{plan.last}) from before "
            f"{rfc3339(before)}"
        )
    else:
        assert signed is not None
        print(
            f"removed {plan.count} records (seq {plan.first}-{plan.last}); the signed anchor "
            f"is seq {signed.seq}"
        )
        print(json.dumps(signed.to_json()))
    return OK
