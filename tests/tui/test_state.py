"""The dashboard's state: live events and (re-)read snapshots meet by id, in either order."""

from __future__ import annotations

from dataclasses import replace

from tests.tui.fakes import hold
from tui.models import ActivityRow
from tui.state import ActivityLog, GrantBook, HoldBook, apply_event


def test_a_snapshot_read_before_live_changes_does_not_undo_them() -> None:
    book = HoldBook()
    a, b, c = hold(1), hold(2), hold(3)
    book.upsert(a)
    book.upsert(b)
    since = book.version  # the snapshot read begins here...
    book.upsert(c)  # ...a hold is created while it is in flight...
    book.finish(replace(b, state="approved"))  # ...and one is decided elsewhere
    book.reset([a, b], since)  # the snapshot still lists b and not c
    assert [h.id for h in book.pending()] == [a.id, c.id]
    assert book.get(b.id).state == "approved"  # type: ignore[union-attr]


def test_a_hold_missing_from_a_snapshot_is_no_longer_pending() -> None:
    book = HoldBook()
    book.upsert(hold(1))
    book.upsert(hold(2))
    book.reset([hold(2)], book.version)
    assert [h.id for h in book.pending()] == [hold(2).id]
    assert book.get(hold(1).id).state == "gone"  # type: ignore[union-attr]
    assert book.decided_elsewhere(hold(1).id)


def test_own_decisions_are_told_apart_and_failures_kept_until_the_hold_ends() -> None:
    book = HoldBook()
    book.upsert(hold(1))
    book.start_decision(hold(1).id, "approve")
    book.decision_failed(hold(1).id, "approve", "unreachable")
    assert book.failed[hold(1).id].reason == "unreachable"
    book.finish(replace(hold(1), state="expired"))
    assert book.failed == {} and book.decided_elsewhere(hold(1).id)


def test_events_update_a_request_in_place_keeping_its_arrival_time() -> None:
    book, grants, activity = HoldBook(), GrantBook(), ActivityLog()
    data = {"id": "h_1", "request_id": "r_1", "state": "pending", "method": "POST",
            "url": "https://x/y", "host": "x", "path": "/y", "created_at": 100.0}  # fmt: skip
    applied = apply_event(book, grants, activity, "hold.created", data)
    assert applied.new_hold is not None and applied.parts == ("holds", "activity")
    activity.put(ActivityRow.from_event({"request_id": "r_2", "ts": 101.0, "url": "https://x/z",
                                         "outcome": "allowed"}))  # fmt: skip
    apply_event(book, grants, activity, "hold.decided", data | {"state": "approved"})
    first, second = activity.rows()
    assert (first.request_id, first.outcome, first.at) == ("r_1", "approved", 100.0)
    assert second.request_id == "r_2" and len(book) == 0
    assert apply_event(book, grants, activity, "resync", {}).resync


def test_a_failing_channel_is_told_once_when_it_starts_failing_and_once_when_it_gives_up() -> None:
    book, grants, activity = HoldBook(), GrantBook(), ActivityLog()
    failed = {"channel": "ops-slack", "hold_id": "h_1", "error": "[Errno 111] refused"}
    first = apply_event(book, grants, activity, "channel.failed", failed | {"attempt": 1})
    again = apply_event(book, grants, activity, "channel.failed", failed | {"attempt": 2})
    final = apply_event(
        book, grants, activity, "channel.failed", failed | {"attempt": 7, "final": True}
    )
    assert first.error and "ops-slack failed, retrying: [Errno 111] refused" in first.notice
    assert again.notice == ""
    assert final.error and "ops-slack could not be reached" in final.notice


def test_a_hold_shows_each_channel_and_its_error() -> None:
    from rich.console import Console

    from tui.widgets.hold_detail import channels_line

    view = hold(1, channels={"ops-webhook": {"state": "failed", "error": "HTTP 500"},
                             "ops-slack": {"state": "delivered"}, "pager": {"state": "scheduled"}})  # fmt: skip
    assert view.channels == (("ops-slack", "delivered", ""), ("ops-webhook", "failed", "HTTP 500"),
                             ("pager", "scheduled", ""))  # fmt: skip
    palette = {"error": "red", "warning": "yellow"}
    console = Console(width=200, record=True)
    console.print(channels_line(view, palette))
    text = console.export_text()
    assert "ops-slack delivered · ops-webhook failed (HTTP 500) · pager scheduled" in text


def test_a_quorum_hold_says_who_approved_so_far() -> None:
    from rich.console import Console

    from tui.widgets.hold_detail import DetailView, render_head

    view = hold(1, approvals_needed=2, votes=[{"by": "person:slack:U0ALICE", "channel": "slack:ops",
                                               "at": 1.0}])  # fmt: skip
    assert view.voters == ("person:slack:U0ALICE",)
    palette = {"error": "red", "warning": "yellow"}
    console = Console(width=200, record=True)
    console.print(render_head(DetailView(view, now=view.created_at, history=""), palette))
    assert "1 of 2 approvals (person:slack:U0ALICE)" in console.export_text()
