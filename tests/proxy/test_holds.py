"""The hold queue on its own: an unrecorded hold is never visible nor decidable."""

from __future__ import annotations

import pytest

from policies.model import Action, Decision, HoldSettings
from proxy.events import EventBus
from proxy.holds import AlreadyVoted, HeldRequest, HoldNotFound, HoldQueue
from proxy.outcomes import Outcome
from proxy.records import AuditRecord


class Audit:
    def __init__(self) -> None:
        self.rows: list[AuditRecord] = []

    async def append(self, record: AuditRecord) -> int:
        self.rows.append(record)
        return len(self.rows)


def held() -> HeldRequest:
    return HeldRequest("r_1", "bot", "127.0.0.1:1", "POST", "https", "api.example", 443,
                       "/deploy", "", (), 0, "", None)  # fmt: skip


async def test_an_unannounced_hold_is_invisible_and_an_abandoned_one_ends_in_error() -> None:
    queue = HoldQueue(Audit(), EventBus())
    decision = Decision(Action.HOLD, "r", "why", hold=HoldSettings(timeout=60))
    hold, joined = queue.open(held(), decision, "k")
    assert not joined and queue.pending() == []
    with pytest.raises(HoldNotFound):
        await queue.decide(hold.id, approve=True, by="person:a", channel="api")
    queue.abandon(hold, "could not be recorded")
    assert hold.state is Outcome.ERROR and await queue.wait(hold, 0.1) is Outcome.ERROR
    again, joined = queue.open(held(), decision, "k")  # the key is free again
    assert not joined and again is not hold
    queue.announce(again)
    assert queue.pending() == [again]
    await queue.expire_all("test over")


async def test_a_quorum_counts_the_people_behind_a_vote_not_the_names_it_came_under() -> None:
    queue = HoldQueue(Audit(), EventBus())
    decision = Decision(Action.HOLD, "r", "why", hold=HoldSettings(timeout=60, approvals=2))
    hold, _ = queue.open(held(), decision, "k")
    queue.announce(hold)
    await queue.decide(hold.id, approve=True, by="person:link:bob", channel="link:manual:alice",
                       people=["person:bob", "person:alice"])  # fmt: skip
    for by, people in [("person:alice", []), ("person:slack:U0BOB", ["person:bob"])]:
        with pytest.raises(AlreadyVoted, match="cannot count twice"):
            await queue.decide(hold.id, approve=True, by=by, channel="x", people=people)
    assert hold.pending and [sorted(v.people) for v in hold.votes] == [
        ["person:alice", "person:bob", "person:link:bob"]]  # fmt: skip
    await queue.decide(hold.id, approve=True, by="person:carol", channel="tui")
    assert hold.state is Outcome.APPROVED
