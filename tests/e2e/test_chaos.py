"""No loss, no duplicates: SIGKILL the daemon at random moments while the meter produces readings
and the platform flaps (down, 503, 429, slow, answers after the client gave up).

Short by default so CI runs it on every change; the soak form is the same test with more cycles:
``YIYANG_CHAOS_CYCLES=200 pytest tests/e2e/test_chaos.py``. The seed is printed and can be pinned
with ``YIYANG_CHAOS_SEED``.
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import devstack
import pytest
from gatewayproc import (
    GATEWAY_ID,
    GatewayProcess,
    outbox_rows,
    platform_records,
    set_fault,
    started_since,
    wait_until,
    write_config,
)

CYCLES = int(os.environ.get("YIYANG_CHAOS_CYCLES", "8"))
SEED = int(os.environ.get("YIYANG_CHAOS_SEED", str(random.SystemRandom().randrange(2**31))))

FAULTS: list[dict[str, float | str]] = [
    {"mode": "ok"},
    {"mode": "503", "retry_after": 0.5},
    {"mode": "429", "retry_after": 0.3},
    {"mode": "500"},
    {"mode": "down"},
    {"mode": "slow", "delay_s": 1.0},
    # Stores the batch but answers after the gateway's 2 s timeout: the retry must come back as
    # duplicates and be treated as delivered, never stored twice.
    {"mode": "timeout", "delay_s": 2.5},
]


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_sigkill_while_the_platform_flaps_loses_nothing_and_duplicates_nothing(
        tmp_path: Path, broker: devstack.Broker) -> None:
    print(f"chaos seed {SEED} (pin with YIYANG_CHAOS_SEED={SEED}), cycles {CYCLES}")
    rng = random.Random(SEED)
    initial = 5
    with devstack.platform_server(tmp_path / "platform", GATEWAY_ID) as platform, \
            devstack.onetouch_meter(tmp_path / "meter", records=initial) as meter:
        config = write_config(tmp_path / "gateway.toml", data_dir=tmp_path / "data", platform_url=platform.url,
                              secret_file=platform.secret_file, broker_port=broker.port, meter_link=meter.link)
        gateway = GatewayProcess(config, tmp_path / "daemon.log")
        stop = threading.Event()
        added: list[int] = []

        def measure() -> None:
            # One new result a little more than a second apart: the meter's clock has 1 s resolution
            # and identity is serial + time + value.
            while not stop.wait(1.1):
                value = 60 + (len(added) * 37) % 240
                meter.command(f"add {value}")
                added.append(value)

        def flap() -> None:
            while not stop.wait(rng.uniform(0.5, 2.0)):
                set_fault(platform.url, **rng.choice(FAULTS))  # type: ignore[arg-type]

        workers = [threading.Thread(target=measure, daemon=True), threading.Thread(target=flap, daemon=True)]
        for worker in workers:
            worker.start()
        try:
            for _ in range(CYCLES):
                gateway.start()
                time.sleep(rng.uniform(0.3, 3.0))
                gateway.kill()  # SIGKILL: no chance to clean up
        finally:
            stop.set()
            for worker in workers:
                worker.join()
        set_fault(platform.url, "ok")
        expected = initial + len(added)

        # A last, clean run: everything the meter holds must be accepted once and delivered once.
        clean_start = datetime.now(UTC)
        gateway.start()
        try:
            # Up (its signal handlers in place) before the figures, which a killed run may already have met.
            wait_until(lambda: started_since(tmp_path / "data", clean_start), 30, "the clean run up")
            wait_until(lambda: _delivered_readings(tmp_path) == expected, 90,
                       f"{expected} readings accepted and delivered")
            wait_until(lambda: all(r[2] == "delivered" for r in outbox_rows(tmp_path / "data")), 30,
                       "the outbox fully delivered")
        finally:
            gateway.signal(signal.SIGTERM)
            assert gateway.wait(30) == 0
        rows = outbox_rows(tmp_path / "data")
        at_platform = platform_records(platform.db)

    readings = [r for r in rows if r[1] == "blood_glucose"]
    assert len(readings) == expected, "every reading the meter holds was accepted"
    assert len({r[3] for r in readings}) == expected, "no meter record accepted twice"
    assert {r[0] for r in rows} == {r["record_id"] for r in at_platform}, "the platform holds what the hub accepted"
    identities = Counter((r["device"]["id"], r["measured_at"], r["values"]["value"])  # type: ignore[index]
                         for r in at_platform if r["type"] == "blood_glucose")
    assert max(identities.values()) == 1, "no reading counted twice at the platform"
    assert len(identities) == expected
    assert gateway.starts == CYCLES + 1


def _delivered_readings(tmp_path: Path) -> int:
    try:
        return sum(1 for r in outbox_rows(tmp_path / "data") if r[1] == "blood_glucose" and r[2] == "delivered")
    except Exception:
        return -1
