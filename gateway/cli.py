"""``yiyang``: the technician's command line.

Every command says plainly what is wrong and what to do, and exits non-zero
when something needs attention, so it also serves scripts and the fleet's
``doctor`` command.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import logging
import os
import runpy
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType

from drivers.catalogue import Transport, names
from gateway import __version__, family_cli
from gateway.broker_accounts import DEFAULT_ACL_FILE, DEFAULT_PASSWORD_FILE, parse_reload
from gateway.broker_acl import acl_for_config
from gateway.clock import kernel_clock_synced
from gateway.config import GatewayConfig, parse_config, read_config_text
from gateway.config.access import ServiceUser, UnknownUserError
from gateway.config.initial import HubIdentity, new_config, updated_config
from gateway.config.preflight import check_host
from gateway.daemon import outbox_path, run_until_signalled, status_path
from gateway.doctor import hub_report, status_problems
from gateway.doctor.unit import read_char_devices, service_user
from gateway.errors import ConfigError, GatewayError
from gateway.fleet.effective import check_effective, effective_source, read_local, start_from
from gateway.fleet.report import effective_view
from gateway.fleet.state import describe_fleet
from gateway.logs import setup_logging
from gateway.status import read_status, runtime_status_path
from gateway.store import DatabaseFile, records

log = logging.getLogger(__name__)

DEFAULT_CONFIG = "/etc/yiyang/gateway.toml"
EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE = 0, 1, 2


def _load(path: str) -> GatewayConfig:
    return _load_with_text(path)[0]


def _load_with_text(path: str) -> tuple[GatewayConfig, str]:
    text = read_config_text(path)
    return parse_config(text, path), text


def cmd_run(args: argparse.Namespace) -> int:

    local, text = read_local(args.config)
    ring = setup_logging(args.log_level or local.config.gateway.log_level)
    # The effective configuration: the local file with what the fleet applied, a trial the hub
    # restarted in rolled back (gateway.fleet.effective). Its logs go out in the local file's level.
    cfg, fleet = start_from(local)
    if not args.log_level and cfg.gateway.log_level != local.config.gateway.log_level:
        ring = setup_logging(cfg.gateway.log_level)
    source = effective_source(args.config, fleet)
    # The same checks as `config check`, as the user the daemon runs as: a missing or open secret or
    # a bad key stops it here with its key and line, not with a traceback from whichever part opens
    # the file first. An unusable data_dir does not: the daemon alerts without its disk.
    host = check_host(cfg, source, text if not fleet.overlay else None, ServiceUser.current())
    if host.file_problems:
        raise ConfigError(args.config, list(host.file_problems))
    for problem in host.storage_problems:
        log.error("starting without usable storage: %s", problem)
    for warning in host.warnings:
        log.warning("%s", warning)
    asyncio.run(run_until_signalled(cfg, local, ring))
    return EXIT_OK


def cmd_config_check(args: argparse.Namespace) -> int:

    try:
        user = ServiceUser.named(args.user) if args.user else ServiceUser.current()
    except UnknownUserError as exc:
        print(f"yiyang: {exc}", file=sys.stderr)
        return EXIT_USAGE
    warnings: list[str] = []
    notes: tuple[str, ...] = ()
    cfg: GatewayConfig | None = None
    try:
        local, text = read_local(args.file)
        # What `run` would start with: the file and what the fleet applied (gateway.fleet.effective).
        effective = check_effective(local, args.file, user)
        cfg, notes = effective.config, effective.notes
    except ConfigError as exc:
        problems = list(exc.problems)
    else:
        host = check_host(cfg, effective.source, None if effective.from_fleet else text, user)
        problems = [*effective.problems, *host.problems]
        warnings = [*effective.warnings, *host.warnings]
    if args.effective and not problems and cfg is not None:
        # stdout is the JSON alone, for a pipe; what a technician reads goes to stderr.
        print(json.dumps(effective_view(cfg), ensure_ascii=False, indent=1))
        for line in (*notes, *(f"warning: {warning}" for warning in warnings)):
            print(line, file=sys.stderr)
        return EXIT_OK
    if problems:
        print(f"{args.file}: {len(problems)} problem(s):")
        for problem in problems:
            print(f"  {problem}")
    else:
        print(f"{args.file}: OK")
    for note in notes:
        print(note)
    for warning in warnings:
        print(f"warning: {warning}")
    return EXIT_PROBLEMS if problems else EXIT_OK


def cmd_config_init(args: argparse.Namespace) -> int:
    """A new hub's configuration (or ``--update FILE`` with the installer's keys set), on stdout."""
    hub = HubIdentity(
        gateway_id=args.hub_id, platform_url=args.platform_url, residents=tuple(args.resident or ()),
        data_dir=Path(args.data_dir), secret_file=Path(args.secret_file), broker_user=args.broker_user,
        broker_password_file=Path(args.broker_password_file) if args.broker_password_file else None,
        fleet_key_file=Path(args.fleet_key_file) if args.fleet_key_file else None)
    sys.stdout.write(updated_config(read_config_text(args.update), hub, args.update) if args.update
                     else new_config(hub))
    return EXIT_OK


def cmd_queue(args: argparse.Namespace) -> int:

    cfg = _load(args.config)
    path = outbox_path(cfg)
    if not path.exists():
        print(f"no outbox yet at {path}: the gateway has not run with this configuration")
        return EXIT_PROBLEMS
    with DatabaseFile.open(path) as db:
        if args.requeue_dead:
            print(f"requeued {db.run(records.requeue_dead())} dead-letter record(s) for upload")
        stats = db.stats()
        dead = db.run(records.dead_letters(limit=args.dead)) if args.dead else []
    oldest = stats.oldest_pending_at
    age = _age(oldest) if oldest else "-"
    if args.json:
        print(json.dumps({"pending": stats.pending, "delivered": stats.delivered, "dead": stats.dead,
                          "pending_alerts": stats.pending_alerts, "oldest_pending_age": age,
                          "db_bytes": stats.db_bytes, "budget_bytes": stats.budget_bytes,
                          "budget_state": stats.budget_state.value}))
    else:
        print(f"pending    {stats.pending}  (alerts {stats.pending_alerts})")
        print(f"delivered  {stats.delivered}")
        print(f"dead       {stats.dead}")
        print(f"oldest pending age  {age}")
        print(f"storage    {stats.db_bytes / 2**20:.1f} MiB of {stats.budget_bytes / 2**20:.0f} MiB "
              f"({stats.budget_state.value})")
        for letter in dead:
            print(f"  dead {letter.record_id} {letter.type} at {letter.dead_at.isoformat()}: {letter.reason}")
    if stats.dead:
        print(f"{stats.dead} record(s) were rejected by the platform: see `yiyang queue --dead 20`, fix the cause, "
              "then `yiyang queue --requeue-dead`", file=sys.stderr)
    return EXIT_PROBLEMS if stats.dead or stats.budget_state.value in ("pruning", "full") else EXIT_OK


def _age(ts: datetime) -> str:
    seconds = max(0, int((datetime.now(UTC) - ts).total_seconds()))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m{s:02d}s"


def cmd_status(args: argparse.Namespace) -> int:

    cfg = _load(args.config)
    path = status_path(cfg)
    status = read_status([path, runtime_status_path(cfg.gateway.id, cfg.gateway.data_dir)])
    if status is None:
        print(f"gateway {cfg.gateway.id}: NOT RUNNING (no status file at {path}); start it with "
              "`systemctl start yiyang` and read `journalctl -u yiyang`")
        return EXIT_PROBLEMS
    if args.json:
        print(json.dumps(status, ensure_ascii=False, indent=1))
    problems = status_problems(status, datetime.now(UTC))
    if not args.json:
        print(render_status(status))
        for problem in problems:
            print(f"PROBLEM: {problem}")
    return EXIT_PROBLEMS if problems else EXIT_OK


def render_status(status: dict[str, object]) -> str:
    queue = status.get("queue", {})
    assert isinstance(queue, dict)
    lines = [
        f"gateway {status.get('gateway_id')} version {status.get('version')} state {status.get('state')}",
        f"  started {status.get('started_at')}  updated {status.get('updated_at')}",
        f"  clock synced {status.get('clock_synced')}  mqtt connected {status.get('mqtt_connected')}",
        f"  queue pending {queue.get('pending')} dead {queue.get('dead')} delivered {queue.get('delivered')} "
        f"storage {queue.get('budget_state')}",
        *_uplink_lines(status.get("uplink", {})),
    ]
    fleet = status.get("fleet")
    if isinstance(fleet, dict):  # gateway.fleet.state.status_fields, from the daemon's status payload
        lines.append(f"  {describe_fleet(fleet)}")
    lines.append("  devices:")
    devices = status.get("devices", {})
    assert isinstance(devices, dict)
    for device_id, health in sorted(devices.items()):
        seen = health.get("last_seen") or "never"
        lines.append(f"    {device_id:<24} {health.get('driver', ''):<16} last seen {seen}"
                     f"  readings {health.get('readings_accepted', 0)}")
    return "\n".join(lines)


def cmd_doctor(args: argparse.Namespace) -> int:
    """Every check of the hub, each a verdict and, when it fails, the command that fixes it."""
    try:
        user = service_user(args.user)
    except UnknownUserError as exc:
        print(f"yiyang: {exc}", file=sys.stderr)
        return EXIT_USAGE
    local, _text = read_local(args.config)
    # What the daemon runs: the file with what the fleet applied (read, never changed, here).
    cfg = check_effective(local, args.config, user).config
    path = status_path(cfg)
    status = read_status([path, runtime_status_path(cfg.gateway.id, cfg.gateway.data_dir)])
    report = asyncio.run(hub_report(cfg, user=user, status=status, status_file=path, now=datetime.now(UTC),
                                    kernel_synced=kernel_clock_synced, char_devices=read_char_devices(),
                                    timeout_s=args.timeout))
    if args.json:
        print(json.dumps(report.as_json(), ensure_ascii=False, indent=1))
    else:
        print(f"hub {cfg.gateway.id} ({args.config}), judged as user {user.name}")
        for line in report.lines():
            print(line)
    return EXIT_OK if report.ok else EXIT_PROBLEMS


def cmd_broker_acl(args: argparse.Namespace) -> int:
    """The broker's access rules for this hub, its fleet and its family accounts, on stdout."""
    sys.stdout.write(acl_for_config(_load(args.config)))
    return EXIT_OK


