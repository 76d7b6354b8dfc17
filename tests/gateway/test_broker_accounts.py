"""The broker's files as `yiyang family` keeps them: passwords through mosquitto_passwd, the ACL, the reload."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gateway import family_cli
from gateway.broker_accounts import (
    Reload,
    ReloadKind,
    broker_users,
    delete_user,
    generate_password,
    parse_reload,
    reload_broker,
    set_password,
    write_acl,
)
from gateway.config import load_config
from gateway.errors import BrokerAccountError

CONFIG = """\
[gateway]
id = "gw-0001"
[platform]
url = "http://127.0.0.1:8480"
secret_file = "/etc/yiyang/platform.secret"
[mqtt]
username = "hub"
[[residents]]
id = "r-0001"

[[contacts]]
id = "c-sms-and-app"
phone = "+8613800138000"
app = true  # the daughter

[[contacts]]
id = "c-app-only"
app = true
"""


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("systemctl", Reload(ReloadKind.SYSTEMCTL)),
        ("none", Reload(ReloadKind.NONE)),
        ("pid:4242", Reload(ReloadKind.PID, "4242")),
        ("pidfile:/run/mosquitto/mosquitto.pid", Reload(ReloadKind.PIDFILE, "/run/mosquitto/mosquitto.pid")),
    ],
)
def test_the_reload_option(text: str, expected: Reload) -> None:
    assert parse_reload(text) == expected


@pytest.mark.parametrize("text", ["", "kill", "pid:", "pid:1", "pid:abc", "pidfile:relative.pid", "systemctl:x",
                                  "none:1"])
def test_a_reload_option_that_says_nothing_sure_is_refused(text: str) -> None:
    with pytest.raises(BrokerAccountError, match="--reload"):
        parse_reload(text)


def test_a_pid_reload_sends_sighup(tmp_path: Path) -> None:
    child = subprocess.Popen([sys.executable, "-c", "import signal, time\n"
                              "signal.signal(signal.SIGHUP, lambda *_: exit(7))\nprint('ready', flush=True)\n"
                              "time.sleep(30)"], stdout=subprocess.PIPE)
    with child:
        assert child.stdout is not None and child.stdout.readline() == b"ready\n"
        (tmp_path / "broker.pid").write_text(f"{child.pid}\n")
        reload_broker(parse_reload(f"pidfile:{tmp_path / 'broker.pid'}"))
        assert child.wait(10) == 7  # it got SIGHUP, what Debian's mosquitto.service sends on reload too
    (tmp_path / "broker.pid").write_text("\n")
    with pytest.raises(BrokerAccountError, match="holds no process id"):
        reload_broker(parse_reload(f"pidfile:{tmp_path / 'broker.pid'}"))
    with pytest.raises(BrokerAccountError, match="is it running"):
        reload_broker(parse_reload(f"pidfile:{tmp_path / 'gone.pid'}"))


def test_passwords_go_through_mosquitto_passwd_into_a_private_file(tmp_path: Path) -> None:
    passwd = tmp_path / "passwd"
    password = generate_password()
    assert len(password) == 24
    set_password(passwd, "c-0001", password)
    set_password(passwd, "c-0002", "another-long-password")
    assert os.stat(passwd).st_mode & 0o777 == 0o600
    assert broker_users(passwd) == ["c-0001", "c-0002"]
    assert password not in passwd.read_text()  # hashed
    assert delete_user(passwd, "c-0001") and not delete_user(passwd, "c-0001")
    assert broker_users(passwd) == ["c-0002"]
    for bad in ("short", "has a space in it", "x" * 129, "line\nbreak-password"):
        with pytest.raises(BrokerAccountError, match="printable ASCII"):
            set_password(passwd, "c-0003", bad)


def test_the_acl_is_replaced_keeping_its_mode(tmp_path: Path) -> None:
    acl = tmp_path / "acl"
    write_acl(acl, "# one\n")
    assert os.stat(acl).st_mode & 0o777 == 0o600
    os.chmod(acl, 0o640)
    write_acl(acl, "# two\n")
    assert (acl.read_text(), os.stat(acl).st_mode & 0o777) == ("# two\n", 0o640)


def files(tmp_path: Path) -> family_cli.BrokerFiles:
    return family_cli.BrokerFiles(tmp_path / "passwd", tmp_path / "acl", Reload(ReloadKind.NONE))


def test_remove_keeps_a_contact_with_a_phone_for_sms_and_drops_one_without(tmp_path: Path) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text(CONFIG)
    out = io.StringIO()
    family_cli.add(config, "c-sms-and-app", family_cli.ContactChange(), files(tmp_path), out)
    family_cli.remove(config, "c-sms-and-app", files(tmp_path), out)
    family_cli.remove(config, "c-app-only", files(tmp_path), out)
    contacts = load_config(config).contacts
    assert [(c.id, c.app, c.phone) for c in contacts] == [("c-sms-and-app", False, "+8613800138000")]
    assert "# the daughter" in config.read_text()
    assert "c-sms-and-app has no family-app account any more; it keeps its SMS" in out.getvalue()
    assert broker_users(tmp_path / "passwd") == []
    assert "user c-sms-and-app" not in (tmp_path / "acl").read_text()


def test_add_again_changes_the_contact_and_keeps_its_password_when_asked(tmp_path: Path) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text(CONFIG)
    out = io.StringIO()
    with pytest.raises(BrokerAccountError, match="no password to keep"):
        family_cli.add(config, "c-app-only", family_cli.ContactChange(), files(tmp_path), out, keep_password=True)
    family_cli.add(config, "c-app-only", family_cli.ContactChange(), files(tmp_path), out,
                   password="the-first-password")
    hashed = (tmp_path / "passwd").read_text()
    family_cli.add(config, "c-app-only", family_cli.ContactChange(tier=3, min_severity="emergency"),
                   files(tmp_path), out, keep_password=True)
    assert (tmp_path / "passwd").read_text() == hashed
    contact = load_config(config).contacts[1]
    assert (contact.tier, contact.min_severity.value) == (3, "emergency")
    assert "password (shown once" not in out.getvalue()
