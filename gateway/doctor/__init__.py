"""``yiyang doctor``: is this hub fit to care for someone? Each check a verdict and the command that fixes it.

One module per group of checks, each a function from what it looks at to :class:`Check` verdicts:
``daemon_status`` (alive, what it reports, its outbox), ``bluetooth`` (the adapter over D-Bus),
``serial_ports``, ``broker``, ``platform_probe`` (a signed probe that stores nothing), ``host``
(clock, disk, fleet key); ``unit`` knows what the systemd unit grants the daemon; ``run`` puts them
together for the command line and for the fleet's ``doctor`` command inside the daemon.
"""

from gateway.doctor.daemon_status import STALE_AFTER_S, status_problems
from gateway.doctor.report import Check, Report, Status
from gateway.doctor.run import hub_report, in_daemon_report

__all__ = ["STALE_AFTER_S", "Check", "Report", "Status", "hub_report", "in_daemon_report", "status_problems"]