def _broker_files(args: argparse.Namespace) -> family_cli.BrokerFiles:
    return family_cli.BrokerFiles(Path(args.password_file), Path(args.acl_file), parse_reload(args.reload))


def cmd_family_add(args: argparse.Namespace) -> int:
    password = None
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    change = family_cli.ContactChange(residents=tuple(args.resident) if args.resident else None, tier=args.tier,
                                      min_severity=args.min_severity, phone=args.phone, language=args.language)
    family_cli.add(Path(args.config), args.id, change, _broker_files(args), sys.stdout, password=password,
                   keep_password=args.keep_password)
    return EXIT_OK


def cmd_family_remove(args: argparse.Namespace) -> int:
    family_cli.remove(Path(args.config), args.id, _broker_files(args), sys.stdout)
    return EXIT_OK


def cmd_family_list(args: argparse.Namespace) -> int:
    return family_cli.list_contacts(Path(args.config), _broker_files(args), sys.stdout)


def cmd_report(args: argparse.Namespace) -> int:
    from gateway.report import make_report  # noqa: PLC0415  (matplotlib is loaded for this command only)

    cfg = _load(args.config)
    out = Path(args.out)
    data = make_report(cfg, outbox_path(cfg), args.resident, args.days, out, now=datetime.now(UTC))
    missed = "no schedule" if data.missed is None else str(data.missed)
    print(f"{out}: resident {args.resident}, {data.days} days: {len(data.blood_pressure)} blood pressure and "
          f"{len(data.glucose)} glucose readings, {len(data.alerts)} alerts, missed measurements {missed}"
          + ("" if data.has_readings else " (no readings: the picture says so)"))
    return EXIT_OK


