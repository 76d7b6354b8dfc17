"""What configuration a hub starts with, from its local file and its fleet state (pure).

A trial still in the state means the hub stopped while checking a new configuration: killed,
power cut, or crashed by that very configuration. It is rolled back, never retried, so a bad
configuration cannot crash-loop a hub. The previous overlay is still the state's (a trial never
changes it until it passes), so rolling back is dropping the trial.

An applied overlay that no longer fits the local file (a technician removed a resident the fleet's
devices measure) is set aside: the hub runs on its local file, which is always valid, and the report
lists every conflict with its key path so the fleet can send a version that fits.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.config import GatewayConfig, format_path
from gateway.fleet.overlay import LocalConfig, validate_effective
from gateway.fleet.report import HUB, DocumentError, Report, ReportStatus, effective_view
from gateway.fleet.state import FleetState

RESTARTED = ("the hub restarted while checking this configuration (a crash, a power cut or a kill); it runs the "
             "previous one and will not apply this version again")
SET_ASIDE = ("the hub's local file changed and no longer fits this configuration; the hub runs on its local file "
             "alone and will not apply this version again: send a new version that fits")


@dataclass(frozen=True, slots=True)
class Settled:
    state: FleetState
    config: GatewayConfig
    """The effective configuration to run."""
    changed: bool
    """The state differs from the one given and must be written back."""


def settle(state: FleetState, local: LocalConfig) -> Settled:
    """The configuration to start with, and the state after any rollback that took."""
    config, problems = validate_effective(local.mapping, state.overlay)
    running = config if config is not None else local.config
    settled = state
    if state.trial is not None:
        settled = settled.roll_back(Report(
            state.trial.version, ReportStatus.ROLLED_BACK, (DocumentError(HUB, RESTARTED),),
            state.applied_version, state.applied_at, effective_view(running)))
    if config is None:
        # After a rolled-back trial too: the conflict is what the fleet must act on, so it is reported last.
        errors = (DocumentError(HUB, SET_ASIDE),
                  *(DocumentError(format_path(p.path), f"{p.what}; {p.todo}") for p in problems))
        settled = settled.set_aside(Report(state.applied_version, ReportStatus.ROLLED_BACK, errors, None, None,
                                           effective_view(running)))
    return Settled(settled, running, settled != state)
