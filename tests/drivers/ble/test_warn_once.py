"""WarnOnce: a device's repeated complaint at warning the first time, at debug after, from the caller's place."""

from __future__ import annotations

import logging

import pytest

from drivers.ble.warn_once import WarnOnce

LOGGER = logging.getLogger("tests.warn_once")


def test_each_fact_is_a_warning_the_first_time_and_debug_after(caplog: pytest.LogCaptureFixture) -> None:
    once = WarnOnce(LOGGER)
    with caplog.at_level(logging.DEBUG, logger=LOGGER.name):
        once("clock", "clock off device=%s", "d1")
        once("clock", "clock off device=%s", "d1")
        once("model", "no model device=%s", "d1")
    assert [(r.name, r.levelno, r.getMessage()) for r in caplog.records] == [
        (LOGGER.name, logging.WARNING, "clock off device=d1"),
        (LOGGER.name, logging.DEBUG, "clock off device=d1"),
        (LOGGER.name, logging.WARNING, "no model device=d1"),
    ]
    assert {r.funcName for r in caplog.records} == {"test_each_fact_is_a_warning_the_first_time_and_debug_after"}