def _uplink_lines(uplink: object) -> list[str]:
    if not isinstance(uplink, dict) or not uplink.get("enabled"):
        return ["  uplink disabled"]
    line = (f"  uplink last success {uplink.get('last_success_at') or 'never'}  failed rounds "
            f"{uplink.get('consecutive_failures', 0)}  batch <= {uplink.get('batch_max_records')} records "
            f"/ {uplink.get('batch_max_bytes')} bytes")
    if uplink.get("throttled"):
        line += "  throttled while errors last"
    if uplink.get("next_attempt_at"):
        line += f"  next try {uplink['next_attempt_at']}"
    if uplink.get("delivered_unmarked"):
        line += f"  ({uplink['delivered_unmarked']} of the pending already at the platform)"
    return [line]


def _ble_cli() -> ModuleType:
    # bleak and bthome-ble are loaded only for the Bluetooth commands, not by `yiyang run` on a
    # hub without BLE devices (about 20 MB of RSS).
    return importlib.import_module("gateway.ble_cli")


def cmd_ble_scan(args: argparse.Namespace) -> int:
    configured: dict[str, str] = {}
    if Path(args.config).exists():
        configured = {d.address: d.id for d in _load(args.config).devices if d.address}
    return int(asyncio.run(_ble_cli().scan(args.seconds, configured, sys.stdout)))


