"""A configuration rollout to a thousand simulated hubs through the fleet tool, timed.

    python bench/fleet_rollout.py [--hubs 1000] [--canary 10] [--wave-percent 10] [--per-client 50] [--reject N]

Starts a private Mosquitto (scripts/devstack.py) and ``--hubs`` simulated hubs in this process
(tests/support/fleet_hubs.py: each verifies its document's signature and reports on
config/reported), then calls the rollout engine in-process (``fleetctl.engine.push_config``, the
same code as ``fleet.py config push``) with a state file, and prints: the time to sign every
document, the rollout's total time, each wave's size and how long it took from publish to its last
report, and the state file's size. ``--per-client`` is how many simulated hubs share one MQTT
connection (1: one each, as real hubs). ``--reject N`` makes the last N hubs reject (the rollout
then runs with --halt-after 0 so it still goes through every wave). Everything runs on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "scripts"), str(REPO / "tests" / "support")]
import devstack  # noqa: E402
from fleet_hubs import SimulatedFleet, hub_ids  # noqa: E402
from fleetctl.documents import DocumentSpec, signed_payload  # noqa: E402
from fleetctl.engine import Progress, push_config  # noqa: E402
from fleetctl.link import BrokerAddress  # noqa: E402
from fleetctl.request import RolloutRequest  # noqa: E402

BODY = {"alerts": {"repeat_emergency_s": 90.0}, "mqtt": {"keepalive_s": 45}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--hubs", type=int, default=1000)
    parser.add_argument("--canary", type=int, default=10)
    parser.add_argument("--wave-percent", type=int, default=10)
    parser.add_argument("--per-client", type=int, default=50)
    parser.add_argument("--reject", type=int, default=0)
    args = parser.parse_args()

    key = Ed25519PrivateKey.generate()
    ids = hub_ids(args.hubs)
    spec = DocumentSpec(version=1, issued_at="2027-01-15T08:00:00+08:00", config=BODY)
    started = time.perf_counter()
    for hub in ids:
        signed_payload(spec, hub, key)
    signing_s = time.perf_counter() - started
    print(f"signing {len(ids)} documents: {signing_s * 1000:.0f} ms ({signing_s / len(ids) * 1e6:.0f} us each)")

    waves: list[tuple[int, float, float]] = []  # (hubs, sent at, last answer at)

    def progress(p: Progress) -> None:
        if p.sent:
            waves.append((len(p.sent), p.elapsed_s, p.elapsed_s))
        elif p.answered and waves:
            size, sent_at, _ = waves[-1]
            waves[-1] = (size, sent_at, p.elapsed_s)

    outcomes = dict.fromkeys(ids[len(ids) - args.reject :], "rejected") if args.reject else {}
    with tempfile.TemporaryDirectory(prefix="fleet-bench-") as tmp, \
            devstack.mosquitto(Path(tmp) / "broker") as broker:
        set_up = time.perf_counter()
        with SimulatedFleet(broker.host, broker.port, key.public_key(), ids, outcomes,
                            per_client=args.per_client):
            print(f"{len(ids)} simulated hubs subscribed in {time.perf_counter() - set_up:.2f} s")
            request = RolloutRequest(hubs=tuple(ids), config=BODY, canary=args.canary,
                                     wave_percent=args.wave_percent, halt_after=0 if args.reject else 2)
            state = Path(tmp) / "rollout.json"
            started = time.perf_counter()
            result = push_config(BrokerAddress(broker.host, broker.port), key, request, state_path=state,
                                 progress=progress)
            total_s = time.perf_counter() - started
            state_kib = state.stat().st_size / 1024
    for index, (size, sent_at, answered_at) in enumerate(waves, start=1):
        print(f"  wave {index:2d}: {size:4d} hubs, sent at {sent_at:6.2f} s, "
              f"all answered {answered_at - sent_at:5.2f} s later")
    counts = result.counts
    print(f"rollout: {total_s:.2f} s for {len(ids)} hubs in {len(waves)} waves "
          f"(applied {counts.applied}, rejected {counts.rejected}, no answer {counts.no_answer}); "
          f"state file {state_kib:.0f} KiB")
    return 0 if counts.applied == len(ids) - args.reject else 1


if __name__ == "__main__":
    raise SystemExit(main())
