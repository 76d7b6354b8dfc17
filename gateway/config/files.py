"""The files a configuration names, checked the way the daemon will use them.

A missing broker password or fleet key used to pass ``config check`` and stop ``run`` with a
traceback. Each setting that names a file is one row of :func:`referenced_files`, and each kind of
file says what it must hold. ``yiyang config check`` and ``yiyang run`` both call
:func:`referenced_file_problems`, so one cannot pass what the other refuses.
"""

from __future__ import annotations

import os
import ssl
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from gateway.config.access import ServiceUser, describe_owner, may
from gateway.config.locate import KeyPath
from gateway.config.schema import GatewayConfig, Problem
from gateway.fleet.signing import SignatureError, load_public_key

Complaint = tuple[str, str]
"""(what is wrong, what to do)."""

MAX_FILE_BYTES = 1 << 20
"""Secrets and keys are a few bytes, a CA bundle some 200 KB: a bigger file is the wrong one."""

_GROUP_OR_OTHERS = stat.S_IRWXG | stat.S_IRWXO
_WRITABLE_BY_GROUP_OR_OTHERS = stat.S_IWGRP | stat.S_IWOTH


@dataclass(frozen=True, slots=True)
class FileKind:
    """One kind of file a setting can name, and what the daemon needs of it."""

    noun: str
    private: bool
    """A secret that only the service user may read (mode 0600); otherwise a trust anchor that
    group and others must not be able to change, or they could swap in their own broker CA or
    fleet key and be believed."""
    install: str
    """What to do when the file is missing or empty; ``{path}`` is filled in."""
    content: Callable[[Path, bytes], Complaint | None]
    """Checks the bytes as the daemon will use them."""


@dataclass(frozen=True, slots=True)
class ReferencedFile:
    key: KeyPath
    path: Path
    kind: FileKind


def _any_bytes(_path: Path, _data: bytes) -> Complaint | None:
    return None  # the platform secret is used as bytes, whatever they are


def _utf8_text(path: Path, data: bytes) -> Complaint | None:
    try:
        data.decode("utf-8")  # the daemon reads the password as UTF-8 text
    except UnicodeDecodeError as exc:
        return f"{path} is not UTF-8 text (byte {exc.start})", "write the password as UTF-8 text"
    return None


def _ca_certificates(path: Path, _data: bytes) -> Complaint | None:
    try:
        ssl.create_default_context(cafile=str(path))  # the daemon's own call (daemon._tls_context)
    except ssl.SSLError as exc:
        return f"{path} holds no usable certificate ({exc.reason or exc})", "install the CA certificate in PEM form"
    return None


def _fleet_key(path: Path, _data: bytes) -> Complaint | None:
    try:
        load_public_key(path)  # the daemon's own loader
    except SignatureError as exc:
        return str(exc), "install the fleet's Ed25519 public key there (PEM, or the 32-byte key in base64)"
    return None


PLATFORM_SECRET = FileKind(
    "platform secret", private=True,
    install="write the secret issued for this gateway into it and run: chmod 600 {path}", content=_any_bytes,
)
BROKER_PASSWORD = FileKind(
    "broker password", private=True,
    install="write the broker password into it and run: chmod 600 {path}", content=_utf8_text,
)
CA_CERTIFICATE = FileKind(
    "CA certificate", private=False,
    install='install the broker\'s CA certificate (PEM) there, or set ca_file = "" to use the system\'s CAs',
    content=_ca_certificates,
)
FLEET_KEY = FileKind(
    "fleet public key", private=False,
    install='install the fleet\'s Ed25519 public key there, or set public_key_file = "" to turn fleet commands off',
    content=_fleet_key,
)


def referenced_files(cfg: GatewayConfig) -> list[ReferencedFile]:
    """Every file the daemon will open with this configuration."""
    rows: tuple[tuple[KeyPath, Path | None, FileKind], ...] = (
        (("platform", "secret_file"), cfg.platform.secret_file if cfg.platform.enabled else None, PLATFORM_SECRET),
        (("mqtt", "password_file"), cfg.mqtt.password_file, BROKER_PASSWORD),
        (("mqtt", "ca_file"), cfg.mqtt.ca_file if cfg.mqtt.tls else None, CA_CERTIFICATE),
        (("fleet", "public_key_file"), cfg.fleet.public_key_file, FLEET_KEY),
    )
    return [ReferencedFile(key, path, kind) for key, path, kind in rows if path is not None]


def referenced_file_problems(cfg: GatewayConfig, user: ServiceUser) -> list[Problem]:
    """A problem for each referenced file that ``user`` (the daemon's user) could not use."""
    problems = []
    for ref in referenced_files(cfg):
        complaint = file_complaint(ref.path, ref.kind, user)
        if complaint is not None:
            problems.append(Problem(ref.key, *complaint))
    return problems


def file_complaint(path: Path, kind: FileKind, user: ServiceUser) -> Complaint | None:
    """What is wrong with the file at ``path`` as a ``kind`` for ``user``, or None."""
    try:
        status = path.stat()
    except FileNotFoundError:
        return f"{path} does not exist", kind.install.format(path=path)
    except OSError as exc:
        return f"cannot reach {path} ({exc.strerror})", f"let user {user.name} search the directories above it"
    return _mode_complaint(path, kind, user, status) or _content_complaint(path, kind, user)


def _content_complaint(path: Path, kind: FileKind, user: ServiceUser) -> Complaint | None:
    try:
        with path.open("rb") as file:
            data = file.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        return f"cannot read {path} ({exc.strerror})", f"let user {user.name} read it"
    if len(data) > MAX_FILE_BYTES:
        return f"{path} is larger than {MAX_FILE_BYTES // 2**20} MiB, far more than a {kind.noun}", "check the path"
    if not data.strip():
        return f"{path} is empty", kind.install.format(path=path)
    return kind.content(path, data)


def _mode_complaint(path: Path, kind: FileKind, user: ServiceUser, status: os.stat_result) -> Complaint | None:
    mode = stat.S_IMODE(status.st_mode)
    if not stat.S_ISREG(status.st_mode):
        return f"{path} is not a regular file", f"point the setting at the {kind.noun} file itself"
    if kind.private and mode & _GROUP_OR_OTHERS:
        return f"{path} is open to group or others (mode {mode:04o})", f"run: chmod 600 {path}"
    if not kind.private and mode & _WRITABLE_BY_GROUP_OR_OTHERS:
        return f"{path} can be changed by group or others (mode {mode:04o})", f"run: chmod go-w {path}"
    if not may(user, path, status, os.R_OK):
        fix = f"run: chown {user.name} {path}" if kind.private else f"run: chmod a+r {path}"
        return f"user {user.name} cannot read {path} ({describe_owner(status)})", fix
    return None
