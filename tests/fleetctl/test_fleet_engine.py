"""The rollout engine (scripts/fleetctl/engine.py) against a broker in memory and a clock the test moves.

The hubs are scripts (tests/support/fleet_fakes.py): what each reports, and after how long. Waiting
moves the fake clock, so timeouts of minutes take no time and every time asserted is exact.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fleet_fakes import Answer, FakeClock, FakeLink, report
from fleetctl.documents import signed_payload
from fleetctl.engine import RESYNC_AFTER_S, Listening, Progress, RolloutEngine, RolloutResult
from fleetctl.errors import LinkError, UsageError
from fleetctl.request import RolloutRequest
from fleetctl.rollout import Phase, RolloutState

from gateway.fleet.signing import verify

HUBS = tuple(f"gw-{n:04d}" for n in range(1, 21))
KEY = Ed25519PrivateKey.generate()
BAD = ({"path": "config.mqtt.keepalive_s", "message": "must be at most 600"},)
ROOT = "yiyang/v1"


def request(**changes: Any) -> RolloutRequest:
    fields: dict[str, Any] = {"hubs": HUBS, "config": {"mqtt": {"keepalive_s": 60}}, "canary": 2,
                              "wave_percent": 25, "halt_after": 2, "timeout_s": 150.0}  # waves: 2, 5, 5, 5, 3
    return RolloutRequest(**{**fields, **changes})


class Run:
    """One engine on a fake broker, with what it saved and told the operator."""

    def __init__(self, link: FakeLink, key: Ed25519PrivateKey = KEY) -> None:
        self.link = link
        self.saved: list[RolloutState] = []
        self.progress: list[Progress] = []
        self.engine = RolloutEngine(link, key, clock=link.clock, save=self.saved.append,
                                    progress=self.progress.append, listening=Listening(quiet_s=0.5, max_s=5))

    def __call__(self, req: RolloutRequest, saved: RolloutState | None = None) -> RolloutResult:
        return self.engine.run(self.engine.prepare(req, saved))


def fleet(script: Any = None) -> FakeLink:
    return FakeLink(FakeClock(), script)


def test_waves_go_out_in_order_each_after_the_last_one_answered() -> None:
    link = fleet(lambda hub, doc: Answer("applied", after_s=int(hub[-2:]) * 0.1))
    result = Run(link)(request())
    assert result.ok
    assert link.published_hubs() == [list(HUBS[:2]), list(HUBS[2:7]), list(HUBS[7:12]), list(HUBS[12:17]),
                                     list(HUBS[17:])]
    # Each wave leaves the moment its slowest hub answers: gw-0002 at +0.2 s, gw-0007 at +0.7 s after that...
    times = [at for at, _ in link.publishes]
    assert [round(b - a, 3) for a, b in itertools.pairwise(times)] == [0.2, 0.7, 1.2, 1.7]


def test_every_document_is_signed_for_its_hub_and_published_retained() -> None:
    link = fleet()
    result = Run(link)(request())
    for hub in HUBS:
        document = json.loads(link.retained[f"{ROOT}/{hub}/config/desired"])
        verify(document, KEY.public_key())
        assert (document["gateway_id"], document["version"]) == (hub, result.state.document.version)
        assert document["config"] == {"mqtt": {"keepalive_s": 60}}


def test_halt_after_k_failures_leaves_the_later_waves_unpublished() -> None:
    failing = {"gw-0004": "rejected", "gw-0006": "rolled_back"}
    link = fleet(lambda hub, doc: Answer(failing.get(hub, "applied"), errors=BAD if hub in failing else ()))
    result = Run(link)(request())
    assert result.halted
    assert not result.ok
    assert link.published_hubs() == [list(HUBS[:2]), list(HUBS[2:7])]
    assert not any(f"/{hub}/" in topic for hub in HUBS[7:] for topic in link.retained if topic.endswith("desired"))
    assert [(hub, record.phase) for hub, record in result.failures()] == [
        ("gw-0004", Phase.REJECTED), ("gw-0006", Phase.ROLLED_BACK)]
    assert result.failures()[0][1].errors[0].path == "config.mqtt.keepalive_s"
    assert result.counts.not_sent == 13


def test_the_wave_out_is_still_awaited_after_the_halt_is_decided() -> None:
    slow = {"gw-0003": Answer("rejected", 1), "gw-0004": Answer("rejected", 1), "gw-0005": Answer("applied", 100)}
    link = fleet(lambda hub, doc: slow.get(hub, Answer()))
    run = Run(link)
    result = run(request())
    assert result.state.hubs["gw-0005"].phase is Phase.APPLIED
    assert any(p.halting and p.counts.waiting == 1 for p in run.progress)  # the operator saw it decided
    assert run.progress[-1].done


def test_a_hub_that_never_answers_is_no_answer_after_its_timeout_and_does_not_halt() -> None:
    link = fleet(lambda hub, doc: None if hub in ("gw-0001", "gw-0005") else Answer())
    result = Run(link)(request(timeout_s=150))
    assert [hub for hub, record in result.failures()] == ["gw-0001", "gw-0005"]
    assert not result.halted
    assert result.counts.applied == 18
    times = [at for at, _ in link.publishes]
    assert times[1] - times[0] == 150.0  # the second wave waited exactly the timeout for gw-0001


def test_a_report_the_broker_dropped_is_read_again_from_its_retained_copy() -> None:
    link = fleet(lambda hub, doc: Answer("applied", after_s=1, delivered=hub != "gw-0002"))
    result = Run(link)(request())
    assert result.ok
    times = [at for at, _ in link.publishes]
    # gw-0001 answered after 1 s; nothing came for RESYNC_AFTER_S after that: read again, not the 150 s timeout.
    assert times[1] - times[0] == 1 + RESYNC_AFTER_S
    assert link.subscribe_calls.count(f"{ROOT}/+/config/reported") == 2


def test_an_unreadable_report_is_said_once_and_the_hub_awaited() -> None:
    link = fleet(lambda hub, doc: None if hub == "gw-0001" else Answer())
    run = Run(link)
    link.hub_reports("gw-0001", b"[[[not json", after_s=6)
    link.hub_reports("gw-0001", b"[[[not json", after_s=7)
    result = run(request(halt_after=0))
    notes = [note for p in run.progress for note in p.notes]
    assert len(notes) == 1
    assert notes[0].startswith("gw-0001: unreadable report")
    assert result.state.hubs["gw-0001"].phase is Phase.NO_ANSWER


def test_the_state_is_saved_before_each_publish_and_after_each_change() -> None:
    link = fleet()
    run = Run(link)
    run(request())
    assert run.saved[0].waves_sent == 0  # the rollout is on disk before anything is published
    # Marked sent (saved), published, confirmed (saved): a stop in between is caught on resume.
    assert [(s.waves_sent, s.waves_confirmed) for s in run.saved if s.waves_sent == 1][:2] == [(1, 0), (1, 1)]
    assert run.saved[-1].hubs["gw-0020"].phase is Phase.APPLIED


def test_a_resumed_rollout_publishes_again_only_the_wave_that_was_being_published() -> None:
    link = fleet()
    link.fail_publish_at = 1  # the broker goes away while the second wave is published
    first = Run(link)
    with pytest.raises(LinkError):
        first(request())
    saved = first.saved[-1]
    assert (saved.waves_sent, saved.waves_confirmed) == (2, 1)

    second = Run(link)
    result = second(request(), saved)
    assert result.ok
    resent = link.publishes[2][1]
    assert [topic.split("/")[2] for topic, _ in resent] == list(HUBS[2:7])
    # The same bytes the failed attempt would have sent: the same document, never another one.
    assert [payload for _, payload in resent] == [signed_payload(saved.document, hub, KEY) for hub in HUBS[2:7]]
    sent_to = [hub for hubs in link.published_hubs() for hub in hubs]
    assert sorted(sent_to) == sorted(HUBS)  # the failed attempt got nothing out; the canaries were not sent again


class Interrupted(Exception):
    pass


def test_a_resumed_rollout_takes_the_reports_that_came_while_no_tool_was_watching() -> None:
    # The second wave's hubs answer only after 1,000 s; the operator stops the tool once it is sent.
    link = fleet(lambda hub, doc: Answer("applied", after_s=1000 if hub in HUBS[2:7] else 1))
    first = Run(link)

    def stop_after_the_second_wave(progress: Progress) -> None:
        first.progress.append(progress)
        if progress.waves_sent == 2 and progress.sent:
            raise Interrupted

    first.engine._progress = stop_after_the_second_wave
    with pytest.raises(Interrupted):
        first(request())
    link.clock.advance(3600)  # long past the timeout: the reports are retained on the broker
    result = Run(link)(request(), first.saved[-1])
    assert result.ok  # taken from the retained reports before any timeout was applied
    assert sorted(hub for hubs in link.published_hubs() for hub in hubs) == sorted(HUBS)  # each hub once


def test_raising_halt_after_goes_on_past_a_halt() -> None:
    failing = {"gw-0004", "gw-0006"}
    link = fleet(lambda hub, doc: Answer("rejected" if hub in failing else "applied", errors=BAD))
    first = Run(link)
    halted = first(request())
    assert halted.halted
    again = Run(link)(request(), first.saved[-1])  # same halt_after: still halted, nothing sent
    assert again.halted
    assert len(link.publishes) == 2
    resumed = Run(link)(request(halt_after=5), first.saved[-1])
    assert not resumed.halted
    assert resumed.counts.applied == 18
    assert [len(hubs) for hubs in link.published_hubs()] == [2, 5, 5, 5, 3]


@pytest.mark.parametrize(("change", "why"), [
    ({"config": {"mqtt": {"keepalive_s": 90}}}, "document body differs"),
    ({"version": 99}, "rolls out version 1, not 99"),
    ({"hubs": (*HUBS[1:], HUBS[0])}, "hubs .or their order. differ"),
    ({"canary": 3}, "--canary 2 --wave-percent 25"),
    ({"fleet_public_key": "a2V5"}, "fleet_public_key differs"),
])
def test_a_state_file_of_another_rollout_is_refused(change: dict[str, Any], why: str) -> None:
    link = fleet()
    first = Run(link)
    first(request())
    with pytest.raises(UsageError, match=why):
        Run(link)(request(**change), first.saved[-1])


def test_a_state_file_signed_with_another_key_is_refused() -> None:
    link = fleet()
    first = Run(link)
    first(request())
    with pytest.raises(UsageError, match="signed with another key"):
        Run(link, Ed25519PrivateKey.generate())(request(), first.saved[-1])


def test_auto_version_is_one_above_the_highest_the_broker_shows() -> None:
    link = fleet()
    link.retained[f"{ROOT}/gw-0003/config/desired"] = json.dumps({"version": 12, "gateway_id": "gw-0003"}).encode()
    link.retained[f"{ROOT}/gw-7777/config/reported"] = report(17)  # another region's hub: versions are fleet-wide
    link.retained[f"{ROOT}/gw-0004/config/reported"] = b"garbage"
    result = Run(link)(request())
    assert result.state.document.version == 18


def test_an_explicit_version_a_hub_has_seen_is_refused_before_anything_is_sent() -> None:
    link = fleet()
    link.retained[f"{ROOT}/gw-0003/config/reported"] = report(4, "rejected", applied_version=3)
    with pytest.raises(UsageError, match=r"--version 4 is not new for gw-0003 \(4\)"):
        Run(link)(request(version=4))
    assert link.publishes == []
    assert Run(link)(request(version=5)).state.document.version == 5


def test_progress_names_each_wave_sent_and_each_hub_answered() -> None:
    link = fleet(lambda hub, doc: Answer("rejected" if hub == "gw-0003" else "applied", errors=BAD))
    run = Run(link)
    run(request(halt_after=0))
    sent = [p.sent for p in run.progress if p.sent]
    assert [len(hubs) for hubs in sent] == [2, 5, 5, 5, 3]
    answered = [hub for p in run.progress for hub, _ in p.answered]
    assert sorted(answered) == sorted(HUBS)
    last = run.progress[-1]
    assert (last.done, last.counts.applied, last.counts.rejected, last.waves_sent) == (True, 19, 1, 5)
