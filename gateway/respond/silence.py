"""Turns silence findings into alerts: one alert per silence, resolved when the device is back."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from enum import StrEnum

from gateway.detect.silence import SilenceChange, SilenceFinding
from gateway.respond import messages
from gateway.respond.service import AlertService
from gateway.vocabulary import AlertKind

log = logging.getLogger(__name__)


class Audience(StrEnum):
    """Who a silence alert is for (the alert's evidence says it): a device gone quiet may need a technician."""

    FAMILY = "family"
    TECHNICIAN = "technician"


AUDIENCES: dict[AlertKind, frozenset[Audience]] = {
    AlertKind.DEVICE_SILENT: frozenset({Audience.FAMILY, Audience.TECHNICIAN}),
    AlertKind.MEASUREMENT_MISSED: frozenset({Audience.FAMILY}),
}


class SilenceAlerts:
    def __init__(self, alerts: AlertService) -> None:
        self._alerts = alerts
        self._open: dict[tuple[str, AlertKind], str] = {}

    async def apply(self, findings: Sequence[SilenceFinding]) -> None:
        for finding in findings:
            if finding.change is SilenceChange.STARTED:
                if finding.key in self._open:
                    continue
                audience = AUDIENCES[finding.kind]
                alert = await self._alerts.raise_alert(
                    kind=finding.kind, severity=finding.severity, resident_id=finding.resident_id,
                    message=messages.silence(finding),
                    evidence={"device_id": finding.device_id, "audience": sorted(a.value for a in audience)})
                self._open[finding.key] = alert.alert_id
            else:
                alert_id = self._open.pop(finding.key, None)
                if alert_id is not None:
                    await self._alerts.resolve(alert_id, message=messages.silence(finding))
