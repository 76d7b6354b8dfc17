"""The rollout's state file: JSON that a person can read, replaced atomically after every change.

It holds everything needed to sign every hub's document again byte for byte (the body, version,
issue time and the signer's fingerprint: Ed25519 is deterministic), so it never stores the
signed documents themselves. It may hold personal data (contacts in the body): it is written 0600.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

from fleetctl.documents import DocumentSpec
from fleetctl.errors import UsageError
from fleetctl.plan import WavePlan
from fleetctl.reports import ReportError
from fleetctl.rollout import HubRecord, Phase, Policy, RolloutState

FORMAT = "yiyang-fleet-rollout/1"
MAX_STATE_BYTES = 512 * 1024 * 1024


class StateFileError(UsageError):
    """The state file cannot be read as a rollout: not written by this tool, damaged, or a newer format."""


def to_json(state: RolloutState) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "document": {
            "version": state.document.version,
            "issued_at": state.document.issued_at,
            "config": state.document.config,
            "fleet_public_key": state.document.fleet_public_key,
        },
        "signer": state.signer,
        "topic_root": state.topic_root,
        "plan": {"canary": state.plan.canary, "wave_percent": state.plan.wave_percent,
                 "waves": [list(wave) for wave in state.plan.waves]},
        "policy": {"halt_after": state.policy.halt_after, "timeout_s": state.policy.timeout_s},
        "waves_sent": state.waves_sent,
        "waves_confirmed": state.waves_confirmed,
        "hubs": {hub: _record_json(record) for hub, record in state.hubs.items()},
    }


def _record_json(record: HubRecord) -> dict[str, Any]:
    data: dict[str, Any] = {"phase": record.phase.value}
    if record.sent_at is not None:
        data["sent_at"] = round(record.sent_at, 3)
    if record.answered_at is not None:
        data["answered_at"] = round(record.answered_at, 3)
    if record.errors:
        data["errors"] = [{"path": e.path, "message": e.message} for e in record.errors]
    return data


def from_json(data: Any, source: str) -> RolloutState:
    try:
        if data.get("format") != FORMAT:
            raise StateFileError(f"{source}: not a rollout state file of this tool (format {FORMAT})")
        doc, plan, policy = data["document"], data["plan"], data["policy"]
        waves = tuple(tuple(_str(hub) for hub in wave) for wave in plan["waves"])
        state = RolloutState(
            document=DocumentSpec(
                version=_int(doc["version"]), issued_at=_str(doc["issued_at"]), config=_dict(doc["config"]),
                fleet_public_key=_str_or_none(doc.get("fleet_public_key"))),
            signer=_str(data["signer"]),
            topic_root=_str(data["topic_root"]),
            plan=WavePlan(canary=_int(plan["canary"]), wave_percent=_int(plan["wave_percent"]), waves=waves),
            policy=Policy(halt_after=_int(policy["halt_after"]), timeout_s=float(policy["timeout_s"])),
            hubs={_str(hub): _record(record) for hub, record in _dict(data["hubs"]).items()},
            waves_sent=_int(data["waves_sent"]),
            waves_confirmed=_int(data["waves_confirmed"]),
        )
    except StateFileError:
        raise
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise StateFileError(f"{source}: damaged rollout state ({type(exc).__name__}: {exc})") from exc
    _check_consistent(state, source)
    return state


def _record(data: Any) -> HubRecord:
    return HubRecord(
        phase=Phase(data["phase"]),
        sent_at=_float_or_none(data.get("sent_at")),
        answered_at=_float_or_none(data.get("answered_at")),
        errors=tuple(ReportError(_str(e["path"]), _str(e["message"])) for e in data.get("errors", ())),
    )


def _check_consistent(state: RolloutState, source: str) -> None:
    planned = state.plan.hubs
    if sorted(planned) != sorted(state.hubs) or len(set(planned)) != len(planned):
        raise StateFileError(f"{source}: damaged rollout state (its hubs and its waves differ)")
    if not 0 <= state.waves_confirmed <= state.waves_sent <= len(state.plan.waves):
        raise StateFileError(f"{source}: damaged rollout state (wave counts out of range)")
    for index, wave in enumerate(state.plan.waves):
        sent = index < state.waves_sent
        if any((state.hubs[hub].phase is not Phase.NOT_SENT) != sent for hub in wave):
            raise StateFileError(f"{source}: damaged rollout state (wave {index + 1} is partly sent)")


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {type(value).__name__}")
    return value


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"expected an integer, got {type(value).__name__}")
    return value


def _dict(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise TypeError(f"expected an object, got {type(value).__name__}")
    return value


def _str_or_none(value: Any) -> str | None:
    return None if value is None else _str(value)


def _float_or_none(value: Any) -> float | None:
    return None if value is None else float(value)


def load(path: Path) -> RolloutState | None:
    """The saved rollout, or None when there is no state file yet (a new rollout)."""
    try:
        with path.open("rb") as file:
            data = file.read(MAX_STATE_BYTES + 1)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StateFileError(f"{path}: cannot read the state file ({exc.strerror})") from exc
    try:
        parsed = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise StateFileError(f"{path}: not JSON ({exc}); a damaged state file") from exc
    return from_json(parsed, str(path))


def save(path: Path, state: RolloutState) -> None:
    """Write the state next to ``path`` and rename it over: a crash leaves the old state or the new one."""
    data = json.dumps(to_json(state), ensure_ascii=False, indent=1).encode()
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise
    # The rename is durable only once the directory is on disk too.
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
