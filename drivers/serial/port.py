"""A thin asyncio wrapper over pyserial, shared by every serial driver.

Each open port owns one worker thread and every blocking pyserial call runs there, in order, never
on the event loop. Reads are line-oriented with a deadline, which is what the meter, the NIBP module
and the AT-command modem all need; binary frame protocols read with ``read_available``.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import termios
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from types import TracebackType
from typing import Literal, Self, TypeVar

import serial

from drivers.errors import DeviceTimeoutError, DeviceUnavailableError

log = logging.getLogger(__name__)

_T = TypeVar("_T")

MAX_LINE_BYTES = 1024
"""A line longer than this is noise (wrong baud rate, a chattering adapter): hand it to the codec to refuse."""

_POLL_SLICE_S = 0.2
"""Longest single blocking read, so a close() is never stuck behind a long deadline."""

_MISSING_HINT = "check the USB cable and that the path exists (ls -l /dev/serial/by-id/)"


@dataclass(frozen=True, slots=True)
class SerialSettings:
    baudrate: int = 9600
    bytesize: Literal[5, 6, 7, 8] = 8
    parity: Literal["N", "E", "O"] = "N"
    stopbits: Literal[1, 2] = 1
    write_timeout_s: float = 2.0
    """A USB-serial adapter that stops draining its buffer must not hang the session forever."""
    exclusive: bool = True
    """Take an advisory lock so two processes never talk to one device at once."""


class SerialPort:
    """One open serial port. Build with :meth:`open`; use as ``async with``."""

    def __init__(self, path: str, port: serial.Serial, executor: ThreadPoolExecutor) -> None:
        self._path = path
        self._port = port
        self._executor = executor
        self._pending = bytearray()
        self._closed = False

    @property
    def path(self) -> str:
        return self._path

    @classmethod
    async def open(cls, path: str, settings: SerialSettings | None = None) -> Self:
        settings = settings or SerialSettings()
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"serial:{path}")
        try:
            port = await asyncio.get_running_loop().run_in_executor(executor, _open_blocking, path, settings)
        except BaseException:
            executor.shutdown(wait=False)
            raise
        log.debug("serial port opened path=%s baud=%d", path, settings.baudrate)
        return cls(path, port, executor)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def write(self, data: bytes) -> None:
        await self._run(self._write_blocking, data)

    async def read_line(self, *, timeout_s: float, terminator: bytes = b"\r") -> bytes:
        """Bytes up to and including ``terminator``.

        Raises :class:`DeviceTimeoutError` when no full line came within ``timeout_s`` (the partial
        bytes are kept for the next read). Returns an unterminated chunk of ``MAX_LINE_BYTES`` if the
        device sends that much without a terminator, so the caller's codec can refuse it.
        """
        deadline = time.monotonic() + timeout_s
        return await self._run(self._read_line_blocking, terminator, deadline)

    async def read_available(self, *, timeout_s: float, max_bytes: int = 4096) -> bytes:
        """Whatever arrives first within ``timeout_s`` (possibly empty), for binary frame codecs."""
        return await self._run(self._read_available_blocking, timeout_s, max_bytes)

    async def discard_input(self) -> None:
        """Drop unread bytes (a stale reply or line noise) before starting a new exchange."""
        await self._run(self._discard_blocking)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        # Wake a read that is blocked in the worker so the close behind it runs promptly.
        self._port.cancel_read()
        try:
            await asyncio.get_running_loop().run_in_executor(self._executor, self._port.close)
        except (OSError, termios.error, serial.SerialException) as exc:
            log.debug("serial port close failed path=%s error=%s", self._path, exc)
        finally:
            self._executor.shutdown(wait=False)
            log.debug("serial port closed path=%s", self._path)

    # -- worker-thread side ------------------------------------------------------------------------

    async def _run(self, function: Callable[..., _T], *args: object) -> _T:
        if self._closed:
            raise DeviceUnavailableError(f"serial port {self._path} is closed")
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, function, *args)
        except serial.SerialTimeoutException as exc:
            raise DeviceTimeoutError(f"serial port {self._path} did not accept data in time; {_MISSING_HINT}") from exc
        except (OSError, termios.error, serial.SerialException) as exc:
            # termios.error (not an OSError) comes from tcflush/tcdrain once the device is gone.
            raise DeviceUnavailableError(
                f"serial port {self._path} failed ({exc}): the device was probably unplugged; {_MISSING_HINT}"
            ) from exc

    def _write_blocking(self, data: bytes) -> None:
        self._port.write(data)
        try:
            self._port.flush()
        except (OSError, termios.error) as exc:
            # ptys and some adapters reject tcdrain-style ioctls (ENOTTY); the bytes are written anyway.
            if not exc.args or exc.args[0] not in (errno.ENOTTY, errno.EINVAL):
                raise

    def _read_line_blocking(self, terminator: bytes, deadline: float) -> bytes:
        while True:
            end = self._pending.find(terminator)
            if end >= 0:
                return self._take(end + len(terminator))
            if len(self._pending) >= MAX_LINE_BYTES:
                return self._take(MAX_LINE_BYTES)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise DeviceTimeoutError(
                    f"serial port {self._path}: no complete line within the reply deadline "
                    "(device off, disconnected from its cable, or busy)"
                )
            self._pending += self._read_some(min(remaining, _POLL_SLICE_S))

    def _read_available_blocking(self, timeout_s: float, max_bytes: int) -> bytes:
        if not self._pending:
            self._pending += self._read_some(timeout_s)
        return self._take(min(len(self._pending), max_bytes))

    def _read_some(self, timeout_s: float) -> bytes:
        self._port.timeout = timeout_s
        data: bytes = self._port.read(max(1, self._port.in_waiting))
        return data

    def _take(self, size: int) -> bytes:
        chunk = bytes(self._pending[:size])
        del self._pending[:size]
        return chunk

    def _discard_blocking(self) -> None:
        self._pending.clear()
        self._port.reset_input_buffer()


def _open_blocking(path: str, settings: SerialSettings) -> serial.Serial:
    port = serial.Serial()
    port.port = path
    port.baudrate = settings.baudrate
    port.bytesize = settings.bytesize
    port.parity = settings.parity
    port.stopbits = settings.stopbits
    port.timeout = _POLL_SLICE_S
    port.write_timeout = settings.write_timeout_s
    port.exclusive = settings.exclusive
    # No flow control: the meter cable and the OEM modules wire only RX/TX/GND.
    port.xonxoff = port.rtscts = port.dsrdtr = False
    try:
        port.open()
    except (OSError, serial.SerialException) as exc:
        raise DeviceUnavailableError(f"cannot open serial port {path} ({exc}); {_MISSING_HINT}") from exc
    return port
