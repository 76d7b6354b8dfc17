"""Choosing a new rollout's version from what the broker holds (scripts/fleetctl/request.py)."""

from __future__ import annotations

import json

import pytest
from fleet_fakes import report
from fleetctl.errors import UsageError
from fleetctl.request import choose_version, highest_versions
from fleetctl.topics import Message

ROOT = "yiyang/v1"


def test_highest_versions_from_retained_documents_and_reports() -> None:
    messages = [
        Message(f"{ROOT}/gw-0001/config/desired", json.dumps({"version": 9}).encode(), True),
        Message(f"{ROOT}/gw-0001/config/reported", report(8), True),
        Message(f"{ROOT}/gw-0002/config/reported", report(3, "rejected", applied_version=11), True),
        Message(f"{ROOT}/gw-0003/config/reported", b"[[[[", True),  # unreadable: no opinion
        Message(f"{ROOT}/gw-0004/config/desired", b"", True),  # cleared
        Message(f"{ROOT}/gw-0005/status", b'{"version": 99}', True),  # not a configuration topic
        Message("other/v1/gw-0006/config/desired", b'{"version": 99}', True),
    ]
    assert highest_versions(messages, ROOT) == {"gw-0001": 9, "gw-0002": 11}


def test_auto_is_one_above_the_highest_anywhere_and_explicit_must_be_new_for_each_hub() -> None:
    known = {"gw-0001": 9, "gw-0002": 11}
    assert choose_version(None, known, ["gw-0001"]) == 12
    assert choose_version(None, {}, ["gw-0001"]) == 1
    assert choose_version(10, known, ["gw-0001", "gw-0003"]) == 10  # gw-0002 is not in this rollout
    with pytest.raises(UsageError, match=r"--version 9 is not new for gw-0001 \(9\)"):
        choose_version(9, known, ["gw-0001"])
    with pytest.raises(UsageError, match="1 or more"):
        choose_version(0, {}, ["gw-0001"])
