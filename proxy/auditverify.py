"""Checking an audit history: every record against its hash and its predecessor, every checkpoint
and prune anchor against its signature, and the whole against a pinned head kept elsewhere.

Rows arrive in seq order, one at a time (constant memory); the first problem stops the check.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from proxy.auditchain import GENESIS, HASHED, row_hash, stored_hash
from proxy.auditkeys import SignedHead, VerifyKey, anchor_payload, rfc3339

CHANGED, MISSING, REORDERED = "changed", "missing", "reordered"
BAD_SIGNATURE, ROLLED_BACK = "bad signature", "older than the pinned head"
REORDER_WINDOW = 1000  # how far from its place a moved record is looked for


@dataclass(frozen=True)
class Problem:
    """The first thing wrong: the record (seq) it concerns, what kind of wrong, and the detail."""

    seq: int | None
    kind: str
    message: str


@dataclass
class Report:
    records: int = 0
    first_seq: int | None = None
    last_seq: int | None = None
    checkpoints: int = 0
    signed_through: int | None = None
    pruned: int = 0
    problem: Problem | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.problem is None

    @property
    def unsigned_tail(self) -> int:
        if self.last_seq is None:
            return 0
        return self.last_seq - max(self.signed_through or 0, (self.first_seq or 1) - 1)

    def to_json(self) -> dict[str, Any]:
        problem = self.problem
        return {
            "ok": self.ok,
            "records": self.records,
            "first_seq": self.first_seq,
            "last_seq": self.last_seq,
            "checkpoints": self.checkpoints,
            "signed_through": self.signed_through,
            "unsigned_tail": self.unsigned_tail,
            "pruned": self.pruned,
            "problem": None
            if problem is None
            else {"seq": problem.seq, "kind": problem.kind, "message": problem.message},
            "warnings": self.warnings,
        }


class ChainVerifier:
    """Feed rows (mappings of the stored columns) in seq order, then call `finish()`.

    `segment`: the rows are a contiguous run cut from a longer history (a time-bounded export),
    so the first row's predecessor cannot be checked. `partial`: the rows are a filtered
    selection, so only each row's own hash and the signatures can be checked. `expect_last`:
    the seq the rows should reach (an export's header says it).
    """

    def __init__(
        self,
        checkpoints: Iterable[SignedHead],
        key: VerifyKey | None,
        *,
        pinned: SignedHead | None = None,
        anchors: Iterable[Mapping[str, Any]] = (),
        segment: bool = False,
        partial: bool = False,
        expect_last: int | None = None,
    ) -> None:
        self.report = Report()
        self._marks = sorted(checkpoints, key=lambda m: m.seq)
        self._next_mark = 0
        self._key, self._pinned, self._segment, self._partial = key, pinned, segment, partial
        self._anchors = list(anchors)
        self._expect_last = expect_last
        self._prev: tuple[int, str] | None = None
        self._gap: tuple[int, int] | None = None  # (seq before a jump, seq after it)
        self._last_good_mark = 0
        self.report.checkpoints = len(self._marks)
        if pinned is not None and key is not None and not pinned.valid(key):
            self._fail(
                pinned.seq,
                BAD_SIGNATURE,
                f"the pinned head (seq {pinned.seq}) has a "
                f"bad signature for key {key.key_id}: it is not a head this key signed",
            )

    @property
    def stopped(self) -> bool:
        return self.report.problem is not None

    def feed(self, row: Mapping[str, Any]) -> bool:
        """Check one row; False once a problem is found (the rest need not be read)."""
        if self.stopped:
            return False
        seq, report = int(row["seq"]), self.report
        if self._gap is not None:  # the row after a jump in seq tells a move from a loss
            self._fail_gap(seq)
            return False
        if self._prev is None:
            report.first_seq = seq
            self._check_start(row)
        elif not self._partial:
            self._check_link(row)
            if self._gap is not None:
                return True
        if not self.stopped:
            self._check_own_hash(row)
        if self.stopped:
            return False
        self._check_marks(row)
        report.records += 1
        report.last_seq = seq
        self._prev = (seq, str(row["hash"]))
        return not self.stopped

    def finish(self) -> Report:
        report = self.report
        if self._gap is not None and not self.stopped:
            self._fail_gap(None)
        if self.stopped:
            return report
        last = report.last_seq if report.last_seq is not None else 0
        for mark in self._marks[self._next_mark :]:
            if not self._signed(mark):
                return report
            if mark.seq > last:
                self._fail(
                    last + 1,
                    MISSING,
                    f"records after seq {last} are missing: the "
                    f"checkpoint signed at {rfc3339(mark.at)} covers up to seq {mark.seq} "
                    "(the tail was cut)",
                )
                return report
        if self._expect_last is not None and self._expect_last > last:
            self._fail(
                last + 1,
                MISSING,
                f"records after seq {last} are missing: the export's header lists records up "
                f"to seq {self._expect_last} (lines were cut)",
            )
            return report
        pinned = self._pinned
        if pinned is not None and pinned.seq > last:
            self._fail(
                last + 1,
                ROLLED_BACK,
                f"history older than the pinned head: the log "
                f"ends at seq {last}, the pinned head (signed {rfc3339(pinned.at)}) is at "
                f"seq {pinned.seq}; it was rolled back to an older copy or cut",
            )
            return report
        if pinned is not None and report.first_seq is not None and pinned.seq < report.first_seq:
            report.warnings.append(
                f"the pinned head (seq {pinned.seq}) is in pruned history; it could not be compared"
            )
        if report.records and report.unsigned_tail > 0 and not self._partial:
            start = last - report.unsigned_tail + 1
            report.warnings.append(
                f"unsigned tail: {report.unsigned_tail} records (seq {start}-{last}) come after "
                "the last signed checkpoint; the next checkpoint will cover them"
            )
        return report

    # -- checks -----------------------------------------------------------------------------

    def _check_start(self, row: Mapping[str, Any]) -> None:
        seq, prev_hash = int(row["seq"]), row["prev_hash"]
        if self._partial:
            return
        if prev_hash == GENESIS:
            if seq != 1:
                self._fail(
                    1,
                    MISSING,
                    f"records seq 1-{seq - 1} are missing: seq {seq} is the "
                    "first record but chains from the genesis",
                )
            return
        if self._segment:
            self.report.warnings.append(
                f"this export starts at seq {seq}; the records before "
                "it are not in it, so its first link is not checked"
            )
            return
        for anchor in self._anchors:
            detail = _detail(anchor.get("detail"))
            if detail.get("removed_to_seq") != seq - 1 or detail.get("chained_from") != prev_hash:
                continue
            if self._key is not None and not (
                detail.get("key_id") == self._key.key_id
                and self._key.verify(str(detail.get("signature")), anchor_payload(detail))
            ):
                self._fail(
                    int(anchor["seq"]),
                    BAD_SIGNATURE,
                    f"the prune anchor at seq "
                    f"{anchor['seq']} has a bad signature: it does not vouch for the "
                    f"removal of the records before seq {seq}",
                )
                return
            self.report.pruned = int(detail.get("removed_count") or 0)
            self._skip_marks_before(seq)
            return
        self._fail(
            seq - 1,
            MISSING,
            f"records before seq {seq} are missing: the first record "
            f"chains from {prev_hash!s:.16}..., not from the genesis, and no signed prune "
            "anchor accounts for them",
        )

    def _check_link(self, row: Mapping[str, Any]) -> None:
        assert self._prev is not None
        prev_seq, prev_hash = self._prev
        seq = int(row["seq"])
        if seq <= prev_seq:
            self._fail(
                seq,
                REORDERED,
                f"record seq {seq} comes after seq {prev_seq}: the "
                "records were reordered or repeated",
            )
        elif seq > prev_seq + 1:
            self._gap = (prev_seq, seq)
        elif row["prev_hash"] != prev_hash and stored_hash(row) == row["hash"]:
            self._fail(
                prev_seq,
                CHANGED,
                f"record seq {prev_seq} was changed: seq {seq} chains "
                "from a different hash than it has now",
            )

    def _fail_gap(self, next_seq: int | None) -> None:
        """After seq `prev` came `jumped`: if a lower seq follows, records were moved."""
        assert self._gap is not None
        prev, jumped = self._gap
        if next_seq is not None and next_seq < jumped:
            self._fail(
                prev + 1,
                REORDERED,
                f"record seq {jumped} comes before seq {next_seq}: the records were reordered",
            )
            return
        gap = f"seq {prev + 1}" if jumped == prev + 2 else f"seq {prev + 1}-{jumped - 1}"
        self._fail(prev + 1, MISSING, f"record {gap} is missing: seq {jumped} follows seq {prev}")

    def _check_own_hash(self, row: Mapping[str, Any]) -> None:
        if stored_hash(row) == row["hash"]:
            return
        seq = int(row["seq"])
        written_as = self._written_as(row)
        if written_as is not None:
            self._fail(
                seq,
                REORDERED,
                f"record seq {seq} is out of order: its content was written as seq {written_as}",
            )
        else:
            self._fail(
                seq, CHANGED, f"record seq {seq} was changed: its content does not match its hash"
            )

    def _written_as(self, row: Mapping[str, Any]) -> int | None:
        """The seq this row's content was hashed with, when it is near; None if not found."""
        values = [row[name] for name in HASHED]
        seq = int(row["seq"])
        for distance in range(1, REORDER_WINDOW + 1):
            for candidate in (seq - distance, seq + distance):
                values[0] = candidate
                if candidate > 0 and row_hash(values) == row["hash"]:
                    return candidate
        return None

    def _check_marks(self, row: Mapping[str, Any]) -> None:
        seq = int(row["seq"])
        while self._next_mark < len(self._marks) and self._marks[self._next_mark].seq <= seq:
            mark = self._marks[self._next_mark]
            self._next_mark += 1
            if not self._signed(mark):
                return
            if mark.seq < seq:  # its record is not here: partial exports only
                continue
            if mark.hash != row["hash"]:
                self._fail(
                    seq,
                    CHANGED,
                    f"record seq {seq} does not match the checkpoint "
                    f"signed at {rfc3339(mark.at)}: records after seq "
                    f"{self._last_good_mark} were changed and the chain rebuilt",
                )
                return
            self._last_good_mark = seq
            self.report.signed_through = seq
        pinned = self._pinned
        if pinned is not None and pinned.seq == seq:
            if pinned.hash != row["hash"]:
                self._fail(
                    seq,
                    CHANGED,
                    f"record seq {seq} does not match the pinned head "
                    f"(signed {rfc3339(pinned.at)}): the history up to it was rewritten",
                )
            else:
                self.report.signed_through = max(self.report.signed_through or 0, seq)

    def _skip_marks_before(self, seq: int) -> None:
        """Checkpoints of pruned records cannot be compared; their signatures still are."""
        while self._next_mark < len(self._marks) and self._marks[self._next_mark].seq < seq:
            if not self._signed(self._marks[self._next_mark]):
                return
            self._next_mark += 1

    def _signed(self, mark: SignedHead) -> bool:
        if self._key is None or mark.valid(self._key):
            return True
        whose = "" if mark.key_id == self._key.key_id else f" (signed by {mark.key_id})"
        self._fail(
            mark.seq,
            BAD_SIGNATURE,
            f"the checkpoint at seq {mark.seq}{whose} has a bad "
            f"signature for key {self._key.key_id}: it was forged or altered",
        )
        return False

    def _fail(self, seq: int | None, kind: str, message: str) -> None:
        if self.report.problem is None:
            self.report.problem = Problem(seq, kind, message)


def _detail(value: Any) -> dict[str, Any]:
    try:
        detail = json.loads(value) if isinstance(value, str) else value
    except json.JSONDecodeError:
        return {}
    return detail if isinstance(detail, dict) else {}
