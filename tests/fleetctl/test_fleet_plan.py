"""Wave planning and the hubs file (scripts/fleetctl/plan.py, hubs.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from fleetctl.errors import UsageError
from fleetctl.hubs import load_hubs, parse_hubs
from fleetctl.plan import WavePlan, plan_waves


def ids(count: int) -> list[str]:
    return [f"gw-{n:04d}" for n in range(1, count + 1)]


def test_a_thousand_hubs_canary_ten_then_ten_percent_waves() -> None:
    plan = plan_waves(ids(1000), canary=10, wave_percent=10)
    assert [len(wave) for wave in plan.waves] == [10] + [99] * 10
    assert plan.hubs == tuple(ids(1000))  # every hub once, in the file's order
    assert plan.waves[0] == tuple(ids(10))


def test_the_last_wave_is_the_rest() -> None:
    plan = plan_waves(ids(35), canary=5, wave_percent=25)  # 30 left: waves of ceil(7.5) = 8
    assert [len(wave) for wave in plan.waves] == [5, 8, 8, 8, 6]


def test_no_canary_all_at_once_and_fewer_hubs_than_canaries() -> None:
    assert plan_waves(ids(4), canary=0, wave_percent=50) == WavePlan(
        canary=0, wave_percent=50, waves=(("gw-0001", "gw-0002"), ("gw-0003", "gw-0004")))
    assert [len(w) for w in plan_waves(ids(30), canary=10, wave_percent=100).waves] == [10, 20]
    small = plan_waves(ids(3), canary=10, wave_percent=10)
    assert small.waves == (tuple(ids(3)),)
    assert small.canary == 3


def test_a_tiny_percent_still_moves_one_hub_per_wave() -> None:
    assert [len(w) for w in plan_waves(ids(13), canary=10, wave_percent=1).waves] == [10, 1, 1, 1]


@pytest.mark.parametrize(("canary", "percent", "message"), [(-1, 10, "--canary"), (1, 0, "--wave-percent"),
                                                           (1, 101, "--wave-percent")])
def test_options_out_of_range_are_refused(canary: int, percent: int, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        plan_waves(ids(5), canary, percent)


def test_hubs_file_ids_comments_and_blank_lines() -> None:
    text = "# canaries: the lab's own hubs\ngw-0001\n  gw-0002   # test bench\n\ngw-0100\n"
    assert parse_hubs(text, "hubs.txt") == ("gw-0001", "gw-0002", "gw-0100")


def test_hubs_file_every_bad_line_named() -> None:
    with pytest.raises(UsageError) as caught:
        parse_hubs("gw-0001\nGW_0002\ngw-0001\n-gw\n", "hubs.txt")
    message = str(caught.value)
    assert "hubs.txt:2: 'GW_0002' is not a gateway id" in message
    assert "hubs.txt:3: gw-0001 is listed already on line 1" in message
    assert "hubs.txt:4:" in message


def test_hubs_file_empty_missing_or_binary(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no gateway ids"):
        parse_hubs("# nothing yet\n", "hubs.txt")
    with pytest.raises(UsageError, match="cannot read the hubs file"):
        load_hubs(tmp_path / "absent.txt")
    binary = tmp_path / "hubs.bin"
    binary.write_bytes(b"gw-0001\n\xff\xfe")
    with pytest.raises(UsageError, match="not UTF-8"):
        load_hubs(binary)
