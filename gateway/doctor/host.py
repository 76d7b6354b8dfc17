"""The hub's own machine: the clock, the disk under the outbox, the fleet's key.

Each is read from the system, never from the daemon: they hold whether it runs or not.
"""

from __future__ import annotations

import os
from pathlib import Path

from gateway.clock import ClockSyncMode
from gateway.config.access import ServiceUser
from gateway.config.datadir import nearest_existing
from gateway.config.files import FLEET_KEY, file_complaint
from gateway.config.schema import FleetSettings, StorageSettings
from gateway.doctor.report import Check, ok, problem, warning

CLOCK, DISK, FLEET_KEY_CHECK = "clock", "disk", "fleet key"
OUTBOX_FILES = ("outbox.sqlite", "outbox.sqlite-wal", "outbox.sqlite-shm")
"""What the outbox occupies in ``data_dir`` (gateway.daemon.outbox_path and SQLite's WAL files)."""
NTP_FIX = "timedatectl set-ntp true, then timedatectl timesync-status (the hub needs the internet for NTP)"


def clock_check(kernel_synced: bool | None, mode: ClockSyncMode) -> Check:
    """``kernel_synced``: gateway.clock.kernel_clock_synced(), asked by the caller (tests pass their own)."""
    overridden = {ClockSyncMode.ASSUME_SYNCED: " ([gateway] clock_sync = assume_synced: records are stamped "
                                               "as synchronised all the same)",
                  ClockSyncMode.ASSUME_UNSYNCED: " ([gateway] clock_sync = assume_unsynced: records are stamped "
                                                 "hub_unsynced all the same)"}.get(mode, "")
    if kernel_synced is None:
        return warning(CLOCK, f"the kernel cannot be asked whether NTP set the clock (adjtimex){overridden}",
                       "timedatectl")
    if not kernel_synced:
        return problem(CLOCK, "not synchronised by NTP: records are stamped hub_unsynced and fleet commands that "
                              f"must not run twice are refused{overridden}", NTP_FIX)
    return ok(CLOCK, f"synchronised by NTP{overridden}")


def disk_check(data_dir: Path, storage: StorageSettings) -> Check:
    """Room on the disk for the outbox to grow to its budget: a disk that fills first loses records."""
    try:
        disk = os.statvfs(nearest_existing(data_dir))
    except OSError as exc:
        return problem(DISK, f"cannot look at the disk of {data_dir} ({exc.strerror})", f"ls -ld {data_dir}")
    free = disk.f_bavail * disk.f_frsize
    used = sum(_size(data_dir / name) for name in OUTBOX_FILES)
    budget = storage.budget_mb * 2**20
    room = max(0, budget - used)
    facts = (f"{_mib(free)} MiB free on the disk of {data_dir}; the outbox uses {_mib(used)} of its "
             f"{storage.budget_mb} MiB budget")
    if free < room:
        return problem(DISK, f"{facts}: the disk fills before the budget stops the outbox",
                       "free space (journalctl --vacuum-size=50M; apt-get clean), or lower [storage] budget_mb "
                       f"to {max(16, (used + free) // 2**20 - 16)}")
    return ok(DISK, facts)


def fleet_key_check(fleet: FleetSettings, user: ServiceUser) -> Check:
    path = fleet.public_key_file
    if path is None:
        return problem(FLEET_KEY_CHECK, "none installed ([fleet] public_key_file is empty): the fleet can neither "
                                        "configure this hub nor run commands on it",
                       "scripts/install.sh --fleet-key fleet.pub (with this hub's other arguments)")
    complaint = file_complaint(path, FLEET_KEY, user)
    if complaint is not None:
        what, todo = complaint
        return problem(FLEET_KEY_CHECK, what, todo)
    return ok(FLEET_KEY_CHECK, f"{path} holds an Ed25519 public key that user {user.name} may read")


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _mib(count: int) -> str:
    return f"{count / 2**20:.1f}"
