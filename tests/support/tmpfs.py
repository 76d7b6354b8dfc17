"""Real small filesystems for storage-failure tests: a tmpfs the test mounts (full, read-only) and unmounts.

Needs root, as CI and the README's test command run. A test that needs it fails with the reason
when not root: it never skips silently.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path


def _need_root() -> None:
    assert os.geteuid() == 0, (
        "this test mounts a tmpfs to make a real full or read-only disk: run the suite as root "
        "(scripts/test.sh does on the CI machine)"
    )


@contextlib.contextmanager
def tmpfs(mountpoint: Path, size_kib: int, *, read_only: bool = False) -> Iterator[Path]:
    """Mount a tmpfs of ``size_kib`` at ``mountpoint`` for the duration of the block."""
    _need_root()
    mountpoint.mkdir(parents=True, exist_ok=True)
    options = f"size={size_kib}k,mode=0755" + (",ro" if read_only else "")
    subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(mountpoint)], check=True)
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", "-l", str(mountpoint)], check=False)


def remount(mountpoint: Path, *, read_only: bool) -> None:
    """Turn a mounted tmpfs read-only or back to read-write, keeping its content."""
    _need_root()
    mode = "ro" if read_only else "rw"
    subprocess.run(["mount", "-o", f"remount,{mode}", str(mountpoint)], check=True)


def fill(directory: Path, *, leave_bytes: int = 0) -> Path:
    """Fill the filesystem under ``directory`` with one file, leaving about ``leave_bytes`` free."""
    filler = directory / "filler.bin"
    stats = os.statvfs(directory)
    remaining = max(0, stats.f_bavail * stats.f_frsize - leave_bytes)
    chunk = b"\0" * 65536
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        while remaining > 0:
            remaining -= os.write(fd, chunk[: min(len(chunk), remaining)])
    except OSError:
        pass  # ENOSPC: as full as it gets
    finally:
        os.close(fd)
    return filler
