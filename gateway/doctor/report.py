"""One check's verdict, and the report ``yiyang doctor`` prints (and the fleet's ``doctor`` returns).

The printed lines are an interface (technicians read them, scripts grep them): a check is one line,
``STATUS  NAME: VERDICT``, and a check that failed has a second, indented line ``fix: COMMAND``.
``--json`` carries the same checks, field for field.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class Status(StrEnum):
    OK = "ok"
    WARNING = "warning"
    """Worth a look, but nothing the hub needs is broken (the exit status stays 0)."""
    PROBLEM = "problem"
    """Something the hub needs is broken: the exit status is 1."""
    SKIPPED = "skipped"
    """Not applicable to this configuration, or not knowable now (the verdict says why)."""


_LABEL = {Status.OK: "ok", Status.WARNING: "warning", Status.PROBLEM: "PROBLEM", Status.SKIPPED: "skipped"}


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    """What was checked, e.g. ``broker`` or ``serial glucose-kitchen``."""
    status: Status
    verdict: str
    """One line, in the technician's words."""
    fix: str | None = None
    """The command (or the one thing to do) that fixes it; for problems and warnings."""

    def __post_init__(self) -> None:
        if "\n" in self.verdict or (self.fix is not None and "\n" in self.fix):
            raise ValueError(f"check {self.name}: a verdict and a fix are one line each")

    def lines(self) -> list[str]:
        head = f"{_LABEL[self.status]:<8} {self.name}: {self.verdict}"
        if self.fix is None or self.status in (Status.OK, Status.SKIPPED):
            return [head]
        return [head, f"{'':<9}fix: {self.fix}"]

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status.value, "verdict": self.verdict, "fix": self.fix}


def ok(name: str, verdict: str) -> Check:
    return Check(name, Status.OK, verdict)


def problem(name: str, verdict: str, fix: str) -> Check:
    return Check(name, Status.PROBLEM, verdict, fix)


def warning(name: str, verdict: str, fix: str | None = None) -> Check:
    return Check(name, Status.WARNING, verdict, fix)


def skipped(name: str, verdict: str) -> Check:
    return Check(name, Status.SKIPPED, verdict)


@dataclass(frozen=True, slots=True)
class Report:
    checks: tuple[Check, ...]

    @classmethod
    def of(cls, groups: Iterable[Iterable[Check]]) -> Report:
        return cls(tuple(check for group in groups for check in group))

    @property
    def problems(self) -> tuple[Check, ...]:
        return tuple(check for check in self.checks if check.status is Status.PROBLEM)

    @property
    def ok(self) -> bool:
        return not self.problems

    def lines(self) -> list[str]:
        out = [line for check in self.checks for line in check.lines()]
        count = len(self.problems)
        out.append("no problem found" if count == 0 else f"{count} problem(s) found")
        return out

    def as_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "problems": [f"{c.name}: {c.verdict}" for c in self.problems],
                "checks": [check.as_json() for check in self.checks]}
