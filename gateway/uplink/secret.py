"""The gateway's platform secret, read from its own file.

The file must be private to the daemon's user: the secret signs every upload,
and anyone who reads it can upload in this resident's name.
"""

from __future__ import annotations

import logging
import stat
from pathlib import Path

from gateway.errors import SecretFileError

log = logging.getLogger(__name__)

_OTHERS_OR_GROUP = stat.S_IRWXG | stat.S_IRWXO


def load_secret(path: Path) -> bytes:
    """The secret's bytes, surrounding whitespace removed.

    Raises :class:`SecretFileError` naming the path and the fix when the file is
    missing, empty, or open to group or others.
    """
    try:
        mode = path.stat().st_mode
    except FileNotFoundError as exc:
        raise SecretFileError(
            f"platform secret file {path} does not exist: write the secret issued for this gateway "
            f"into it and run: chmod 600 {path}"
        ) from exc
    except OSError as exc:
        raise SecretFileError(f"platform secret file {path} cannot be read ({exc.strerror})") from exc
    if not stat.S_ISREG(mode):
        raise SecretFileError(f"platform secret file {path} is not a regular file")
    if mode & _OTHERS_OR_GROUP:
        raise SecretFileError(
            f"platform secret file {path} is open to group or others (mode {stat.S_IMODE(mode):04o}): "
            f"run: chmod 600 {path}"
        )
    try:
        secret = path.read_bytes().strip()
    except OSError as exc:
        raise SecretFileError(
            f"platform secret file {path} cannot be read ({exc.strerror}): "
            f"it must be owned by the gateway's user; then run: chmod 600 {path}"
        ) from exc
    if not secret:
        raise SecretFileError(
            f"platform secret file {path} is empty: write the secret issued for this gateway into it "
            f"and run: chmod 600 {path}"
        )
    log.info("platform secret loaded path=%s", path)
    return secret
