"""The uplink with the FHIR R4 profile against the reference platform (a real subprocess) and a real outbox."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import devstack
import pytest
from uplink_hub import GATEWAY_ID, SECRET, Hub, admin, hub, run

from gateway.store import NewRecord, Priority, records
from gateway.uplink.fhir_client import FhirEncoder
from gateway.uplink.http import post
from gateway.uplink.signing import HmacSha256Signer

T0 = datetime(2026, 11, 22, 7, 31, 5, tzinfo=UTC)
RESIDENT = "r-430121-0042"


def stored(record_type: str, n: int, values: dict[str, Any], unit: str | None = None,
           priority: Priority = Priority.READING) -> NewRecord:
    at = (T0 + timedelta(minutes=n)).isoformat()
    payload: dict[str, Any] = {
        "type": record_type, "resident_id": RESIDENT,
        "device": {"id": "ble:C4:7C:8D:6A:11:02", "transport": "ble"},
        "measured_at": at, "received_at": at, "time_source": "device", "values": values, "flags": [],
    }
    if unit is not None:
        payload["unit"] = unit
    return NewRecord(record_type, priority, json.dumps(payload), T0 + timedelta(seconds=n))


def blood_pressure(n: int) -> NewRecord:
    return stored("blood_pressure", n, {"systolic": 120 + n, "diastolic": 80, "pulse": 70}, "mmHg")


def temperature(n: int) -> NewRecord:
    return stored("body_temperature", n, {"value": 36.6, "site": "ear"}, "Cel")


def alert(n: int, state: str) -> NewRecord:
    return stored("alert", n, {"alert_id": "a-0001", "kind": "fall", "severity": "urgent", "state": state,
                               "evidence": {"source": "radar"}, "related_record_ids": []}, priority=Priority.ALERT)


async def fhir_resources(url: str) -> dict[str, Any]:
    return await asyncio.to_thread(admin, url, "/admin/fhir")


def fhir_hub(tmp_path: Path, url: str, records: list[NewRecord], **settings: Any) -> AbstractAsyncContextManager[Hub]:
    """An outbox holding ``records`` and an uplink with the FHIR profile draining it to ``{url}/fhir``."""
    return hub(tmp_path, url + "/fhir", records, encoder=FhirEncoder(), **settings)


def observations_by_record(listing: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["identifier"]: r["resource"] for r in listing["resources"] if r["resource_type"] == "Observation"}


def test_every_record_becomes_one_observation_exactly_once(platform_factory: Callable[..., devstack.Platform],
                                                           tmp_path: Path) -> None:
    platform = platform_factory()
    offered = [blood_pressure(n) for n in range(5)] + [temperature(5), alert(6, "raised")]

    async def scenario() -> None:
        async with fhir_hub(tmp_path, platform.url, offered, batch_max_records=3) as h:
            await h.settled(delivered=7)
            listing = await fhir_resources(platform.url)
            by_record = observations_by_record(listing)
            assert sorted(by_record) == sorted(h.ids)
            assert listing["upload_requests"] == 3
            assert by_record[h.ids[0]]["code"]["coding"][0]["code"] == "85354-9"
            assert by_record[h.ids[0]]["subject"] == {"identifier": {"system": "urn:yiyang:resident",
                                                                     "value": RESIDENT}}
            [flag] = [r for r in listing["resources"] if r["resource_type"] == "Flag"]
            assert (flag["identifier"], flag["resource"]["status"]) == ("a-0001", "active")
            # The alert resolves later: the same Flag (a new version) says so.
            await h.outbox.intake.accept([alert(7, "resolved")])
            h.uplink.wake()
            await h.settled(delivered=8)
            [flag] = [r for r in (await fhir_resources(platform.url))["resources"] if r["resource_type"] == "Flag"]
            assert (flag["version"], flag["resource"]["status"]) == (2, "inactive")

    run(scenario())


def test_a_retry_after_a_lost_answer_finds_the_observations_and_makes_no_duplicate(
        platform_factory: Callable[..., devstack.Platform], tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # The platform stores the first try, then answers after the hub has given up on it.
    platform = platform_factory("--faults", "timeout:count=1,delay_s=2")

    async def scenario() -> None:
        async with fhir_hub(tmp_path, platform.url, [blood_pressure(n) for n in range(3)], timeout_s=0.4) as h:
            await h.settled(delivered=3)
        listing = await fhir_resources(platform.url)
        assert sorted(observations_by_record(listing)) == sorted(h.ids)
        assert len(listing["resources"]) == 3
        assert listing["upload_requests"] == 2

    run(scenario())
    assert "error='no answer within 0.4 s' consecutive_failures=1" in caplog.text


def test_an_entry_the_platform_refuses_dead_letters_that_record_only(
        platform_factory: Callable[..., devstack.Platform], tmp_path: Path) -> None:
    platform = platform_factory("--fhir-reject-code", "8310-5")

    async def scenario() -> None:
        async with fhir_hub(tmp_path, platform.url, [blood_pressure(0), temperature(1), blood_pressure(2)]) as h:
            await h.settled(delivered=2, dead=1)
            [dead] = await h.outbox.db.run(records.dead_letters())
            assert (dead.record_id, dead.type) == (h.ids[1], "body_temperature")
            assert dead.reason == "HTTP 422: Observation code 8310-5 is not accepted by this platform"
        assert sorted(observations_by_record(await fhir_resources(platform.url))) == sorted([h.ids[0], h.ids[2]])

    run(scenario())


def test_an_atomic_server_refuses_the_transaction_and_the_split_finds_the_record(
        platform_factory: Callable[..., devstack.Platform], tmp_path: Path) -> None:
    platform = platform_factory("--fhir-atomic", "--fhir-reject-code", "8310-5")
    offered = [blood_pressure(0), blood_pressure(1), temperature(2), blood_pressure(3)]

    async def scenario() -> None:
        async with fhir_hub(tmp_path, platform.url, offered) as h:
            await h.settled(delivered=3, dead=1)
            [dead] = await h.outbox.db.run(records.dead_letters())
            assert dead.record_id == h.ids[2]
            assert dead.reason == "HTTP 422: entry[0]: Observation code 8310-5 is not accepted by this platform"

    run(scenario())


def test_a_record_the_profile_cannot_map_is_dead_lettered_without_asking_the_platform(
        platform_factory: Callable[..., devstack.Platform], tmp_path: Path) -> None:
    platform = platform_factory()
    control = stored("blood_glucose", 1, {"value": 5.5, "meal": "unknown", "sample": "control_solution"}, "mmol/L")

    async def scenario() -> None:
        async with fhir_hub(tmp_path, platform.url, [blood_pressure(0), control]) as h:
            await h.settled(delivered=1, dead=1)
            [dead] = await h.outbox.db.run(records.dead_letters())
            assert (dead.record_id, dead.reason) == (
                h.ids[1], "FHIR profile: a control-solution test is not a measurement of the resident")
        assert sorted(observations_by_record(await fhir_resources(platform.url))) == [h.ids[0]]

    run(scenario())


def test_the_reference_server_validates_each_resource_with_fhir_resources(
        platform_factory: Callable[..., devstack.Platform]) -> None:
    platform = platform_factory()
    observation = {"resourceType": "Observation", "identifier": [{"system": "urn:yiyang:record", "value": "x1"}],
                   "status": "final", "code": {"text": "pulse"}, "valueQuantity": {"value": "seventy"}}
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": observation,
         "request": {"method": "POST", "url": "Observation", "ifNoneExist": "identifier=urn:yiyang:record|x1"}}]}
    body = json.dumps(bundle).encode()
    headers = {"Content-Type": "application/fhir+json",
               **HmacSha256Signer(GATEWAY_ID, SECRET.encode()).auth_headers(
                   path="/fhir", timestamp_ms=round(time.time() * 1000), body=body)}
    answer = post(platform.url + "/fhir", body, headers, 5.0)
    assert answer.status == 200
    [entry] = json.loads(answer.body)["entry"]
    assert entry["response"]["status"] == "422 Unprocessable Entity"
    [issue] = entry["response"]["outcome"]["issue"]
    assert issue["diagnostics"].startswith("Observation is not valid FHIR:")
    assert "valueQuantity.value" in issue["diagnostics"]
    assert admin(platform.url, "/admin/fhir")["resources"] == []
