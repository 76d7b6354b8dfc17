"""The hub's Mosquitto accounts on disk: its password file, its ACL file, and telling it to reload.

Used by ``yiyang family`` (run as root on the hub). Passwords go to ``mosquitto_passwd`` on its
standard input, never on a command line where ``ps`` would show them. Files keep their owner and
mode; a file made here is 0600 and, when run as root, owned by the ``mosquitto`` user, who must read
it (Mosquitto refuses to load password and ACL files others can read in its later versions).

How Mosquitto is told to reload (:func:`parse_reload`): ``systemctl`` (``systemctl reload
mosquitto``, the Debian unit's SIGHUP), ``pidfile:PATH`` or ``pid:N`` (SIGHUP to that process), or
``none``. On SIGHUP Mosquitto reads both files again: a removed account cannot connect again, and
the ACL applies at once to connections already open.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import secrets
import shutil
import signal
import subprocess
import tempfile
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from gateway.errors import BrokerAccountError

DEFAULT_PASSWORD_FILE = Path("/etc/mosquitto/yiyang.passwd")
DEFAULT_ACL_FILE = Path("/etc/mosquitto/yiyang.acl")
"""Where config/mosquitto-hub.conf.example points Mosquitto."""
BROKER_USER = "mosquitto"
TOOL_TIMEOUT_S = 30.0

PASSWORD_MIN_CHARS = 12
"""The broker listens on the home Wi-Fi, where anyone may try passwords: no short ones."""
PASSWORD_MAX_CHARS = 128
_PRINTABLE = re.compile(r"[\x21-\x7e]+")
"""ASCII without spaces: typed into a phone app, and no newline can end it early on mosquitto_passwd's stdin."""


def generate_password() -> str:
    """144 random bits as 24 URL-safe characters: easy to type into the app, shown once."""
    return secrets.token_urlsafe(18)


def check_password(password: str) -> None:
    if not PASSWORD_MIN_CHARS <= len(password) <= PASSWORD_MAX_CHARS or not _PRINTABLE.fullmatch(password):
        raise BrokerAccountError(
            f"a family account's password must be {PASSWORD_MIN_CHARS} to {PASSWORD_MAX_CHARS} printable ASCII "
            "characters without spaces; leave out --password-stdin to have one generated")


def broker_users(password_file: Path) -> list[str]:
    """The user names in a Mosquitto password file (``user:hash`` lines), in file order."""
    try:
        text = password_file.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise BrokerAccountError(f"cannot read {password_file} ({exc.strerror}): run as root") from exc
    return [line.split(":", 1)[0] for line in text.splitlines() if line.strip() and not line.startswith("#")]


def set_password(password_file: Path, user: str, password: str) -> None:
    """Add ``user`` to the password file, or give it a new password (the file is made if missing)."""
    check_password(password)
    _ensure_private_file(password_file)
    _passwd([str(password_file), user], stdin=f"{password}\n{password}\n")


def delete_user(password_file: Path, user: str) -> bool:
    """Remove ``user`` from the password file; False when it was not there."""
    if user not in broker_users(password_file):
        return False
    _passwd(["-D", str(password_file), user])
    return True


def write_acl(acl_file: Path, text: str) -> None:
    """Replace the ACL file atomically with ``text``, keeping its owner and mode (0600, Mosquitto's, if new)."""
    if not acl_file.exists():
        _ensure_private_file(acl_file)
    info = acl_file.stat()
    descriptor, temporary = tempfile.mkstemp(prefix=f".{acl_file.name}.", dir=acl_file.parent)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            file.write(text)
        os.chmod(temporary, info.st_mode & 0o7777)
        if os.geteuid() == 0:
            os.chown(temporary, info.st_uid, info.st_gid)
        os.replace(temporary, acl_file)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def read_acl(acl_file: Path) -> str | None:
    try:
        return acl_file.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise BrokerAccountError(f"cannot read {acl_file} ({exc.strerror}): run as root") from exc


