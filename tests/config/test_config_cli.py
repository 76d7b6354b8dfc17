"""``yiyang config check`` and ``yiyang run`` as a technician meets them: real processes, real files.

Only the CLI's documented lines are asserted: ``FILE: N problem(s):``, one ``FILE:LINE: key: what; what
to do`` line per problem, ``warning: ...`` lines, and for ``run`` one stderr line per problem.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from gatewayproc import cli

DEEP = 5000


def write_config(tmp_path: Path, *, data_dir: Path | None = None, extra: str = "") -> Path:
    secret = tmp_path / "platform.secret"
    secret.write_text("demo-secret\n", encoding="utf-8")
    secret.chmod(0o600)
    config = tmp_path / "gateway.toml"
    config.write_text(f"""\
[gateway]
id = "gw-1"
data_dir = "{data_dir or tmp_path / 'data'}"
[platform]
url = "http://127.0.0.1:8480"
secret_file = "{secret}"
[[residents]]
id = "r-1"
{extra}""", encoding="utf-8")
    return config


MISSING_PASSWORD = '[mqtt]\nusername = "hub"\npassword_file = "{path}"\n'
"""Lines 9-11 of the file: password_file is line 11."""


def test_run_with_a_missing_password_file_says_so_in_one_line_and_exits_1(tmp_path: Path) -> None:
    password = tmp_path / "broker.password"
    config = write_config(tmp_path, extra=MISSING_PASSWORD.format(path=password))
    result = cli("run", "--config", str(config))
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr.splitlines() == [
        f"{config}:11: mqtt.password_file: {password} does not exist; "
        f"write the broker password into it and run: chmod 600 {password}"
    ]
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "data").exists(), "the daemon must not have started"


def test_config_check_reports_the_same_missing_password_file(tmp_path: Path) -> None:
    password = tmp_path / "broker.password"
    config = write_config(tmp_path, extra=MISSING_PASSWORD.format(path=password))
    result = cli("config", "check", str(config))
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        f"{config}: 1 problem(s):",
        f"  {config}:11: mqtt.password_file: {password} does not exist; "
        f"write the broker password into it and run: chmod 600 {password}",
    ]


def test_a_5000_deep_array_is_a_problem_line_for_check_and_run_not_a_traceback(tmp_path: Path) -> None:
    config = write_config(tmp_path, extra="thresholds = " + "[" * DEEP + "]" * DEEP + "\n")
    expected = (f"{config}:9:18: more than 4 arrays or inline tables inside one another, deeper than any setting; "
                "remove the extra [ ] or { }")
    check = cli("config", "check", str(config))
    assert (check.returncode, check.stdout.splitlines()) == (1, [f"{config}: 1 problem(s):", f"  {expected}"])
    run = cli("run", "--config", str(config))
    assert (run.returncode, run.stderr.splitlines()) == (1, [expected])
    assert "Traceback" not in check.stderr + run.stderr


def test_an_unknown_service_user_is_a_usage_error(tmp_path: Path) -> None:
    result = cli("config", "check", "--user", "no-such-user-here", str(write_config(tmp_path)))
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "yiyang: there is no user 'no-such-user-here' on this system; give the user the daemon runs as "
        "(User= in its systemd unit)"
    ]


@pytest.fixture
def mount_point(tmp_path: Path) -> Iterator[Path]:
    assert os.geteuid() == 0, "mounting a tmpfs needs root; CI runs the tests as root"
    point = tmp_path / "mnt"
    point.mkdir()
    yield point
    subprocess.run(["umount", str(point)], check=False)


def test_low_disk_space_is_a_warning_line_that_leaves_the_exit_status_alone(tmp_path: Path, mount_point: Path) -> None:
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount_point)], check=True)
    warning = (f"warning: {{config}}:3: gateway.data_dir: only 16 MiB free on the disk of {mount_point}, less than "
               "the outbox may grow to (storage.budget_mb = 512); free disk space, or lower storage.budget_mb to "
               "what the disk can hold")
    config = write_config(tmp_path, data_dir=mount_point)
    ok = cli("config", "check", str(config))
    assert (ok.returncode, ok.stdout.splitlines()) == (0, [f"{config}: OK", warning.format(config=config)])

    password = tmp_path / "broker.password"
    config = write_config(tmp_path, data_dir=mount_point, extra=MISSING_PASSWORD.format(path=password))
    bad = cli("config", "check", str(config))
    assert (bad.returncode, bad.stdout.splitlines()) == (1, [
        f"{config}: 1 problem(s):",
        f"  {config}:11: mqtt.password_file: {password} does not exist; "
        f"write the broker password into it and run: chmod 600 {password}",
        warning.format(config=config),
    ])


def test_config_check_on_a_read_only_data_dir_names_it(tmp_path: Path, mount_point: Path) -> None:
    # `run` starts anyway on such a directory (it alerts without its disk: tests/e2e/test_storage_failures.py);
    # `config check` is where the technician hears of it before leaving the home.
    subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(mount_point)], check=True)
    config = write_config(tmp_path, data_dir=mount_point)
    result = cli("config", "check", str(config))
    assert (result.returncode, result.stdout.splitlines()) == (1, [
        f"{config}: 1 problem(s):",
        f"  {config}:3: gateway.data_dir: {mount_point} is on a read-only file system; "
        "remount it read-write, or point data_dir at a writable disk",
    ])
