"""The user the daemon runs as, and whether that user may read a file or write into a directory.

``yiyang config check`` is often run as root while the daemon runs as ``yiyang``, and root may
read and write nearly everything: asking the kernel as root would pass what the daemon then trips
over. So for the user this process runs as the kernel is asked (``os.access``: mode, ACLs,
read-only mounts); for any other user the mode bits are read, which is what a technician sets
with chown and chmod. ACLs, and the directories above the file, are not judged for another user.
"""

from __future__ import annotations

import grp
import os
import pwd
import stat
from dataclasses import dataclass
from pathlib import Path

from gateway.errors import GatewayError


class UnknownUserError(GatewayError):
    """``--user`` names a user this system does not have."""


@dataclass(frozen=True, slots=True)
class ServiceUser:
    """A user by name, id and every group it is in."""

    name: str
    uid: int
    gids: frozenset[int]

    @classmethod
    def current(cls) -> ServiceUser:
        uid = os.geteuid()
        try:
            name = pwd.getpwuid(uid).pw_name
        except KeyError:  # a container user without a passwd entry
            name = str(uid)
        return cls(name, uid, frozenset({os.getegid(), *os.getgroups()}))

    @classmethod
    def named(cls, name: str) -> ServiceUser:
        try:
            entry = pwd.getpwnam(name)
        except KeyError as exc:
            raise UnknownUserError(
                f"there is no user {name!r} on this system; give the user the daemon runs as "
                "(User= in its systemd unit)"
            ) from exc
        return cls(name, entry.pw_uid, frozenset(os.getgrouplist(name, entry.pw_gid)))

    @property
    def is_this_process(self) -> bool:
        return self.uid == os.geteuid()


def may(user: ServiceUser, path: Path, status: os.stat_result, want: int) -> bool:
    """Whether ``user`` has all of ``want`` (``os.R_OK | os.W_OK | os.X_OK`` bits) on ``path``."""
    if user.is_this_process:
        # Effective ids: the ones the kernel will judge this process's own reads and writes by.
        return os.access(path, want, effective_ids=os.access in os.supports_effective_ids)
    if user.uid == 0:
        return True
    # Exactly one triplet applies: the owner's, else the group's, else everyone else's.
    if status.st_uid == user.uid:
        shift = 6
    elif status.st_gid in user.gids:
        shift = 3
    else:
        shift = 0
    return (status.st_mode >> shift) & want == want


def describe_owner(status: os.stat_result) -> str:
    """``owner root:yiyang, mode 0640``: what a technician compares with ``ls -l``."""
    return f"owner {_user_name(status.st_uid)}:{_group_name(status.st_gid)}, mode {stat.S_IMODE(status.st_mode):04o}"


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)