def cmd_ble_pair(args: argparse.Namespace) -> int:
    return int(asyncio.run(_ble_cli().pair(args.address, input, sys.stdout)))


def cmd_ble_bind(args: argparse.Namespace) -> int:
    _ble_cli().bind_device(args.config, args.id, args.driver, args.address, args.resident)
    print(f"{args.config}: device {args.id} ({args.driver} {args.address}) bound to resident {args.resident}; "
          "restart the gateway to use it (`systemctl restart yiyang`)")
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    demo = Path(__file__).resolve().parents[1] / "scripts" / "demo.py"
    if not demo.exists():
        print("the demo needs the source checkout (scripts/demo.py); run scripts/demo.sh from the repository",
              file=sys.stderr)
        return EXIT_USAGE
    sys.argv = [str(demo), *args.demo_args]
    runpy.run_path(str(demo), run_name="__main__")
    return EXIT_OK


def _add_config_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    config = sub.add_parser("config", help="configuration tools")
    config_sub = config.add_subparsers(dest="config_command", required=True, metavar="ACTION")
    check = config_sub.add_parser(
        "check", help="validate a configuration file, with what the fleet applied; list every problem")
    check.add_argument("file")
    check.add_argument("--user", help="the user the daemon runs as, whose access to the files and data_dir "
                                      "is checked (default: the user running this command)")
    check.add_argument("--effective", action="store_true",
                       help="print the effective configuration (the file with what the fleet applied) as JSON")
    check.set_defaults(func=cmd_config_check)
    init = config_sub.add_parser(
        "init", help="print a new hub's configuration: every documented default with this hub's identity "
                     "(scripts/install.sh writes /etc/yiyang/gateway.toml with it)")
    init.add_argument("--hub-id", required=True, help="the gateway id the platform issued, e.g. gw-0042")
    init.add_argument("--platform-url", required=True, help="the Platform Upload API v1 base URL")
    init.add_argument("--resident", action="append", metavar="ID",
                      help="a pseudonymous resident id the platform issued (repeat for each; needed for a new file)")
    init.add_argument("--data-dir", default="/var/lib/yiyang")
    init.add_argument("--secret-file", default="/etc/yiyang/platform.secret")
    init.add_argument("--broker-user", default="yiyang-gateway", help="the hub's own user on the home broker")
    init.add_argument("--broker-password-file", help="the file holding that user's password")
    init.add_argument("--fleet-key-file", help="the fleet's public key (default: a new file has none, "
                                               "--update keeps the file's)")
    init.add_argument("--update", metavar="FILE", help="set these keys in FILE instead (its other settings, "
                                                       "devices and comments kept) and print the result")
    init.set_defaults(func=cmd_config_init)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="yiyang", description="Home-care edge gateway (医养结合 智能监护信息终端)")
    parser.add_argument("--version", action="version", version=f"yiyang {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    config_default = os.environ.get("YIYANG_CONFIG", DEFAULT_CONFIG)

    run = sub.add_parser("run", help="run the gateway daemon")
    run.add_argument("--config", default=config_default, help=f"configuration file (default {config_default})")
    run.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    run.set_defaults(func=cmd_run)

    _add_config_commands(sub)

    queue = sub.add_parser("queue", help="outbox statistics: pending, delivered, dead, oldest pending age")
    queue.add_argument("--config", default=config_default)
    queue.add_argument("--dead", type=int, default=0, metavar="N", help="also list up to N dead-letter records")
    queue.add_argument("--requeue-dead", action="store_true", help="send dead-letter records again")
    queue.add_argument("--json", action="store_true")
    queue.set_defaults(func=cmd_queue)

    status = sub.add_parser("status", help="what the running gateway reports: devices, queue, uplink, problems")
    status.add_argument("--config", default=config_default)
    status.add_argument("--json", action="store_true")
    status.set_defaults(func=cmd_status)

    doctor = sub.add_parser("doctor", help="check everything the hub needs; each problem with the command that "
                                           "fixes it (exit 1 if any)")
    doctor.add_argument("--config", default=config_default)
    doctor.add_argument("--json", action="store_true", help="the same checks as JSON (what the fleet's doctor returns)")
    doctor.add_argument("--user", help="the user the daemon runs as (default: yiyang when this system has it)")
    doctor.add_argument("--timeout", type=float, default=5.0, metavar="S",
                        help="seconds to wait for BlueZ and the broker (the platform: its own timeout, at most 10)")
    doctor.set_defaults(func=cmd_doctor)

    acl = sub.add_parser("broker-acl", help="print the Mosquitto ACL (acl_file) for this hub, the fleet and "
                                            "each family-app contact, from the configuration")
    acl.add_argument("--config", default=config_default)
    acl.set_defaults(func=cmd_broker_acl)
    _family_parser(sub, config_default)

    report = sub.add_parser("report", help="a picture of a resident's blood pressure and glucose for the family "
                                           "doctor (PNG, SVG or PDF by the file's extension)")
    report.add_argument("--config", default=config_default)
    report.add_argument("--resident", required=True, metavar="RID")
    report.add_argument("--days", type=int, default=30, help="the period, ending now (default 30)")
    report.add_argument("--out", required=True, metavar="FILE", help="report.png, report.svg or report.pdf")
    report.set_defaults(func=cmd_report)

    _bluetooth_parsers(sub, config_default)

    demo = sub.add_parser("demo", add_help=False,
                          help="run a self-contained demo (platform, meter simulator, broker, daemon); "
                               "`yiyang demo --help` for its options")
    demo.set_defaults(func=cmd_demo)
    return parser


def _bluetooth_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser], config_default: str) -> None:
    scan = sub.add_parser("scan", help="Bluetooth: what advertises nearby (RSSI, health profiles, configured?)")
    scan.add_argument("--seconds", type=float, default=10.0)
    scan.add_argument("--config", default=config_default)
    scan.set_defaults(func=cmd_ble_scan)
    pair = sub.add_parser("pair", help="Bluetooth: pair (bond) with a device in pairing mode; asks for its passkey")
    pair.add_argument("address", help="AA:BB:CC:DD:EE:FF")
    pair.set_defaults(func=cmd_ble_pair)
    bind = sub.add_parser("bind", help="add or replace a BLE device in the configuration (comments kept)")
    bind.add_argument("--config", default=config_default)
    bind.add_argument("--id", required=True, help="device id, e.g. bp-bedroom")
    bind.add_argument("--driver", required=True, choices=sorted(names(lambda spec: spec.transport is Transport.BLE)))
    bind.add_argument("--address", required=True, help="AA:BB:CC:DD:EE:FF")
    bind.add_argument("--resident", required=True, help="resident id the device measures")
    bind.set_defaults(func=cmd_ble_bind)


