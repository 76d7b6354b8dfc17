"""Configuration documents from the fleet, end to end: check, apply on trial, keep or roll back, report.

Everything outside is injected, so the daemon and a benchmark of simulated hubs run the same code:
``reload`` makes the running process use a configuration (device sessions, uplink, MQTT),
``health_check`` says whether the new one works, ``publish_report`` sends the outcome (retained, on
``config/reported``), ``installed_key`` reads the ``[fleet] public_key_file`` key, ``store`` keeps
the fleet state (its blocking calls run in a thread), ``clock`` stamps ``applied_at``.

Order of an apply, each step on disk before the next so a restart at any instant is safe:

1. the trial is written (a restart from here on rolls back to the previous configuration);
2. ``reload(new)``, then ``health_check(old, new)`` within ``[fleet] apply_grace_s`` of the running
   configuration (a document cannot grant itself more time);
3. passed: the applied version, its overlay and any rotated key are written, then reported.
   Failed, or ``reload`` raised: the rollback is written, ``reload(old)``, then reported (after the
   reload, so a hub that lost the broker through the change reports once it is back on the old one).

Documents are handled one at a time; one arriving during a trial waits for its outcome.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from gateway.config import GatewayConfig
from gateway.errors import GatewayError
from gateway.fleet.document import Candidate, DocumentRejected, check_config, open_document
from gateway.fleet.overlay import LocalConfig
from gateway.fleet.report import HUB, DocumentError, Report, ReportStatus, effective_view
from gateway.fleet.resume import settle
from gateway.fleet.state import FleetState, Trial, Verdict, section_names
from gateway.fleet.statefile import FleetStateError, StateStore
from gateway.inbound import excerpt

log = logging.getLogger(__name__)

REASON_CHARS = 300
"""How much of an exception's text goes into a report: enough to say why, never a payload echo."""


@dataclass(frozen=True, slots=True)
class HealthResult:
    """The daemon's verdict on a new configuration; ``path`` names the setting at fault when it knows
    (``mqtt.host``), else the hub as a whole."""

    ok: bool
    reason: str = ""
    path: str = HUB


Reload = Callable[[GatewayConfig], Awaitable[None]]
HealthCheck = Callable[[GatewayConfig, GatewayConfig], Awaitable[HealthResult]]
PublishReport = Callable[[dict[str, Any]], None]
InstalledKey = Callable[[], Ed25519PublicKey | None]
WallClock = Callable[[], datetime]


class RestoreError(GatewayError):
    """A configuration failed and was rolled back, but reloading the previous one failed too.

    The fleet state on disk already names the previous configuration: restart the daemon, which
    starts from it.
    """


def _utc_now() -> datetime:
    return datetime.now(UTC)


