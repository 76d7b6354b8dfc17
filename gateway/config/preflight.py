"""What a valid configuration still needs from the hub: the files it names and its data directory.

``yiyang config check`` reports these next to the file's own problems; ``yiyang run`` refuses to
start on any of them. Both call :func:`check_host`, so check cannot pass what run then refuses.
Nothing here raises halfway: every problem is collected and returned.
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

    problems: tuple[str, ...]
    """Each one stops the daemon."""
    warnings: tuple[str, ...]
    """Worth a technician's attention, but the daemon runs (low disk space)."""


def check_host(cfg: GatewayConfig, source: str, text: str | None, user: ServiceUser) -> HostReport:
    """Check what ``cfg`` (parsed from ``text``, named ``source``) needs, as ``user`` would meet it."""
    locator = Locator(text) if text is not None else None
    unusable_dir = data_dir_problems(cfg.gateway.data_dir, user)
    problems = [*referenced_file_problems(cfg, user), *unusable_dir]
    # Free space is only worth a word on a directory the daemon can use at all.
    warning = None if unusable_dir else free_space_warning(cfg.gateway.data_dir, cfg.storage.budget_mb)
    return HostReport(
        problems=_formatted(source, problems, locator),
        warnings=_formatted(source, [warning] if warning is not None else [], locator),
    )


def _formatted(source: str, problems: list[Problem], locator: Locator | None) -> tuple[str, ...]:
    ordered = sorted(problems, key=lambda problem: problem_line(problem, locator))
    return tuple(format_problem(source, problem, locator) for problem in ordered)