def _family_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser], config_default: str) -> None:
    broker = argparse.ArgumentParser(add_help=False)
    broker.add_argument("--config", default=config_default)
    broker.add_argument("--password-file", default=str(DEFAULT_PASSWORD_FILE),
                        help=f"Mosquitto's password_file (default {DEFAULT_PASSWORD_FILE})")
    broker.add_argument("--acl-file", default=str(DEFAULT_ACL_FILE),
                        help=f"Mosquitto's acl_file (default {DEFAULT_ACL_FILE})")
    broker.add_argument("--reload", default="systemctl", metavar="HOW",
                        help="how to make Mosquitto read them again: systemctl (default: systemctl reload "
                             "mosquitto), pidfile:PATH or pid:N (SIGHUP), none")
    family = sub.add_parser("family", help="family-app accounts on the hub's broker: the contact, its password "
                                           "and the ACL, kept in step")
    actions = family.add_subparsers(dest="family_command", required=True, metavar="ACTION")
    add = actions.add_parser("add", parents=[broker], help="give a contact a family-app account (a new contact, "
                             "or an SMS contact); again to change it or set a new password")
    add.add_argument("id", help="contact id, also the broker user name, e.g. c-0001")
    add.add_argument("--resident", action="append", metavar="RID",
                     help="a resident the contact is linked to (repeat it); a new contact without one: every resident")
    add.add_argument("--tier", type=int, choices=(1, 2, 3))
    add.add_argument("--min-severity", choices=("warning", "urgent", "emergency"))
    add.add_argument("--phone", help="E.164 phone number for SMS as well, e.g. +8613800138000")
    add.add_argument("--language", choices=("zh", "en", "zh+en"))
    secret = add.add_mutually_exclusive_group()
    secret.add_argument("--password-stdin", action="store_true",
                        help="read the password from the first line of standard input instead of generating one")
    secret.add_argument("--keep-password", action="store_true", help="an existing account keeps its password")
    add.set_defaults(func=cmd_family_add)
    remove = actions.add_parser("remove", parents=[broker], help="take away a contact's family-app account (a "
                                "contact with a phone stays for SMS)")
    remove.add_argument("id")
    remove.set_defaults(func=cmd_family_remove)
    listing = actions.add_parser("list", parents=[broker], help="the contacts, and where the broker's files and the "
                                 "configuration disagree")
    listing.set_defaults(func=cmd_family_list)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if args.command == "demo":
        args.demo_args = extra  # the demo script parses its own options
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        return int(args.func(args))
    except ConfigError as exc:
        # One line per problem, each naming the file, line and key: one problem is one line.
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return EXIT_PROBLEMS
    except GatewayError as exc:
        print(f"yiyang: {exc}", file=sys.stderr)
        return EXIT_PROBLEMS
    except KeyboardInterrupt:
        return 130
