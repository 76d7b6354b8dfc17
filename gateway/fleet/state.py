"""The fleet state (pure): what the hub has seen, applied and rolled back of the fleet's documents.

Kept in ``{data_dir}/fleet/state.json`` (:mod:`gateway.fleet.statefile` writes it atomically):

- ``highest_seen``: the highest version of a document the fleet signed for this hub. Anything lower
  is a replay, across restarts too.
- ``applied_version``, ``applied_at``, ``overlay``: the version running, and the fleet's sections
  (:mod:`gateway.fleet.overlay`), never a full configuration.
- ``rolled_back``: versions that failed their health checks (or were running when the hub
  restarted); never applied again, even while the broker still holds them retained.
- ``trial``: the version being health-checked right now. While it is set, ``overlay`` is still the
  previous one: a restart finds the trial and rolls it back simply by dropping it.
- ``rotated_key``: the fleet's next public key, once a document that carried it passed its checks.
- ``last_report``: re-published after every reconnect.
"""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from gateway.config import GatewayConfig
from gateway.fleet.overlay import Overlay
from gateway.fleet.report import Report, aware_time, optional_version, report_from_json

FORMAT = 1
"""Written into the file; a file of another format is treated as unreadable, not guessed at."""

ROLLED_BACK_KEPT = 64
"""Rolled-back versions remembered. Only those above every later version matter (anything lower is
refused as a replay anyway), so the oldest can go without a rolled-back document ever returning."""


@dataclass(frozen=True, slots=True)
class Trial:
    """A document being health-checked; ``overlay`` is what runs if it passes."""

    version: int
    overlay: Overlay
    started_at: datetime
    fleet_public_key: str | None


@dataclass(frozen=True, slots=True)
class RotatedKey:
    """The fleet's key after a rotation, and the installed key file's key it took over from.

    When a technician installs another key file (the fleet lost its private key), that key is in
    force again: the rotation only ever stands in for the key that was installed when it happened.
    """

    public_key: str
    """Base64 of the raw 32-byte Ed25519 key."""
    replaces_installed: str | None


class Verdict(Enum):
    """What to do with a document whose signature, hub id and version are good."""

    ALREADY_APPLIED = "already applied"
    ROLLED_BACK = "rolled back before"
    REPLAY = "replay"
    EVALUATE = "evaluate"


@dataclass(frozen=True, slots=True)
class FleetState:
    highest_seen: int = 0
    applied_version: int | None = None
    applied_at: datetime | None = None
    overlay: Overlay = field(default_factory=dict)
    rolled_back: frozenset[int] = frozenset()
    trial: Trial | None = None
    rotated_key: RotatedKey | None = None
    last_report: Report | None = None

    # --- decisions --------------------------------------------------------------------------------

    def verdict(self, version: int) -> Verdict:
        """The retained copy of what runs or was rolled back changes nothing and is not reported again;
        a version below the highest seen is a replay; the highest seen itself is evaluated again (a
        retained document refused before, or one the hub saw but restarted before reporting)."""
        if version == self.applied_version:
            return Verdict.ALREADY_APPLIED
        if version in self.rolled_back:
            return Verdict.ROLLED_BACK
        if version < self.highest_seen:
            return Verdict.REPLAY
        return Verdict.EVALUATE

    def fleet_key(self, installed: Ed25519PublicKey | None) -> Ed25519PublicKey | None:
        """The key documents and commands must be signed with: the rotated one while the installed
        key file still holds the key it replaced, else the installed one (None: no fleet key)."""
        rotated = self.rotated_key
        if rotated is None or rotated.replaces_installed != key_text(installed):
            return installed
        return Ed25519PublicKey.from_public_bytes(base64.b64decode(rotated.public_key))

    # --- transitions ------------------------------------------------------------------------------

    def seen(self, version: int, report: Report) -> FleetState:
        """A document of the fleet's for this hub was refused: its version is used up."""
        return dataclasses.replace(self, highest_seen=max(self.highest_seen, version), last_report=report)

    def begin(self, trial: Trial) -> FleetState:
        return dataclasses.replace(self, highest_seen=max(self.highest_seen, trial.version), trial=trial)

    def commit(self, at: datetime, installed: Ed25519PublicKey | None, report: Report) -> FleetState:
        """The trial passed: its overlay runs, and its key (if it carried one) is the fleet's from now on."""
        trial = self._trial()
        rotated = self.rotated_key
        if trial.fleet_public_key is not None:
            # Tied to the installed key as it is now: in a chain of rotations that is still the one the
            # first rotation replaced, since a rotation stays in force only while that key is installed.
            rotated = RotatedKey(trial.fleet_public_key, key_text(installed))
        return dataclasses.replace(self, applied_version=trial.version, applied_at=at, overlay=trial.overlay,
                                   trial=None, rotated_key=rotated, last_report=report)

    def roll_back(self, report: Report) -> FleetState:
        """The trial failed (or the hub restarted during it): the previous overlay stays."""
        return dataclasses.replace(self, trial=None, rolled_back=_remember(self.rolled_back, self._trial().version),
                                   last_report=report)

    def set_aside(self, report: Report) -> FleetState:
        """The applied overlay no longer fits the local file: run on the file alone, and never apply
        that version again (the fleet sends a new one that fits)."""
        rolled_back = self.rolled_back
        if self.applied_version is not None:
            rolled_back = _remember(rolled_back, self.applied_version)
        return dataclasses.replace(self, applied_version=None, applied_at=None, overlay={}, rolled_back=rolled_back,
                                   last_report=report)

    def _trial(self) -> Trial:
        if self.trial is None:
            raise ValueError("no configuration is being checked")
        return self.trial


