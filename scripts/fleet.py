#!/usr/bin/env python3
"""The fleet operator's tool: make the fleet key pair, send signed commands, roll out configurations.

    python scripts/fleet.py keygen --out DIR            # DIR/fleet.key (private, 0600), DIR/fleet.pub
    python scripts/fleet.py cmd --broker HOST:PORT --gateway gw-0001 --key DIR/fleet.key ping
    python scripts/fleet.py cmd ... queue | doctor
    python scripts/fleet.py cmd ... test-alert --arg resident_id=r-0001
    python scripts/fleet.py cmd ... measure --arg device_id=bp-kiosk
    python scripts/fleet.py cmd ... logs [--arg lines=300]          # default 100, at most 1000
    python scripts/fleet.py cmd ... scan [--arg seconds=20]         # default 10, at most 60
    python scripts/fleet.py cmd ... resync [--arg device_id=glucose-kitchen]   # default: every meter
    python scripts/fleet.py config push --broker HOST:PORT --key DIR/fleet.key --hubs hubs.txt \
        --body change.toml --state rollout.json        # in waves; re-run to resume
    python scripts/fleet.py config status --broker HOST:PORT [--hubs hubs.txt] [--json]

The hub installs ``fleet.pub`` as ``[fleet] public_key_file``. Commands are signed as
gateway/fleet/commands.py describes, ``issued_at`` (now, with this machine's UTC offset) included:
the hub refuses a command older than ten minutes or more than two ahead of its clock, so keep this
machine's clock right. The result (``cmd/{name}/result``) is printed as JSON, and the exit status is
0 only when the hub answered ``ok``. A scan answers after its seconds: the wait for the answer
(``--timeout``, default 10 s) is that much longer for it. Configuration rollouts: scripts/fleetctl/ and
README.md, "Fleet operator"; ``config push`` exits 0 when every hub applied the document, 1 when
the rollout halted or some hub did not apply it, 2 for wrong input (nothing published).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import uuid
from datetime import datetime
from pathlib import Path

import paho.mqtt.client as paho
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_pem_private_key,
)
from paho.mqtt.enums import CallbackAPIVersion

# Run from a checkout: its own gateway package (and scripts/fleetctl), not whichever one the
# virtualenv happens to have installed.
sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parent)]

from fleetctl.cli import add_config_commands  # noqa: E402
from fleetctl.errors import FleetToolError  # noqa: E402

from gateway.fleet.signing import sign  # noqa: E402


def keygen(args: argparse.Namespace) -> int:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    private = out / "fleet.key"
    fd = os.open(private, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    (out / "fleet.pub").write_bytes(key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo))
    print(f"wrote {private} (keep it secret) and {out / 'fleet.pub'} (install on hubs)")
    return 0


def command(args: argparse.Namespace) -> int:
    key = load_pem_private_key(Path(args.key).read_bytes(), password=None)
    assert isinstance(key, Ed25519PrivateKey), "the fleet key must be Ed25519"
    cmd_args = dict(item.split("=", 1) for item in args.arg)
    request_id = args.request_id or str(uuid.uuid4())
    issued_at = datetime.now().astimezone().isoformat(timespec="seconds")
    signed = {"gateway_id": args.gateway, "command": args.name, "request_id": request_id, "issued_at": issued_at,
              "args": cmd_args}
    body = {"request_id": request_id, "issued_at": issued_at, "args": cmd_args, "signature": sign(signed, key)}
    hub = f"{args.topic_root}/{args.gateway}"
    root = f"{hub}/cmd/{args.name}"
    answer: dict[str, object] = {}
    done = threading.Event()
    sent = threading.Event()
    client = paho.Client(callback_api_version=CallbackAPIVersion.VERSION2)

    def on_connect(c: paho.Client, *_: object) -> None:
        # Results first, then the hub's retained status: a command goes out only once the hub says
        # it is online (and so subscribed), since commands are not retained.
        c.subscribe([(f"{root}/result", 1), (f"{hub}/status", 1)])

    def on_message(c: paho.Client, _u: object, msg: paho.MQTTMessage) -> None:
        if not msg.payload:
            return
        data = json.loads(msg.payload)
        if msg.topic == f"{hub}/status":
            if data.get("state") == "online" and not sent.is_set():
                sent.set()
                c.publish(root, json.dumps(body), qos=1)
        elif data.get("request_id") == request_id:
            answer.update(data)
            done.set()

    client.on_connect, client.on_message = on_connect, on_message
    host, _, port = args.broker.rpartition(":")
    client.connect(host or "127.0.0.1", int(port))
    client.loop_start()
    try:
        timeout = args.timeout + (_scan_seconds(cmd_args) if args.name == "scan" else 0.0)
        if not done.wait(timeout):
            print(f"no answer from {args.gateway} within {timeout:g} s: is it online (status topic)?",
                  file=sys.stderr)
            return 2
    finally:
        client.loop_stop()
    print(json.dumps(answer, ensure_ascii=False, indent=1))
    return 0 if answer.get("ok") else 1


def _scan_seconds(cmd_args: dict[str, str]) -> float:
    """How long the hub scans before it answers (its default when not given; the hub checks the bounds)."""
    try:
        return float(cmd_args.get("seconds", 10.0))
    except ValueError:
        return 0.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    sub = parser.add_subparsers(dest="action", required=True)
    gen = sub.add_parser("keygen", help="make the fleet's Ed25519 key pair")
    gen.add_argument("--out", required=True)
    gen.set_defaults(run=keygen)
    cmd = sub.add_parser("cmd", help="send a signed command and print the hub's answer")
    cmd.add_argument("--broker", default="127.0.0.1:1883", help="HOST:PORT")
    cmd.add_argument("--gateway", required=True)
    cmd.add_argument("--key", required=True, help="the fleet's private key (PEM)")
    cmd.add_argument("--topic-root", default="yiyang/v1")
    cmd.add_argument("--arg", action="append", default=[], help="KEY=VALUE (repeatable)")
    cmd.add_argument("--request-id", help="reuse an id (to test replay protection)")
    cmd.add_argument("--timeout", type=float, default=10.0)
    cmd.add_argument("name", help="ping | queue | doctor | logs | scan | resync | test-alert | measure")
    cmd.set_defaults(run=command)
    config = sub.add_parser("config", help="roll out signed configuration documents; see the fleet's reports")
    add_config_commands(config)
    args = parser.parse_args()
    try:
        return int(args.run(args))
    except FleetToolError as exc:
        print(f"fleet.py: {exc}", file=sys.stderr)
        return exc.exit_status
    except KeyboardInterrupt:
        if getattr(args, "state", None):
            print(f"\ninterrupted: {args.state} holds the rollout; run the same command to resume", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
