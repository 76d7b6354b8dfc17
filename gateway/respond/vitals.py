"""Turns vital-sign findings into alerts: one each, with the threshold crossed and the reading as evidence.

The findings are :class:`gateway.detect.vital_state.VitalsMonitor`'s; the text is
:func:`gateway.respond.messages.vital`'s. A finding without a reading (a crisis recalled by a
confirmed fall) carries the threshold and why it escalated only.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import tzinfo

from drivers.model import Reading
from gateway.alerts.model import Evidence
from gateway.detect.vital_state import VitalFinding
from gateway.respond import messages
from gateway.respond.service import AlertService
from gateway.wire import measurement_values


class VitalAlerts:
    def __init__(self, alerts: AlertService) -> None:
        self._alerts = alerts

    async def apply(self, resident_id: str, findings: Sequence[VitalFinding], reading: Reading | None, *,
                    tz: tzinfo) -> None:
        """Raise an alert for each finding; ``reading``: the one they were found in, if any."""
        for finding in findings:
            evidence: Evidence = {"threshold": finding.threshold}
            if reading is not None:
                evidence.update({"reading_type": reading.type.value,
                                 "measured_at": reading.measured_at.astimezone(tz).isoformat(),
                                 **measurement_values(reading.measurement)})
            if finding.escalated:
                evidence["escalated"] = [e.value for e in finding.escalated]
            await self._alerts.raise_alert(kind=finding.kind, severity=finding.severity, resident_id=resident_id,
                                           message=messages.vital(finding), evidence=evidence,
                                           related_record_ids=finding.record_ids)
