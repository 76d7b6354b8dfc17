"""Whether the daemon can keep its outbox in ``[gateway] data_dir``.

The outbox is the hub's memory while it is offline. A read-only or foreign-owned data directory
used to pass ``config check`` and stop the daemon at its first write. The daemon creates a missing
directory itself (``mkdir -p`` when it opens the outbox), so a missing one is fine as long as the
nearest directory that does exist lets the service user create it.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from gateway.config.access import ServiceUser, describe_owner, may
from gateway.config.locate import KeyPath
from gateway.config.schema import Problem

KEY: KeyPath = ("gateway", "data_dir")

MAX_ENTRIES_LOOKED_AT = 1000
"""The daemon keeps a handful of files there; a crowded directory is not walked to its end."""

_CREATE_IN = os.W_OK | os.X_OK
"""What creating or replacing a file in a directory takes."""


def data_dir_problems(data_dir: Path, user: ServiceUser) -> list[Problem]:
    """What stops ``user`` from creating the outbox in ``data_dir`` (empty when nothing does)."""
    try:
        existing = nearest_existing(data_dir)
        status = existing.stat()
        read_only = bool(os.statvfs(existing).f_flag & os.ST_RDONLY)
    except OSError as exc:
        return [Problem(KEY, f"cannot reach {data_dir} ({exc.strerror})",
                        f"let user {user.name} search the directories above it")]
    if existing == data_dir:
        subject, fix = f"{data_dir}", f"run: chown -R {user.name}: {data_dir}"
    else:
        subject = f"{data_dir} does not exist and cannot be created: {existing}"
        fix = f"create it: install -d -o {user.name} {data_dir}"
    if not stat.S_ISDIR(status.st_mode):
        return [Problem(KEY, f"{subject} is not a directory", "point data_dir at a directory")]
    if read_only:
        return [Problem(KEY, f"{subject} is on a read-only file system",
                        "remount it read-write, or point data_dir at a writable disk")]
    if not may(user, existing, status, _CREATE_IN):
        return [Problem(KEY, f"{subject} is not writable by user {user.name} ({describe_owner(status)})", fix)]
    return _foreign_files(data_dir, user) if existing == data_dir else []


def free_space_warning(data_dir: Path, budget_mb: int) -> Problem | None:
    """A warning when the disk under ``data_dir`` has less room than the outbox may take."""
    try:
        disk = os.statvfs(nearest_existing(data_dir))
    except OSError:
        return None  # data_dir_problems says why the directory cannot be reached
    free_mib = disk.f_bavail * disk.f_frsize // 2**20
    if free_mib >= budget_mb:
        return None
    return Problem(
        KEY,
        f"only {free_mib} MiB free on the disk of {data_dir}, less than the outbox may grow to "
        f"(storage.budget_mb = {budget_mb})",
        "free disk space, or lower storage.budget_mb to what the disk can hold",
    )


def nearest_existing(path: Path) -> Path:
    """``path`` itself if it exists, else its nearest ancestor that does (where mkdir -p starts)."""
    while True:
        try:
            os.stat(path)
        except (FileNotFoundError, NotADirectoryError):
            if path.parent == path:
                raise
            path = path.parent
        else:
            return path


def _foreign_files(data_dir: Path, user: ServiceUser) -> list[Problem]:
    # The outbox and status files left behind by a run as root (a technician's `sudo yiyang run`)
    # stop the service at its first write just as a foreign directory does.
    foreign: list[str] = []
    try:
        with os.scandir(data_dir) as entries:
            for count, entry in enumerate(entries):
                if count == MAX_ENTRIES_LOOKED_AT:
                    break
                status = entry.stat(follow_symlinks=False)
                if stat.S_ISREG(status.st_mode) and not may(user, Path(entry.path), status, os.W_OK):
                    foreign.append(f"{entry.name} ({describe_owner(status)})")
    except OSError:
        return []  # a directory it may write but not list, or a file gone meanwhile: nothing to name
    if not foreign:
        return []
    return [Problem(KEY, f"user {user.name} cannot write {', '.join(sorted(foreign))} in {data_dir}",
                    f"run: chown -R {user.name}: {data_dir}")]
