"""``fleet.py config push`` and ``fleet.py config status``: arguments in, the engine or the status
reader run, text out. Exit status: 0 every hub applied; 1 halted, failures, or the broker failed us;
2 wrong input (nothing published)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime
from functools import partial
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from fleetctl import statefile
from fleetctl.display import ProgressPrinter, summary
from fleetctl.documents import (
    check_against,
    load_body,
    load_private_key,
    public_key_text,
    signed_payload,
)
from fleetctl.engine import RolloutEngine
from fleetctl.errors import UsageError
from fleetctl.hubs import load_hubs
from fleetctl.link import BrokerAddress, connected
from fleetctl.request import RolloutRequest, request_from_state
from fleetctl.rollout import Phase, RolloutState
from fleetctl.status import collect_reports, fleet_status, render_table, status_json
from gateway.mqtt_policy import MAX_DOCUMENT_BYTES

DEFAULT_ROOT = "yiyang/v1"
DEFAULTS = {"canary": 10, "wave_percent": 10, "halt_after": 2, "timeout_s": 150.0}


def add_config_commands(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="config_action", required=True)
    push = sub.add_parser("push", help="sign a configuration document per hub and roll it out in waves",
                          description=push_config.__doc__)
    _broker_arguments(push)
    push.add_argument("--key", required=True, help="the fleet's private key (PEM, from keygen)")
    push.add_argument("--state", required=True, help="the rollout's state file: a re-run with it resumes the rollout")
    push.add_argument("--hubs", help="the hubs file: one gateway id per line, the canaries first "
                                     "(a resumed rollout takes it from --state)")
    push.add_argument("--body", help="the document's config sections: a .toml or .json file "
                                     "(a resumed rollout takes it from --state)")
    push.add_argument("--version", type=_version, help="the document's version, or auto (default): one more than "
                                                       "the highest version on the broker")
    push.add_argument("--fleet-public-key", metavar="FILE",
                      help="rotate the fleet key: the new public key (PEM or base64) goes in each document")
    push.add_argument("--canary", type=partial(_int, least=0), help="hubs in the first wave (default 10)")
    push.add_argument("--wave-percent", type=partial(_int, least=1),
                      help="each later wave: this %% of the hubs after the canaries (default 10); the last is the rest")
    push.add_argument("--halt-after", type=partial(_int, least=0),
                      help="send no further wave once this many hubs rejected or rolled back (default 2; 0 never)")
    push.add_argument("--timeout", type=_seconds, dest="timeout_s",
                      help="seconds a hub has to report before it counts as no answer (default 150: the hubs' "
                           "120 s apply grace and a margin)")
    push.add_argument("--check-against", metavar="GATEWAY_TOML",
                      help="first validate the body laid over this hub configuration, as a hub would")
    push.add_argument("--dry-run", action="store_true",
                      help="show the version, the waves and the documents' sizes; publish and write nothing")
    push.set_defaults(run=push_config)

    status = sub.add_parser("status", help="the hubs' last configuration reports as a table",
                            description=show_status.__doc__)
    _broker_arguments(status)
    status.add_argument("--hubs", help="only these hubs (one gateway id per line); stops once all have answered")
    status.add_argument("--listen", type=_seconds, default=3.0, dest="listen_s",
                        help="seconds to take in reports (default 3)")
    status.add_argument("--json", action="store_true", help="JSON for tools instead of the table")
    status.set_defaults(run=show_status)


def push_config(args: argparse.Namespace) -> int:
    """Sign the document for each hub and publish it retained on its config/desired, wave by wave:
    the canaries, then --wave-percent of the rest per wave, each wave only once every hub of the
    previous ones has reported (or timed out); halt after --halt-after rejections or rollbacks.
    Progress and the state file are updated as reports come; re-run the same command to resume."""
    key = load_private_key(Path(args.key))
    state_path = Path(args.state)
    saved = statefile.load(state_path)
    request = _request(args, saved)
    if args.check_against:
        check_against(request.config, Path(args.check_against))
    printer = ProgressPrinter(sys.stdout, timeout_s=request.timeout_s)
    with connected(_broker(args)) as link:
        save = None if args.dry_run else partial(statefile.save, state_path)
        engine = RolloutEngine(link, key, save=save, progress=printer)
        state = engine.prepare(request, saved)
        if args.dry_run:
            print("\n".join(plan_lines(state, key)))
            return 0
        verb = "resuming" if saved is not None else "starting"
        print(f"{verb} the rollout of version {state.document.version} to {len(state.hubs)} hubs "
              f"in {len(state.plan.waves)} waves (state: {state_path}; Ctrl-C is safe, re-run to resume)")
        result = engine.run(state)
    print("\n".join(summary(result)))
    return 0 if result.ok else 1


def show_status(args: argparse.Namespace) -> int:
    """Subscribe to every hub's retained config/reported and print one row per hub: the version it
    runs, its last report's status and version, how long ago it applied, and the first error."""
    hubs = load_hubs(Path(args.hubs)) if args.hubs else None
    root = args.topic_root or DEFAULT_ROOT
    with connected(_broker(args)) as link:
        messages = collect_reports(link, root, time.monotonic, args.listen_s, hubs)
    statuses = fleet_status(messages, root, hubs)
    now = datetime.now().astimezone()
    if args.json:
        print(json.dumps(status_json(statuses, now), ensure_ascii=False, indent=1))
    else:
        print(render_table(statuses, now))
    return 0


