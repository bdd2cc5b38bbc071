"""The one outcome vocabulary shared by the API, the audit log, the CLI and the agent's headers."""

from __future__ import annotations

from enum import StrEnum


class Outcome(StrEnum):
    ALLOWED = "allowed"  # the policy let it through
    GRANTED = "granted"  # a grant turned a hold into an allow
    APPROVED = "approved"  # a person approved the hold
    DENIED = "denied"  # the policy or a person refused it
    EXPIRED = "expired"  # nobody decided before the deadline (or the proxy shut down)
    PENDING = "pending"  # still waiting for a person
    ERROR = "error"  # the gate failed, so it refused (fail closed)


FINAL = frozenset({Outcome.APPROVED, Outcome.DENIED, Outcome.EXPIRED, Outcome.ERROR})
PASSED = frozenset({Outcome.ALLOWED, Outcome.GRANTED, Outcome.APPROVED})

POLICY = "policy"
SYSTEM = "system"


def person(name: str) -> str:
    """The `decided_by` value of a human decision."""
    return f"person:{name}"
