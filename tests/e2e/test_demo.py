"""The README's demo command keeps working: `yiyang demo --duration N` exits 0 only if readings
reached the platform and the simulated low glucose reached the family as an alert."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.timeout(120)
def test_demo_shows_readings_and_an_alert() -> None:
    result = subprocess.run([sys.executable, "-m", "gateway", "demo", "--duration", "60"], capture_output=True,
                            text=True, timeout=110, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "ALERT EMERGENCY hypoglycaemia" in result.stdout
    assert "OK: readings and an alert arrived" in result.stdout
