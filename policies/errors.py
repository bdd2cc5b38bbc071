"""Precise policy problems: each names the file, line, column and rule at fault."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Problem:
    file: str
    line: int
    column: int
    where: str
    message: str
    warning: bool = False

    def __str__(self) -> str:
        kind = "warning: " if self.warning else ""
        where = f" {self.where}:" if self.where else ""
        return f"{self.file}:{self.line}:{self.column}:{where} {kind}{self.message}"


class PolicyError(Exception):
    """A policy that cannot be used; `problems` lists every error found, not just the first."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))
