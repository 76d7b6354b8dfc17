"""The one exception root of the drivers package.

Every subclass says what went wrong and what a technician can do about it.
"""

from __future__ import annotations


class DriverError(Exception):
    """Root of every error raised by :mod:`drivers`."""


class CodecError(DriverError):
    """Bytes from a device could not be decoded.

    Raised by pure codecs for malformed, truncated or corrupted frames. A
    session logs it once with the device id and carries on: bad radio or
    serial input never stops the daemon.
    """


class ChecksumError(CodecError):
    """A frame's checksum did not match its contents (line noise or a bad cable)."""


class DeviceUnavailableError(DriverError):
    """The device is not there (unplugged, out of range, port missing).

    Check the cable or that the device is switched on and in range.
    """


class DeviceTimeoutError(DriverError):
    """The device stopped answering in the middle of an exchange."""


class NotAcceptedError(DriverError):
    """The gateway could not store the records it was handed durably (its disk failed).

    The records are not lost (the gateway keeps what it can in memory), but they are not
    *accepted*: a session must not acknowledge them to the device (advance an RACP cursor,
    consider a meter's memory read) and offers them again at its next chance.
    """