def _remember(versions: frozenset[int], version: int) -> frozenset[int]:
    return frozenset(sorted(versions | {version})[-ROLLED_BACK_KEPT:])


def key_text(key: Ed25519PublicKey | None) -> str | None:
    """A public key as the state keeps it: base64 of the raw 32 bytes."""
    if key is None:
        return None
    return base64.b64encode(key.public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()


def status_fields(state: FleetState) -> dict[str, Any]:
    """For the status payload (``"fleet"``): ``{"version", "applied_at", "sections"}``, sections in
    the order of the configuration file."""
    return {
        "version": state.applied_version,
        "applied_at": state.applied_at.isoformat() if state.applied_at is not None else None,
        "sections": section_names(state.overlay),
    }


def describe_fleet(fields: Mapping[str, Any]) -> str:
    """One line for a technician from :func:`status_fields` (``yiyang config check``, ``yiyang status``)."""
    version = fields.get("version")
    if version is None:
        return "fleet: no configuration from the fleet applied"
    sections = fields.get("sections")
    names = ", ".join(str(name) for name in sections) if isinstance(sections, list) and sections else "none"
    return f"fleet: version {version} applied {fields.get('applied_at')}; sections from the fleet: {names}"


def section_names(overlay: Overlay) -> list[str]:
    order = [f.name for f in dataclasses.fields(GatewayConfig)]
    return sorted(overlay, key=lambda name: (order.index(name) if name in order else len(order), name))


# --- JSON ------------------------------------------------------------------------------------------


def state_to_json(state: FleetState) -> dict[str, Any]:
    trial = state.trial
    rotated = state.rotated_key
    return {
        "format": FORMAT,
        "highest_seen": state.highest_seen,
        "applied_version": state.applied_version,
        "applied_at": _time(state.applied_at),
        "overlay": state.overlay,
        "rolled_back": sorted(state.rolled_back),
        "trial": None if trial is None else {
            "version": trial.version, "overlay": trial.overlay, "started_at": _time(trial.started_at),
            "fleet_public_key": trial.fleet_public_key,
        },
        "rotated_key": None if rotated is None else {
            "public_key": rotated.public_key, "replaces_installed": rotated.replaces_installed,
        },
        "last_report": None if state.last_report is None else state.last_report.as_json(),
    }


def state_from_json(data: object) -> FleetState:
    """The state :func:`state_to_json` wrote; ValueError (saying what) for anything else."""
    if not isinstance(data, Mapping) or data.get("format") != FORMAT:
        raise ValueError(f"not a fleet state of format {FORMAT}")
    highest = data.get("highest_seen")
    if isinstance(highest, bool) or not isinstance(highest, int) or highest < 0:
        raise ValueError("highest_seen is not a version")
    rolled_back = data.get("rolled_back")
    if not isinstance(rolled_back, list):
        raise ValueError("rolled_back is not a list")
    trial, rotated, report = data.get("trial"), data.get("rotated_key"), data.get("last_report")
    applied_at = data.get("applied_at")
    return FleetState(
        highest_seen=highest,
        applied_version=optional_version(data.get("applied_version")),
        applied_at=None if applied_at is None else aware_time(applied_at),
        overlay=_overlay(data.get("overlay")),
        rolled_back=frozenset(_version(v) for v in rolled_back),
        trial=None if trial is None else _trial_from_json(trial),
        rotated_key=None if rotated is None else _rotated_from_json(rotated),
        last_report=None if report is None else report_from_json(report),
    )


def _time(at: datetime | None) -> str | None:
    return None if at is None else at.isoformat()


def _version(value: object) -> int:
    version = optional_version(value)
    if version is None:
        raise ValueError("a version is missing")
    return version


def _overlay(value: object) -> Overlay:
    if not isinstance(value, Mapping):
        raise ValueError("an overlay must be an object")
    return dict(value)


def _optional_key(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError("a key must be base64 text")
    Ed25519PublicKey.from_public_bytes(base64.b64decode(value, validate=True))
    return value


def _trial_from_json(data: object) -> Trial:
    if not isinstance(data, Mapping):
        raise ValueError("a trial must be an object")
    return Trial(_version(data.get("version")), _overlay(data.get("overlay")), aware_time(data.get("started_at")),
                 _optional_key(data.get("fleet_public_key")))


def _rotated_from_json(data: object) -> RotatedKey:
    if not isinstance(data, Mapping):
        raise ValueError("rotated_key must be an object")
    public_key = _optional_key(data.get("public_key"))
    if public_key is None:
        raise ValueError("rotated_key has no public_key")
    return RotatedKey(public_key, _optional_key(data.get("replaces_installed")))
