"""What the operator asks for, which version a new rollout gets, and whether a saved rollout is the
same one. Pure."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from fleetctl.errors import UsageError
from fleetctl.reports import MAX_REPORT_BYTES, MAX_REPORT_DEPTH
from fleetctl.rollout import Policy, RolloutState
from fleetctl.topics import DESIRED, REPORTED, Message, hub_of
from gateway.errors import InboundError
from gateway.inbound import parse_json_bounded


@dataclass(frozen=True, slots=True)
class RolloutRequest:
    hubs: tuple[str, ...]
    """In rollout order: the first ``canary`` are the canaries."""
    config: Mapping[str, Any]
    """The document's ``config``: any subset of gateway.toml's sections."""
    version: int | None = None
    """None: one more than the highest version the broker shows for any hub (see :func:`choose_version`)."""
    fleet_public_key: str | None = None
    topic_root: str = "yiyang/v1"
    canary: int = 10
    wave_percent: int = 10
    halt_after: int = 2
    timeout_s: float = 150.0

    @property
    def policy(self) -> Policy:
        return Policy(halt_after=self.halt_after, timeout_s=self.timeout_s)


def request_from_state(state: RolloutState, **changes: Any) -> RolloutRequest:
    """The request that made ``state`` (for resuming without repeating every argument), with ``changes``."""
    fields: dict[str, Any] = {
        "hubs": state.plan.hubs, "config": state.document.config, "version": state.document.version,
        "fleet_public_key": state.document.fleet_public_key, "topic_root": state.topic_root,
        "canary": state.plan.canary, "wave_percent": state.plan.wave_percent,
        "halt_after": state.policy.halt_after, "timeout_s": state.policy.timeout_s,
    }
    fields.update({name: value for name, value in changes.items() if value is not None})
    return RolloutRequest(**fields)


def resume_problems(saved: RolloutState, request: RolloutRequest, signer: str) -> list[str]:
    """Why ``request`` is not the rollout in ``saved``: resuming must never sign a different
    document for a hub, nor reshuffle who has been sent what. ``halt_after`` and ``timeout_s`` may change."""
    problems = []
    if signer != saved.signer:
        problems.append("it was signed with another key (give the same --key)")
    if request.version is not None and request.version != saved.document.version:
        problems.append(f"it rolls out version {saved.document.version}, not {request.version}")
    if dict(request.config) != dict(saved.document.config):
        problems.append("its document body differs from the one given")
    if request.fleet_public_key != saved.document.fleet_public_key:
        problems.append("its fleet_public_key differs")
    if request.topic_root != saved.topic_root:
        problems.append(f"its topic root is {saved.topic_root}")
    if request.hubs != saved.plan.hubs:
        problems.append("its hubs (or their order) differ from the hubs file")
    if (request.canary, request.wave_percent) != (saved.plan.canary, saved.plan.wave_percent):
        problems.append(f"its waves were planned with --canary {saved.plan.canary} "
                        f"--wave-percent {saved.plan.wave_percent}")
    return problems


def highest_versions(messages: Iterable[Message], root: str) -> dict[str, int]:
    """The highest version each hub is known to have seen: its retained ``config/desired`` document,
    and the ``version`` and ``applied_version`` of its retained report. Unreadable messages are skipped."""
    highest: dict[str, int] = {}
    for message in messages:
        for leaf, names in ((DESIRED, ("version",)), (REPORTED, ("version", "applied_version"))):
            hub = hub_of(message.topic, root, leaf)
            if hub is None or not message.payload:
                continue
            for version in _versions(message.payload, names):
                highest[hub] = max(highest.get(hub, 0), version)
    return highest


def _versions(payload: bytes, names: tuple[str, ...]) -> list[int]:
    try:
        data = parse_json_bounded(payload, max_bytes=MAX_REPORT_BYTES, max_depth=MAX_REPORT_DEPTH)
    except InboundError:
        return []
    if not isinstance(data, dict):
        return []
    values = (data.get(name) for name in names)
    return [v for v in values if isinstance(v, int) and not isinstance(v, bool)]


def choose_version(requested: int | None, known: Mapping[str, int], hubs: Iterable[str]) -> int:
    """The version of a new rollout.

    Auto (``requested`` None) is one more than the highest version seen on any hub of the broker,
    not only these: versions then name one rollout fleet-wide. An explicit version must be above
    what each hub of the rollout has seen, or the hubs would refuse it as a replay, or worse, take
    it for a document they already applied.
    """
    if requested is None:
        return max(known.values(), default=0) + 1
    if requested < 1:
        raise UsageError(f"--version must be 1 or more, not {requested}")
    stale = sorted(hub for hub in hubs if known.get(hub, 0) >= requested)
    if stale:
        shown = ", ".join(f"{hub} ({known[hub]})" for hub in stale[:5])
        more = f" and {len(stale) - 5} more" if len(stale) > 5 else ""
        raise UsageError(f"--version {requested} is not new for {shown}{more}: give a higher version, or auto")
    return requested
