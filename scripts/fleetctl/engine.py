"""Drives a rollout: the state machine (``rollout``) against a broker (``link``), saving after each change.

The importable API::

    result = push_config(BrokerAddress("127.0.0.1", 1883), key, RolloutRequest(hubs, config),
                         state_path=Path("rollout.json"), progress=print)

or, with a link and clock of your own, ``RolloutEngine(link, key, ...).prepare(request, saved)``
then ``.run(state)``. Nothing here serialises per hub: a wave's documents are signed and published
at once, and reports are taken in batches as they come.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from functools import partial
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from fleetctl import statefile
from fleetctl.documents import DocumentSpec, check_size, signed_payload, signer_fingerprint
from fleetctl.errors import BadReport, UsageError
from fleetctl.link import BrokerAddress, FleetLink, connected
from fleetctl.plan import plan_waves
from fleetctl.reports import Report, parse_report
from fleetctl.request import RolloutRequest, choose_version, highest_versions, resume_problems
from fleetctl.rollout import (
    Counts,
    HubRecord,
    Phase,
    RolloutState,
    SendWave,
    Wait,
    confirm_sent,
    counts,
    expire,
    halting,
    new_rollout,
    next_step,
    outcomes,
    record_reports,
    send_wave,
    unconfirmed_hubs,
)
from fleetctl.topics import DESIRED, REPORTED, Message, fleet_filter, hub_of, hub_topic

Clock = Callable[[], float]
"""Wall-clock seconds, ``time.time`` in use; tests pass a clock they move."""

PROGRESS_EVERY_S = 1.0
"""How often the progress callback hears from a rollout that is only waiting (the elapsed time)."""
RESYNC_AFTER_S = 5.0
RESYNC_MAX_S = 60.0
"""While hubs are awaited and nothing has changed for this long (doubling up to the max), subscribe
to the reports again: the broker sends every retained report again, so a report it dropped on its
way to us (a full per-client queue: Mosquitto's max_queued_messages) is not waited for until timeout."""


@dataclass(frozen=True, slots=True)
class Listening:
    """How long to take in retained messages after subscribing: MQTT has no end-of-retained marker,
    so until nothing has come for ``quiet_s``. A broker sends them right behind the SUBACK, so a
    pause means the end; ``max_s`` only bounds a stream that never pauses (a province's documents
    over a slow link), and cutting it short is safe: a version chosen too low is refused by the
    hubs that saw a higher one, and that halts the rollout at its canaries."""

    quiet_s: float = 0.5
    max_s: float = 30.0


@dataclass(frozen=True, slots=True)
class Progress:
    version: int
    waves: int
    waves_sent: int
    counts: Counts
    elapsed_s: float
    halting: bool
    """No further wave will be sent; the hubs already sent are still awaited."""
    done: bool = False
    sent: tuple[str, ...] = ()
    """Hubs whose documents were published just now."""
    answered: tuple[tuple[str, HubRecord], ...] = ()
    """Hubs that have an outcome since the last call (no_answer included)."""
    notes: tuple[str, ...] = ()
    """Things the operator should know that change nothing (an unreadable report)."""


ProgressCallback = Callable[[Progress], None]


@dataclass(frozen=True, slots=True)
class RolloutResult:
    state: RolloutState

    @property
    def counts(self) -> Counts:
        return counts(self.state)

    @property
    def halted(self) -> bool:
        return halting(self.state)

    @property
    def ok(self) -> bool:
        """Every hub applied the document: exit status 0."""
        return self.counts.applied == len(self.state.hubs)

    def failures(self) -> list[tuple[str, HubRecord]]:
        """Hubs that rejected, rolled back (each keeps its previous configuration) or did not answer."""
        return outcomes(self.state, (Phase.REJECTED, Phase.ROLLED_BACK, Phase.NO_ANSWER))


class RolloutEngine:
    def __init__(self, link: FleetLink, key: Ed25519PrivateKey, *, clock: Clock = time.time,
                 save: Callable[[RolloutState], None] | None = None, progress: ProgressCallback | None = None,
                 listening: Listening = Listening()) -> None:
        self._link = link
        self._key = key
        self._clock = clock
        self._save = save or (lambda _state: None)
        self._progress = progress or (lambda _progress: None)
        self._listening = listening
        self._started = clock()
        self._unreadable: set[str] = set()
        self._changed_at = self._started
        """When a report last changed the rollout (or a wave went out): the resync counts from it."""
        self._resync_every = RESYNC_AFTER_S

    def prepare(self, request: RolloutRequest, saved: RolloutState | None = None) -> RolloutState:
        """A new rollout (nothing sent; the version chosen against what the broker holds), or ``saved``
        brought up to date with the reports that came while no tool was watching.

        Raises :class:`UsageError` when ``saved`` is not the rollout ``request`` describes.
        """
        signer = signer_fingerprint(self._key)
        if saved is not None:
            problems = resume_problems(saved, request, signer)
            if problems:
                raise UsageError("the state file is another rollout: " + "; ".join(problems))
        root = request.topic_root
        if saved is None:
            self._link.subscribe(fleet_filter(root, DESIRED))
        self._link.subscribe(fleet_filter(root, REPORTED))
        retained = self._listen()
        if saved is None:
            # Only to learn the versions already out there; our own documents need not come back to us.
            self._link.unsubscribe(fleet_filter(root, DESIRED))
            return self._new(request, signer, retained)
        state = replace(saved, policy=request.policy)
        state, _ = record_reports(state, self._reports(state, retained), self._clock())
        return state

    def run(self, state: RolloutState) -> RolloutResult:
        """Send the waves and take the reports until the rollout is finished or halted."""
        self._started = self._clock()
        self._save(state)  # the rollout is on disk before anything is published
        resend = unconfirmed_hubs(state)
        if resend:
            self._publish(state, resend)
            state = confirm_sent(state)
            self._save(state)
        self._changed_at, self._resync_every = self._clock(), RESYNC_AFTER_S
        while True:
            state, late = expire(state, self._clock())
            if late:
                self._save(state)
                self._notify(state, answered=late)
            step = next_step(state)
            if isinstance(step, SendWave):
                state = self._send(state, step)
            elif isinstance(step, Wait):
                state = self._await(state, step)
            else:
                self._notify(state, done=True)
                return RolloutResult(state)

    def _send(self, state: RolloutState, step: SendWave) -> RolloutState:
        state = send_wave(state, self._clock())
        self._save(state)
        self._publish(state, step.hubs)
        state = confirm_sent(state)
        self._save(state)
        self._notify(state, sent=step.hubs)
        self._changed_at, self._resync_every = self._clock(), RESYNC_AFTER_S
        return state

    def _await(self, state: RolloutState, step: Wait) -> RolloutState:
        """Take the reports that come until the first timeout, the next progress tick or a resync."""
        now = self._clock()
        wake = min(step.until, now + PROGRESS_EVERY_S, self._changed_at + self._resync_every)
        messages = self._link.receive(wake - now)
        now = self._clock()
        state, answered = record_reports(state, self._reports(state, messages), now)
        if answered:
            self._save(state)
            self._changed_at, self._resync_every = now, RESYNC_AFTER_S
        elif now >= self._changed_at + self._resync_every:
            self._link.subscribe(fleet_filter(state.topic_root, REPORTED))
            self._changed_at, self._resync_every = now, min(2 * self._resync_every, RESYNC_MAX_S)
        self._notify(state, answered=answered)
        return state

    def _new(self, request: RolloutRequest, signer: str, retained: Sequence[Message]) -> RolloutState:
        version = choose_version(request.version, highest_versions(retained, request.topic_root), request.hubs)
        plan = plan_waves(request.hubs, request.canary, request.wave_percent)
        issued_at = datetime.fromtimestamp(self._clock()).astimezone().isoformat(timespec="seconds")
        document = DocumentSpec(version=version, issued_at=issued_at, config=request.config,
                                fleet_public_key=request.fleet_public_key)
        check_size(document, request.hubs, self._key)
        return new_rollout(document, signer, request.topic_root, plan, request.policy)

    def _listen(self) -> list[Message]:
        start = last = self._clock()
        retained: list[Message] = []
        while True:
            wait = min(last + self._listening.quiet_s, start + self._listening.max_s) - self._clock()
            if wait <= 0:
                return retained
            messages = self._link.receive(wait)
            if messages:
                retained += messages
                last = self._clock()

    def _publish(self, state: RolloutState, hubs: Sequence[str]) -> None:
        root, document = state.topic_root, state.document
        self._link.publish_retained(
            [(hub_topic(root, hub, DESIRED), signed_payload(document, hub, self._key)) for hub in hubs])

    def _reports(self, state: RolloutState, messages: Sequence[Message]) -> list[tuple[str, Report]]:
        reports = []
        for message in messages:
            hub = hub_of(message.topic, state.topic_root, REPORTED)
            if hub is None or hub not in state.hubs or not message.payload:
                continue
            try:
                reports.append((hub, parse_report(message.payload)))
            except BadReport as exc:
                if hub not in self._unreadable:  # once per hub: a broken hub must not flood the screen
                    self._unreadable.add(hub)
                    self._notify(state, notes=(f"{hub}: unreadable report ({exc}); waiting for a readable one",))
        return reports

    def _notify(self, state: RolloutState, *, sent: Sequence[str] = (), answered: Sequence[str] = (),
                notes: tuple[str, ...] = (), done: bool = False) -> None:
        self._progress(Progress(
            version=state.document.version, waves=len(state.plan.waves), waves_sent=state.waves_sent,
            counts=counts(state), elapsed_s=self._clock() - self._started, halting=halting(state), done=done,
            sent=tuple(sent), answered=tuple((hub, state.hubs[hub]) for hub in answered), notes=notes))


def push_config(broker: BrokerAddress, key: Ed25519PrivateKey, request: RolloutRequest, *,
                state_path: Path | None = None, progress: ProgressCallback | None = None,
                listening: Listening = Listening()) -> RolloutResult:
    """Roll ``request`` out through the broker, resuming the rollout in ``state_path`` if there is one.

    Blocks until the rollout is finished or halted. Raises :class:`UsageError` for input that is
    wrong (nothing published) and :class:`LinkError` when the broker fails us (resume later).
    """
    saved = statefile.load(state_path) if state_path is not None else None
    save = partial(statefile.save, state_path) if state_path is not None else None
    with connected(broker) as link:
        engine = RolloutEngine(link, key, save=save, progress=progress, listening=listening)
        return engine.run(engine.prepare(request, saved))
