"""A configuration rollout as a state machine: pure, every time passed in by the caller.

Each hub goes ``not_sent -> waiting -> applied | rejected | rolled_back | no_answer``. A wave is sent
only when every hub of the waves before it has an outcome, and none is sent once ``halt_after``
hubs have rejected or rolled back. A hub that has not answered within ``timeout_s`` of being sent
its document is ``no_answer``; its document stays retained, and a report that comes later still
counts. Times are wall-clock seconds (``time.time()``), because they outlive the process in the
state file.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from enum import StrEnum

from fleetctl.documents import DocumentSpec
from fleetctl.plan import WavePlan
from fleetctl.reports import Report, ReportError, ReportStatus


class Phase(StrEnum):
    NOT_SENT = "not_sent"
    WAITING = "waiting"
    APPLIED = "applied"
    REJECTED = "rejected"
    ROLLED_BACK = "rolled_back"
    NO_ANSWER = "no_answer"


PHASE_OF_STATUS = {
    ReportStatus.APPLIED: Phase.APPLIED,
    ReportStatus.REJECTED: Phase.REJECTED,
    ReportStatus.ROLLED_BACK: Phase.ROLLED_BACK,
}
FAILED = frozenset({Phase.REJECTED, Phase.ROLLED_BACK})
"""What halts a rollout. A hub that does not answer is usually switched off, not harmed by the
document (one that lost the broker through it rolls back and reports once back), so silence is a
failure of the rollout but does not halt it."""
ANSWERABLE = frozenset({Phase.WAITING, Phase.NO_ANSWER})


@dataclass(frozen=True, slots=True)
class Policy:
    """What may change when a rollout is resumed: raising ``halt_after`` is how the operator goes on
    past a halt they judge harmless."""

    halt_after: int = 2
    """Halt once this many hubs rejected or rolled back; 0 never halts."""
    timeout_s: float = 150.0
    """How long a hub has to report after it was sent the document: a bit over the hubs' health-check
    grace (``apply_grace_s``, 120 s by default)."""


@dataclass(frozen=True, slots=True)
class HubRecord:
    phase: Phase = Phase.NOT_SENT
    sent_at: float | None = None
    answered_at: float | None = None
    errors: tuple[ReportError, ...] = ()


@dataclass(frozen=True, slots=True)
class Counts:
    not_sent: int = 0
    waiting: int = 0
    applied: int = 0
    rejected: int = 0
    rolled_back: int = 0
    no_answer: int = 0

    @property
    def failed(self) -> int:
        return self.rejected + self.rolled_back


@dataclass(frozen=True, slots=True)
class RolloutState:
    document: DocumentSpec
    signer: str
    """The signing key's fingerprint: a resumed rollout must be signed by the same key."""
    topic_root: str
    plan: WavePlan
    policy: Policy
    hubs: Mapping[str, HubRecord]
    """Every hub of the plan. Never modified: each transition makes a new mapping."""
    waves_sent: int = 0
    """Waves whose hubs were marked waiting: their documents are being, or have been, published."""
    waves_confirmed: int = 0
    """Waves whose every document the broker acknowledged (so it holds them retained)."""


@dataclass(frozen=True, slots=True)
class SendWave:
    index: int
    hubs: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Wait:
    until: float
    """When the first waiting hub times out."""


@dataclass(frozen=True, slots=True)
class Halted:
    failed: int


@dataclass(frozen=True, slots=True)
class Finished:
    pass


Step = SendWave | Wait | Halted | Finished


def new_rollout(document: DocumentSpec, signer: str, topic_root: str, plan: WavePlan, policy: Policy) -> RolloutState:
    return RolloutState(document=document, signer=signer, topic_root=topic_root, plan=plan, policy=policy,
                        hubs={hub: HubRecord() for hub in plan.hubs})


def counts(state: RolloutState) -> Counts:
    tally = Counter(record.phase for record in state.hubs.values())
    return Counts(**{phase.value: tally[phase] for phase in Phase})


def halting(state: RolloutState) -> bool:
    """No further wave will be sent (the waves already sent are still watched)."""
    limit = state.policy.halt_after
    return bool(limit) and counts(state).failed >= limit and state.waves_sent < len(state.plan.waves)


def next_step(state: RolloutState) -> Step:
    deadlines = [record.sent_at for record in state.hubs.values()
                 if record.phase is Phase.WAITING and record.sent_at is not None]
    if deadlines:
        return Wait(until=min(deadlines) + state.policy.timeout_s)
    if halting(state):
        return Halted(failed=counts(state).failed)
    if state.waves_sent < len(state.plan.waves):
        return SendWave(index=state.waves_sent, hubs=state.plan.waves[state.waves_sent])
    return Finished()


def send_wave(state: RolloutState, now: float) -> RolloutState:
    """Mark the next wave's hubs waiting, before publishing: a crash in between is caught by
    :func:`unconfirmed_hubs` on resume."""
    wave = state.plan.waves[state.waves_sent]
    hubs = dict(state.hubs)
    for hub in wave:
        hubs[hub] = HubRecord(Phase.WAITING, sent_at=now)
    return replace(state, hubs=hubs, waves_sent=state.waves_sent + 1)


def confirm_sent(state: RolloutState) -> RolloutState:
    return replace(state, waves_confirmed=state.waves_sent)


def unconfirmed_hubs(state: RolloutState) -> tuple[str, ...]:
    """Hubs whose document may not have reached the broker (the tool stopped while publishing):
    a resumed rollout publishes their documents again, byte for byte the same."""
    waves = state.plan.waves[state.waves_confirmed : state.waves_sent]
    return tuple(hub for wave in waves for hub in wave if state.hubs[hub].phase is Phase.WAITING)


def record_reports(state: RolloutState, reports: Iterable[tuple[str, Report]],
                   now: float) -> tuple[RolloutState, tuple[str, ...]]:
    """Take the hubs' reports about this rollout's version; returns the state and the hubs that changed.

    Reports about other versions (older retained ones, another rollout's) change nothing; nor does a
    report from a hub not sent the document yet, or one that already answered.
    """
    version = state.document.version
    hubs: dict[str, HubRecord] | None = None
    changed: list[str] = []
    for hub, report in reports:
        record = (state.hubs if hubs is None else hubs).get(hub)
        if record is None or record.phase not in ANSWERABLE or report.version != version:
            continue
        if hubs is None:
            hubs = dict(state.hubs)  # one copy per batch: a wave of hundreds answers in one
        hubs[hub] = replace(record, phase=PHASE_OF_STATUS[report.status], answered_at=now, errors=report.errors)
        changed.append(hub)
    return (state if hubs is None else replace(state, hubs=hubs)), tuple(changed)


def expire(state: RolloutState, now: float) -> tuple[RolloutState, tuple[str, ...]]:
    """Hubs that have not answered within ``timeout_s`` become ``no_answer``."""
    timeout = state.policy.timeout_s
    late = [hub for hub, record in state.hubs.items() if record.phase is Phase.WAITING
            and record.sent_at is not None and now >= record.sent_at + timeout]
    if not late:
        return state, ()
    hubs = dict(state.hubs)
    for hub in late:
        hubs[hub] = replace(hubs[hub], phase=Phase.NO_ANSWER, answered_at=now)
    return replace(state, hubs=hubs), tuple(late)


def outcomes(state: RolloutState, phases: Iterable[Phase]) -> list[tuple[str, HubRecord]]:
    """The hubs in ``phases``, in plan order."""
    wanted = frozenset(phases)
    return [(hub, state.hubs[hub]) for hub in state.plan.hubs if state.hubs[hub].phase in wanted]
