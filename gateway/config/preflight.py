"""What a valid configuration still needs from the hub: the files it names and its data directory.

``yiyang config check`` reports all of these next to the file's own problems. ``yiyang run`` refuses
to start on a missing or unsafe file (a secret, a key: nothing would work), but not on an unusable
data directory: the daemon then starts anyway, holds records in memory and alerts the family, with
the storage problem loud in its status -- a hub that refuses to start is a hub that stops alerting.
Both call :func:`check_host`, so check cannot pass what run then refuses. Nothing here raises
halfway: every problem is collected and returned.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.config.access import ServiceUser
from gateway.config.datadir import data_dir_problems, free_space_warning
from gateway.config.files import referenced_file_problems
from gateway.config.locate import Locator
from gateway.config.schema import GatewayConfig, Problem
from gateway.config.validate import format_problem, problem_line


@dataclass(frozen=True, slots=True)
class HostReport:
    """Lines in the ``FILE:LINE: key.path: what is wrong; what to do`` form, in file order."""

    file_problems: tuple[str, ...]
    """Files the configuration names (secrets, keys, CA): each one stops the daemon."""
    storage_problems: tuple[str, ...]
    """The data directory: the daemon runs without it, holding records in memory, and says so."""
    warnings: tuple[str, ...]
    """Worth a technician's attention, but the daemon runs (low disk space)."""

    @property
    def problems(self) -> tuple[str, ...]:
        """Everything ``config check`` reports as a problem, in file order."""
        return tuple(sorted((*self.file_problems, *self.storage_problems), key=_line_of))


def check_host(cfg: GatewayConfig, source: str, text: str | None, user: ServiceUser) -> HostReport:
    """Check what ``cfg`` (parsed from ``text``, named ``source``) needs, as ``user`` would meet it."""
    locator = Locator(text) if text is not None else None
    unusable_dir = data_dir_problems(cfg.gateway.data_dir, user)
    # Free space is only worth a word on a directory the daemon can use at all.
    warning = None if unusable_dir else free_space_warning(cfg.gateway.data_dir, cfg.storage.budget_mb)
    return HostReport(
        file_problems=_formatted(source, list(referenced_file_problems(cfg, user)), locator),
        storage_problems=_formatted(source, list(unusable_dir), locator),
        warnings=_formatted(source, [warning] if warning is not None else [], locator),
    )


def _line_of(formatted: str) -> int:
    """The line of a ``FILE:LINE: ...`` problem (unplaceable ones last)."""
    parts = formatted.split(":", 2)
    return int(parts[1]) if len(parts) > 2 and parts[1].isdigit() else 2**31


def _formatted(source: str, problems: list[Problem], locator: Locator | None) -> tuple[str, ...]:
    ordered = sorted(problems, key=lambda problem: problem_line(problem, locator))
    return tuple(format_problem(source, problem, locator) for problem in ordered)