def plan_lines(state: RolloutState, key: Ed25519PrivateKey) -> list[str]:
    """The --dry-run view: what would be sent to whom, and how big each document is."""
    sizes = [len(signed_payload(state.document, hub, key)) for hub in state.plan.hubs]
    lines = [
        f"version {state.document.version}, issued {state.document.issued_at}, signed by {state.signer}",
        f"config sections: {', '.join(sorted(state.document.config))}"
        + (", and a new fleet_public_key" if state.document.fleet_public_key else ""),
        f"signed documents: {min(sizes)} to {max(sizes)} bytes each (hubs accept up to {MAX_DOCUMENT_BYTES}), "
        f"{sum(sizes)} in all",
        f"waves: canary {state.plan.canary}, then {state.plan.wave_percent} % of the rest each; "
        f"halt after {state.policy.halt_after or 'never'}; {state.policy.timeout_s:.0f} s per hub to answer",
    ]
    for index, wave in enumerate(state.plan.waves):
        done = sum(state.hubs[hub].phase is not Phase.NOT_SENT for hub in wave)
        where = f"  [sent to {done}]" if done else ""
        ends = wave[0] if len(wave) == 1 else f"{wave[0]} .. {wave[-1]}"
        lines.append(f"  wave {index + 1}: {len(wave)} hubs ({ends}){where}")
    lines.append("nothing published, no state written (--dry-run)")
    return lines


def _request(args: argparse.Namespace, saved: RolloutState | None) -> RolloutRequest:
    hubs = load_hubs(Path(args.hubs)) if args.hubs else None
    config = load_body(Path(args.body)) if args.body else None
    fleet_key = public_key_text(Path(args.fleet_public_key)) if args.fleet_public_key else None
    given = {"canary": args.canary, "wave_percent": args.wave_percent, "halt_after": args.halt_after,
             "timeout_s": args.timeout_s}
    if saved is not None:
        return request_from_state(saved, hubs=hubs, config=config, version=args.version, fleet_public_key=fleet_key,
                                  topic_root=args.topic_root, **given)
    if config is None and fleet_key is not None:
        config = {}  # a key rotation alone changes no section
    if hubs is None or config is None:
        raise UsageError(f"{args.state} does not exist yet: a new rollout needs --hubs and --body")
    def chosen(name: str) -> float:
        return DEFAULTS[name] if given[name] is None else float(given[name])

    return RolloutRequest(hubs=hubs, config=config, version=args.version, fleet_public_key=fleet_key,
                          topic_root=args.topic_root or DEFAULT_ROOT, canary=int(chosen("canary")),
                          wave_percent=int(chosen("wave_percent")), halt_after=int(chosen("halt_after")),
                          timeout_s=chosen("timeout_s"))


def _broker_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--broker", default="127.0.0.1:1883", help="HOST:PORT of the fleet's broker")
    parser.add_argument("--username", help="the fleet's broker account (the hubs' [mqtt] fleet_username)")
    parser.add_argument("--password-file", help="a file holding that account's password")
    parser.add_argument("--tls", action="store_true", help="connect with TLS")
    parser.add_argument("--ca-file", help="CA certificate for TLS (default: the system's)")
    parser.add_argument("--topic-root", help=f"topic prefix before the gateway id (default {DEFAULT_ROOT})")


def _broker(args: argparse.Namespace) -> BrokerAddress:
    password = None
    if args.password_file:
        try:
            password = Path(args.password_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise UsageError(f"{args.password_file}: cannot read the password ({exc.strerror})") from exc
    return BrokerAddress.parse(args.broker, username=args.username, password=password, tls=args.tls,
                               ca_file=Path(args.ca_file) if args.ca_file else None)


def _version(text: str) -> int | None:
    if text == "auto":
        return None
    return _int(text, least=1)


def _int(text: str, least: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < least:
        raise argparse.ArgumentTypeError(f"{value} is below {least}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 < value < 86400:
        raise argparse.ArgumentTypeError(f"{value} s: give more than 0 and less than a day")
    return value
