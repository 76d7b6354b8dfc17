"""The fleet side's errors (under gateway.errors.GatewayError, the package's one root)."""

from __future__ import annotations

from gateway.errors import GatewayError


class CommandError(GatewayError):
    """The command could not run, or was refused; the message goes back to the requester."""


class AnsweredFileError(GatewayError):
    """The answered-requests file cannot be read or written: replays are refused from memory until a restart."""
