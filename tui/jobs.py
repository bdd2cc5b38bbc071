"""The App's I/O: each function asks the API and posts what happened as a message."""

from __future__ import annotations

from collections.abc import Callable

from textual.message import Message

from tui.client import ApiError, Backend
from tui.messages import (
    ActionFailed,
    DecisionFailed,
    DecisionSent,
    LockdownSet,
    SnapshotFailed,
    SnapshotLoaded,
)
from tui.models import ActivityFilter, GrantChoice

Post = Callable[[Message], object]
FIRST_ACTIVITY = 200


async def load_snapshot(backend: Backend, post: Post, since: int, with_activity: bool) -> None:
    """Holds, grants and lockdown as they are now (after a connect or a `resync`)."""
    try:
        holds = await backend.holds()
        grants = await backend.grants()
        lockdown = await backend.lockdown()
        activity = (
            await backend.activity(ActivityFilter(), FIRST_ACTIVITY) if with_activity else None
        )
    except ApiError as exc:
        post(SnapshotFailed(exc.message))
        return
    post(SnapshotLoaded(holds, grants, lockdown, activity, since))


async def send_decision(
    backend: Backend,
    post: Post,
    hold_id: str,
    approve: bool,
    reason: str | None,
    grant: GrantChoice | None,
) -> None:
    """Approve or deny one hold; the answer, or why it failed, always comes back as a message."""
    verb = "approve" if approve else "deny"
    try:
        if approve:
            result = await backend.approve(hold_id, reason, grant)
        else:
            result = await backend.deny(hold_id, reason or "")
    except ApiError as exc:
        post(DecisionFailed(hold_id, verb, exc.message, exc.status, exc.body))
    except Exception as exc:  # never lose a decision silently
        post(DecisionFailed(hold_id, verb, f"{type(exc).__name__}: {exc}", 0, {}))
    else:
        post(DecisionSent(hold_id, verb, result))


async def set_lockdown(backend: Backend, post: Post, on: bool) -> None:
    try:
        state = await backend.set_lockdown(on, "from the dashboard")
    except ApiError as exc:
        post(ActionFailed(f"switch lockdown {'on' if on else 'off'}", exc.message))
        return
    post(LockdownSet(state))
