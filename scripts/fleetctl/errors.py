"""The one exception root of the fleet tool, and the exit status each kind of error means."""

from __future__ import annotations


class FleetToolError(Exception):
    """Root of every error the fleet tool raises on purpose."""

    exit_status = 1


class UsageError(FleetToolError):
    """The operator's input is wrong (an argument, the hubs file, the body, the key, the state file):
    nothing was published; correct what the message names and run again."""

    exit_status = 2


class LinkError(FleetToolError):
    """The broker could not be reached, refused us, or did not acknowledge what we published.

    What was published so far is recorded in the state file: run the same command again to resume."""


class BadReport(FleetToolError):
    """A hub's ``config/reported`` message cannot be read; the hub is treated as not having answered."""