class ConfigDocumentService:
    """One hub's configuration documents. Call :meth:`resume` once before anything else."""

    def __init__(self, *, local: LocalConfig, store: StateStore, reload: Reload, health_check: HealthCheck,
                 publish_report: PublishReport, installed_key: InstalledKey, grace_s: float | None = None,
                 clock: WallClock = _utc_now) -> None:
        """``grace_s`` overrides ``[fleet] apply_grace_s`` (tests and benchmarks that cannot wait 10 s)."""
        self._local = local
        self._gateway_id = local.config.gateway.id
        self._store = store
        self._reload = reload
        self._health_check = health_check
        self._publish_report = publish_report
        self._installed_key = installed_key
        self._grace_s = grace_s
        self._clock = clock
        self._state = FleetState()
        self._config = local.config
        self._resumed = False
        self._lock = asyncio.Lock()

    @property
    def state(self) -> FleetState:
        return self._state

    @property
    def config(self) -> GatewayConfig:
        """The effective configuration the service believes runs (the previous one during a trial)."""
        return self._config

    def current_key(self) -> Ed25519PublicKey | None:
        """The key the fleet signs with: the rotated one once a rotation passed, else the installed one."""
        return self._state.fleet_key(self._installed_key())

    async def resume(self) -> GatewayConfig:
        """Read the state, roll back a trial the hub restarted in, and return the configuration to run.

        Does not publish: call :meth:`publish_last_report` once connected (it carries any rollback).
        """
        async with self._lock:
            loaded = await asyncio.to_thread(self._store.load)
            settled = settle(loaded, self._local)
            if settled.changed:
                await self._save(settled.state, settled.state.last_report)
            self._state, self._config, self._resumed = settled.state, settled.config, True
            if loaded.trial is not None:
                log.warning("fleet config rolled back after a restart gateway=%s version=%d",
                            self._gateway_id, loaded.trial.version)
            return settled.config

    def publish_last_report(self) -> None:
        """Publish the last outcome again (after every connect): the broker may have lost it, or the
        hub may have rolled back while it was away."""
        if self._state.last_report is not None:
            self._publish(self._state.last_report)

    async def handle(self, payload: bytes) -> Report | None:
        """Handle one ``config/desired`` payload; the report published, or None when nothing is new
        (the applied version or a rolled-back one again, or the same refusal as last time)."""
        if not self._resumed:
            raise RuntimeError("ConfigDocumentService.resume() must run first: the state decides what is new")
        async with self._lock:
            try:
                document = open_document(payload, gateway_id=self._gateway_id, key=self.current_key())
            except DocumentRejected as rejected:
                return await self._rejected(rejected)
            verdict = self._state.verdict(document.version)
            if verdict in (Verdict.ALREADY_APPLIED, Verdict.ROLLED_BACK):
                log.info("fleet config unchanged gateway=%s version=%d because=%s", self._gateway_id,
                         document.version, verdict.value)
                return None
            if verdict is Verdict.REPLAY:
                highest = self._state.highest_seen
                return await self._rejected(DocumentRejected(document.version, (DocumentError(
                    "version", f"version {document.version} is below {highest}, the highest this hub has seen: "
                    f"a replay, or a document sent out of order; issue a version above {highest}"),)))
            try:
                candidate = check_config(document, self._local, self._state.overlay)
            except DocumentRejected as rejected:
                return await self._rejected(rejected)
            return await self._apply(candidate)

    # --- outcomes ---------------------------------------------------------------------------------

    async def _rejected(self, rejected: DocumentRejected) -> Report | None:
        state = self._state
        report = Report(rejected.version, ReportStatus.REJECTED, rejected.errors, state.applied_version,
                        state.applied_at, effective_view(self._config))
        if rejected.version is not None:
            if report == state.last_report:
                return None  # the retained copy of a document refused before, refused the same way
            # The fleet's own document for this hub: its version is used up, even though refused.
            self._state = state.seen(rejected.version, report)
            await self._save(self._state, report)
        # A document that never proved to be the fleet's changes nothing on disk: whoever sent it
        # cannot wear the SD card or push the hub's highest version out of reach.
        log.warning("fleet config rejected gateway=%s version=%s errors=%d first=%s", self._gateway_id,
                    rejected.version, len(rejected.errors), excerpt(rejected.errors[0].path, 80))
        self._publish(report)
        return report

    async def _apply(self, candidate: Candidate) -> Report | None:
        old = self._config
        trying = self._state.begin(Trial(candidate.version, candidate.overlay, self._clock(),
                                         candidate.fleet_public_key))
        try:
            await asyncio.to_thread(self._store.save, trying)
        except FleetStateError as exc:
            # Without its trial on disk, a crash during the trial could not be rolled back: apply nothing.
            return await self._rejected(DocumentRejected(candidate.version, (DocumentError(
                HUB, f"{exc}; nothing was applied"),)))
        self._state = trying
        log.info("fleet config trial gateway=%s version=%d sections=%s", self._gateway_id, candidate.version,
                 ",".join(section_names(candidate.overlay)))
        failure = await self._try(candidate.version, old, candidate.config)
        if failure is None:
            applied_at = self._clock()
            report = Report(candidate.version, ReportStatus.APPLIED, (), candidate.version, applied_at,
                            effective_view(candidate.config))
            committed = trying.commit(applied_at, self._installed_key(), report)
            try:
                await asyncio.to_thread(self._store.save, committed)
            except FleetStateError as exc:
                # The disk still says "trial", so the next start would roll back: do it now, so what
                # runs and what the disk says never differ.
                failure = DocumentError(HUB, f"the configuration passed its checks but the hub could not record "
                                             f"it ({exc}); it is rolled back")
            else:
                self._state, self._config = committed, candidate.config
                log.info("fleet config applied gateway=%s version=%d rotated_key=%s", self._gateway_id,
                         candidate.version, candidate.fleet_public_key is not None)
                self._publish(report)
                return report
        return await self._roll_back(trying, old, failure)

    async def _roll_back(self, trying: FleetState, old: GatewayConfig, failure: DocumentError) -> Report:
        trial = trying.trial
        assert trial is not None, "a rollback is of a trial"
        report = Report(trial.version, ReportStatus.ROLLED_BACK, (failure,), trying.applied_version,
                        trying.applied_at, effective_view(old))
        self._state = trying.roll_back(report)
        await self._save(self._state, report)
        log.warning("fleet config rolled back gateway=%s version=%d path=%s", self._gateway_id, trial.version,
                    excerpt(failure.path, 80))
        try:
            await self._reload(old)
        except Exception as exc:
            log.exception("fleet config: the previous configuration did not reload gateway=%s version=%d",
                          self._gateway_id, trial.version)
            self._publish(report)
            raise RestoreError(f"configuration version {trial.version} was rolled back, but the previous "
                               "configuration did not reload; restart the daemon, it starts from the "
                               "previous configuration") from exc
        self._publish(report)
        return report

    async def _try(self, version: int, old: GatewayConfig, new: GatewayConfig) -> DocumentError | None:
        """None when ``new`` runs and passes the health checks in time; else why not."""
        try:
            await self._reload(new)
        except Exception as exc:  # whatever the daemon's reload raises counts against the document
            log.exception("fleet config did not reload gateway=%s version=%d", self._gateway_id, version)
            return DocumentError(HUB, f"the hub could not load this configuration ({_reason(exc)})")
        grace_s = self._grace_s if self._grace_s is not None else old.fleet.apply_grace_s
        deadline = asyncio.timeout(grace_s)
        try:
            async with deadline:
                result = await self._health_check(old, new)
        except TimeoutError as exc:
            if not deadline.expired():
                return DocumentError(HUB, f"the health check failed ({_reason(exc)})")
            return DocumentError(HUB, f"the health checks did not pass within {grace_s:g} s ([fleet] apply_grace_s)")
        except Exception as exc:
            log.exception("fleet config health check failed gateway=%s version=%d", self._gateway_id, version)
            return DocumentError(HUB, f"the health check failed ({_reason(exc)})")
        if not result.ok:
            return DocumentError(result.path, excerpt(result.reason or "a health check failed", REASON_CHARS))
        return None

    # --- I/O --------------------------------------------------------------------------------------

    async def _save(self, state: FleetState, report: Report | None) -> None:
        """Write the state; a disk that refuses is logged, not raised: the outcome still goes out, and
        the state on disk is one a restart handles safely (at worst a trial it rolls back again)."""
        try:
            await asyncio.to_thread(self._store.save, state)
        except FleetStateError as exc:
            log.error("fleet state not written gateway=%s version=%s error=%s", self._gateway_id,
                      report.version if report is not None else None, exc)

    def _publish(self, report: Report) -> None:
        try:
            self._publish_report(report.as_json())
        except Exception:  # kept in the state: published again after the next connect
            log.exception("fleet config report not published gateway=%s version=%s", self._gateway_id,
                          report.version)


def _reason(exc: BaseException) -> str:
    text = str(exc)
    return excerpt(f"{type(exc).__name__}: {text}" if text else type(exc).__name__, REASON_CHARS)
