"""The effective configuration on a real hub: ``yiyang run`` starts from it, ``yiyang config check`` shows it.

Blocking (files): call it before the event loop starts, or in a thread.

At start (:func:`load_effective`), on top of :func:`gateway.fleet.resume.settle` (a trial the hub
restarted in is rolled back; an overlay that no longer fits the local file is set aside), an overlay
that names a file the hub cannot use (a secret or key the fleet pointed at a path not installed) is
set aside as well: ``run`` refuses to start on such a file, and a hub that refuses to start stops
alerting. The hub then runs on its local file, and the report tells the fleet why.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from gateway.config import GatewayConfig, format_path, read_config_text
from gateway.config.access import ServiceUser
from gateway.config.files import referenced_file_problems
from gateway.fleet.overlay import LocalConfig
from gateway.fleet.report import HUB, DocumentError, Report, ReportStatus, effective_view
from gateway.fleet.resume import Settled, settle
from gateway.fleet.state import FleetState, describe_fleet, status_fields
from gateway.fleet.statefile import FleetStateCorrupt, FleetStateError, FleetStateFile, state_path

log = logging.getLogger(__name__)

FILES_UNUSABLE = ("a file this configuration names cannot be used on the hub; the hub runs on its local file alone "
                  "and will not apply this version again: install the file, then send a new version")


def read_local(config_path: str | os.PathLike[str]) -> tuple[LocalConfig, str]:
    """The local file, parsed and validated (ConfigError with lines), and its text for line numbers."""
    source = os.fspath(config_path)
    text = read_config_text(source)
    return LocalConfig.from_text(text, source), text


def load_effective(config_path: str | os.PathLike[str]) -> tuple[GatewayConfig, FleetState]:
    """The configuration ``yiyang run`` starts with, and the fleet state it leaves on disk.

    Raises ConfigError only for the local file itself; nothing in the fleet state stops a start.
    """
    local, _text = read_local(config_path)
    return start_from(local)


def start_from(local: LocalConfig, user: ServiceUser | None = None) -> tuple[GatewayConfig, FleetState]:
    """:func:`load_effective` for a local file already read (``cmd_run`` sets up logging in between)."""
    store = FleetStateFile(state_path(local.config.gateway.data_dir))
    loaded = store.load()
    settled = settle_on_host(loaded, local, user or ServiceUser.current())
    if settled.changed:
        try:
            store.save(settled.state)
        except FleetStateError as exc:
            # It runs on the settled configuration anyway; the disk still holds a state the next start
            # settles the same way.
            log.error("fleet state not written at start error=%s", exc)
    if loaded.trial is not None:
        log.warning("fleet config rolled back after a restart version=%d", loaded.trial.version)
    if loaded.applied_version is not None and settled.state.applied_version is None:
        log.error("fleet config set aside, running on the local file version=%d", loaded.applied_version)
    return settled.config, settled.state


def settle_on_host(state: FleetState, local: LocalConfig, user: ServiceUser) -> Settled:
    """:func:`settle`, then set aside an overlay that names a file ``user`` cannot use."""
    settled = settle(state, local)
    overlay = settled.state.overlay
    problems = [p for p in referenced_file_problems(settled.config, user) if p.path and p.path[0] in overlay]
    if not problems:
        return settled
    errors = (DocumentError(HUB, FILES_UNUSABLE),
              *(DocumentError(format_path(p.path), f"{p.what}; {p.todo}") for p in problems))
    report = Report(settled.state.applied_version, ReportStatus.ROLLED_BACK, errors, None, None,
                    effective_view(local.config))
    return Settled(settled.state.set_aside(report), local.config, True)


@dataclass(frozen=True, slots=True)
class EffectiveCheck:
    """What ``yiyang config check`` says about the fleet's part of a configuration."""

    config: GatewayConfig
    """What ``yiyang run`` would start with."""
    source: str
    """How problems name it: the file, or the file with the fleet's version."""
    from_fleet: bool
    """Sections come from the fleet: the file's line numbers do not place every problem."""
    notes: tuple[str, ...]
    problems: tuple[str, ...]
    warnings: tuple[str, ...]


def check_effective(local: LocalConfig, source: str, user: ServiceUser) -> EffectiveCheck:
    """Read the fleet state without changing it, and say what ``run`` would make of it."""
    try:
        state = FleetStateFile(state_path(local.config.gateway.data_dir)).read()
    except FleetStateCorrupt as exc:
        warning = f"{exc}; the daemon moves it aside and starts from {source} alone"
        return EffectiveCheck(local.config, source, False, (), (), (warning,))
    except FleetStateError as exc:
        return EffectiveCheck(local.config, source, False, (), (), (str(exc),))
    if state is None:
        return EffectiveCheck(local.config, source, False, (), (), ())
    settled = settle_on_host(state, local, user)
    notes: list[str] = []
    problems: list[str] = []
    if state.trial is not None:
        notes.append(f"fleet: version {state.trial.version} was being checked when the hub stopped; the daemon "
                     "rolls it back when it starts")
    if state.applied_version is not None and settled.state.applied_version is None:
        report = settled.state.last_report
        assert report is not None, "setting aside always reports"
        label = f"{source} with fleet version {state.applied_version}"
        problems.extend(f"{label}: {error.path}: {error.message}" for error in report.errors[1:])
        notes.append(f"fleet: version {state.applied_version} no longer fits {source}: {report.errors[0].message}")
    notes.append(describe_fleet(status_fields(settled.state)))
    last = state.last_report  # as on disk: a rollback at start is already a note of its own
    if last is not None and last.status is not ReportStatus.APPLIED and last.version != state.applied_version:
        first = f": {last.errors[0].path}: {last.errors[0].message}" if last.errors else ""
        notes.append(f"fleet: last document, version {last.version}, {last.status.value}{first}")
    return EffectiveCheck(settled.config, effective_source(source, settled.state), bool(settled.state.overlay),
                          tuple(notes), tuple(problems), ())


def effective_source(source: str, state: FleetState) -> str:
    """How a problem names the effective configuration: the file, or the file with the fleet's version."""
    if not state.overlay:
        return source
    return f"{source} with fleet version {state.applied_version}"