class ReloadKind(StrEnum):
    SYSTEMCTL = "systemctl"
    PIDFILE = "pidfile"
    PID = "pid"
    NONE = "none"


@dataclass(frozen=True, slots=True)
class Reload:
    """How to make the hub's Mosquitto read its password and ACL files again."""

    kind: ReloadKind
    target: str = ""
    """The pid file's path, or the pid."""

    def describe(self) -> str:
        return {ReloadKind.SYSTEMCTL: "systemctl reload mosquitto", ReloadKind.PIDFILE: f"SIGHUP to the pid in "
                f"{self.target}", ReloadKind.PID: f"SIGHUP to process {self.target}",
                ReloadKind.NONE: "not reloaded"}[self.kind]


def parse_reload(text: str) -> Reload:
    """``systemctl``, ``pidfile:PATH``, ``pid:N`` or ``none`` (the ``--reload`` option)."""
    kind, _, target = text.partition(":")
    try:
        reload = Reload(ReloadKind(kind), target)
    except ValueError:
        reload = None
    valid = reload is not None and (
        (reload.kind in (ReloadKind.SYSTEMCTL, ReloadKind.NONE) and not target)
        or (reload.kind is ReloadKind.PIDFILE and target.startswith("/"))
        or (reload.kind is ReloadKind.PID and target.isdigit() and int(target) > 1))
    if reload is None or not valid:
        raise BrokerAccountError(f"--reload {text!r}: use systemctl, pidfile:/absolute/path, pid:N or none")
    return reload


def reload_broker(reload: Reload) -> None:
    """Tell Mosquitto to read its files again; BrokerAccountError when it cannot be told."""
    if reload.kind is ReloadKind.NONE:
        return
    if reload.kind is ReloadKind.SYSTEMCTL:
        _run(["systemctl", "reload", "mosquitto"], what="systemctl reload mosquitto")
        return
    pid = int(reload.target) if reload.kind is ReloadKind.PID else _read_pid(Path(reload.target))
    try:
        os.kill(pid, signal.SIGHUP)
    except OSError as exc:
        raise BrokerAccountError(f"cannot signal Mosquitto (process {pid}): {exc.strerror}; is it running? "
                                 "Reload it by hand (systemctl reload mosquitto)") from exc


def _read_pid(path: Path) -> int:
    try:
        text = path.read_text(encoding="ascii").strip()
    except OSError as exc:
        raise BrokerAccountError(f"cannot read Mosquitto's pid file {path} ({exc.strerror}); is it running?") from exc
    if not text.isdigit() or int(text) <= 1:
        raise BrokerAccountError(f"{path} holds no process id")
    return int(text)


def _ensure_private_file(path: Path) -> None:
    if path.exists():
        return
    if not path.parent.is_dir():
        raise BrokerAccountError(f"{path.parent} does not exist: is Mosquitto installed (apt-get install mosquitto)?")
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.close(descriptor)
    if os.geteuid() == 0:
        with contextlib.suppress(KeyError):
            broker = pwd.getpwnam(BROKER_USER)
            os.chown(path, broker.pw_uid, broker.pw_gid)


def _passwd(args: list[str], stdin: str | None = None) -> None:
    tool = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
    _run([tool, *args], what="mosquitto_passwd", stdin=stdin)


def _run(command: list[str], *, what: str, stdin: str | None = None) -> None:
    try:
        done = subprocess.run(command, input=stdin, capture_output=True, text=True, timeout=TOOL_TIMEOUT_S,
                              check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BrokerAccountError(f"{what} could not run: {exc}; is Mosquitto installed?") from exc
    if done.returncode != 0:
        said = (done.stderr or done.stdout).strip().splitlines()
        raise BrokerAccountError(f"{what} failed (exit {done.returncode}): {said[-1] if said else 'no message'}")
