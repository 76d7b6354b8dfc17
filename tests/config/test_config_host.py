"""What a valid configuration needs from the hub: the files it names and a writable data_dir.

Real files in tmp_path with real modes, a real read-only mount; the checks are the ones both
``yiyang config check`` and ``yiyang run`` make (gateway.config.preflight.check_host).
"""

from __future__ import annotations

import base64
import datetime
import grp
import os
import pwd
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.x509.oid import NameOID

from gateway.config import parse_config
from gateway.config.access import ServiceUser
from gateway.config.preflight import HostReport, check_host

ME = ServiceUser.current()
NOBODY = ServiceUser.named("nobody")
OWNER = f"{pwd.getpwuid(os.geteuid()).pw_name}:{grp.getgrgid(os.getegid()).gr_name}"
"""Who owns the files this test creates."""


class Hub:
    """A configuration file whose referenced files live in a tmp_path, each written by a test."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.secret = root / "platform.secret"
        self.password = root / "broker.password"
        self.ca = root / "ca.pem"
        self.fleet_key = root / "fleet.pub"
        self.data_dir = root / "data"
        self.config = root / "gateway.toml"
        self.write(self.secret, b"demo-secret\n", 0o600)

    @staticmethod
    def write(path: Path, data: bytes, mode: int) -> None:
        path.write_bytes(data)
        path.chmod(mode)

    def text(self, *, mqtt: str = "", fleet: str = "", storage: str = "", enabled: bool = True) -> str:
        return f"""\
[gateway]
id = "gw-1"
data_dir = "{self.data_dir}"

[platform]
url = "http://127.0.0.1:8480"
secret_file = "{self.secret}"
enabled = {str(enabled).lower()}

[mqtt]
{mqtt}

[fleet]
{fleet}

[storage]
{storage}

[[residents]]
id = "r-1"
"""

    def with_every_file(self) -> str:
        """Lines 11-14 name the broker password and CA, line 17 the fleet key."""
        return self.text(
            mqtt=f'username = "hub"\npassword_file = "{self.password}"\ntls = true\nca_file = "{self.ca}"',
            fleet=f'public_key_file = "{self.fleet_key}"',
        )

    def check(self, text: str, user: ServiceUser = ME) -> HostReport:
        self.config.write_text(text, encoding="utf-8")
        return check_host(parse_config(text, str(self.config)), str(self.config), text, user)

    def problems(self, text: str, user: ServiceUser = ME) -> list[str]:
        report = self.check(text, user)
        assert report.warnings == (), "the tests below use a disk with room; see the low-space test"
        return [line.removeprefix(f"{self.config}:") for line in report.problems]


@pytest.fixture
def hub(tmp_path: Path) -> Hub:
    return Hub(tmp_path)


def install_good_files(hub: Hub) -> None:
    hub.write(hub.password, "s3cret-密码\n".encode(), 0o600)
    hub.write(hub.ca, ca_certificate_pem(), 0o644)
    public = Ed25519PrivateKey.generate().public_key()
    hub.write(hub.fleet_key, public.public_bytes(serialization.Encoding.PEM,
                                                 serialization.PublicFormat.SubjectPublicKeyInfo), 0o644)


def ca_certificate_pem() -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "yiyang test CA")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM)


# --- referenced files ----------------------------------------------------------------------------------


def test_good_files_and_a_creatable_data_dir_are_no_problem(hub: Hub) -> None:
    install_good_files(hub)
    assert hub.problems(hub.with_every_file()) == []


def test_every_missing_file_is_reported_at_once_by_key_and_line(hub: Hub) -> None:
    hub.secret.unlink()
    assert hub.problems(hub.with_every_file()) == [
        f"7: platform.secret_file: {hub.secret} does not exist; "
        f"write the secret issued for this gateway into it and run: chmod 600 {hub.secret}",
        f"12: mqtt.password_file: {hub.password} does not exist; "
        f"write the broker password into it and run: chmod 600 {hub.password}",
        f'14: mqtt.ca_file: {hub.ca} does not exist; '
        'install the broker\'s CA certificate (PEM) there, or set ca_file = "" to use the system\'s CAs',
        f'17: fleet.public_key_file: {hub.fleet_key} does not exist; '
        'install the fleet\'s Ed25519 public key there, or set public_key_file = "" to turn fleet commands off',
    ]


def test_empty_files_are_reported(hub: Hub) -> None:
    install_good_files(hub)
    hub.write(hub.password, b" \n", 0o600)
    hub.write(hub.fleet_key, b"", 0o644)
    assert hub.problems(hub.with_every_file()) == [
        f"12: mqtt.password_file: {hub.password} is empty; "
        f"write the broker password into it and run: chmod 600 {hub.password}",
        f'17: fleet.public_key_file: {hub.fleet_key} is empty; '
        'install the fleet\'s Ed25519 public key there, or set public_key_file = "" to turn fleet commands off',
    ]


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660, 0o601])
def test_secrets_open_to_group_or_others_are_refused(hub: Hub, mode: int) -> None:
    install_good_files(hub)
    hub.secret.chmod(mode)
    hub.password.chmod(mode)
    assert hub.problems(hub.with_every_file()) == [
        f"7: platform.secret_file: {hub.secret} is open to group or others (mode {mode:04o}); "
        f"run: chmod 600 {hub.secret}",
        f"12: mqtt.password_file: {hub.password} is open to group or others (mode {mode:04o}); "
        f"run: chmod 600 {hub.password}",
    ]


def test_a_ca_or_fleet_key_that_others_can_change_is_refused(hub: Hub) -> None:
    install_good_files(hub)
    hub.ca.chmod(0o664)
    hub.fleet_key.chmod(0o646)
    assert hub.problems(hub.with_every_file()) == [
        f"14: mqtt.ca_file: {hub.ca} can be changed by group or others (mode 0664); run: chmod go-w {hub.ca}",
        f"17: fleet.public_key_file: {hub.fleet_key} can be changed by group or others (mode 0646); "
        f"run: chmod go-w {hub.fleet_key}",
    ]


def test_contents_are_checked_as_the_daemon_uses_them(hub: Hub) -> None:
    install_good_files(hub)
    hub.write(hub.password, b"caf\xe9\n", 0o600)
    hub.write(hub.ca, b"-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n", 0o644)
    x25519 = X25519PrivateKey.generate().public_key()
    hub.write(hub.fleet_key, x25519.public_bytes(serialization.Encoding.PEM,
                                                 serialization.PublicFormat.SubjectPublicKeyInfo), 0o644)
    problems = hub.problems(hub.with_every_file())
    assert problems[0] == (
        f"12: mqtt.password_file: {hub.password} is not UTF-8 text (byte 3); write the password as UTF-8 text"
    )
    assert problems[1].startswith(f"14: mqtt.ca_file: {hub.ca} holds no usable certificate (")
    assert problems[1].endswith("); install the CA certificate in PEM form")
    assert problems[2:] == [
        f"17: fleet.public_key_file: {hub.fleet_key}: the fleet key must be Ed25519, not X25519PublicKey; "
        "install the fleet's Ed25519 public key there (PEM, or the 32-byte key in base64)"
    ]


def test_a_fleet_key_that_is_not_a_key_is_refused_and_raw_base64_is_accepted(hub: Hub) -> None:
    install_good_files(hub)
    hub.write(hub.fleet_key, b"not a key\n", 0o644)
    assert hub.problems(hub.with_every_file()) == [
        f"17: fleet.public_key_file: {hub.fleet_key}: not an Ed25519 public key (PEM, or 32 bytes in base64); "
        "install the fleet's Ed25519 public key there (PEM, or the 32-byte key in base64)"
    ]
    raw = Ed25519PrivateKey.generate().public_key().public_bytes_raw()
    hub.write(hub.fleet_key, base64.b64encode(raw) + b"\n", 0o644)
    assert hub.problems(hub.with_every_file()) == []


def test_a_directory_named_as_a_secret_is_not_a_regular_file(hub: Hub) -> None:
    install_good_files(hub)
    hub.password.unlink()
    hub.password.mkdir(mode=0o700)
    assert hub.problems(hub.with_every_file()) == [
        f"12: mqtt.password_file: {hub.password} is not a regular file; "
        "point the setting at the broker password file itself"
    ]


def test_the_secret_of_a_disabled_platform_is_not_needed(hub: Hub) -> None:
    hub.secret.unlink()
    assert hub.problems(hub.text(enabled=False)) == []


def test_a_secret_the_service_user_cannot_read_names_its_owner(hub: Hub) -> None:
    install_good_files(hub)
    hub.data_dir.mkdir()
    os.chown(hub.data_dir, NOBODY.uid, -1)  # so that only the files are in question
    problems = hub.problems(hub.with_every_file(), NOBODY)
    assert problems[:2] == [
        f"7: platform.secret_file: user nobody cannot read {hub.secret} ({_owned(0o600)}); "
        f"run: chown nobody {hub.secret}",
        f"12: mqtt.password_file: user nobody cannot read {hub.password} ({_owned(0o600)}); "
        f"run: chown nobody {hub.password}",
    ]
    assert problems[2:] == [], "the CA and fleet key are 0644: anyone may read them"


def _owned(mode: int) -> str:
    return f"owner {OWNER}, mode {mode:04o}"


# --- data_dir ------------------------------------------------------------------------------------------


@pytest.fixture
def mount_point(tmp_path: Path) -> Iterator[Path]:
    """An empty directory to mount a tmpfs on; unmounted after the test however it ends."""
    assert os.geteuid() == 0, "mounting a tmpfs needs root; CI runs the tests as root"
    point = tmp_path / "mnt"
    point.mkdir()
    yield point
    subprocess.run(["umount", str(point)], check=False)


def mount_tmpfs(point: Path, options: str) -> None:
    subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(point)], check=True)


def test_a_read_only_data_dir_is_refused(hub: Hub, mount_point: Path) -> None:
    mount_tmpfs(mount_point, "ro,size=1m")
    hub.data_dir = mount_point
    assert hub.problems(hub.text()) == [
        f"3: gateway.data_dir: {mount_point} is on a read-only file system; "
        "remount it read-write, or point data_dir at a writable disk"
    ]


def test_a_data_dir_that_would_be_created_on_a_read_only_disk_is_refused(hub: Hub, mount_point: Path) -> None:
    mount_tmpfs(mount_point, "ro,size=1m")
    hub.data_dir = mount_point / "yiyang" / "outbox"
    assert hub.problems(hub.text()) == [
        f"3: gateway.data_dir: {hub.data_dir} does not exist and cannot be created: {mount_point} "
        "is on a read-only file system; remount it read-write, or point data_dir at a writable disk"
    ]


def test_low_free_space_is_a_warning_not_a_problem(hub: Hub, mount_point: Path) -> None:
    mount_tmpfs(mount_point, "size=16m")
    hub.data_dir = mount_point
    report = hub.check(hub.text(storage="budget_mb = 512"))
    assert report == HostReport(file_problems=(), storage_problems=(), warnings=(
        f"{hub.config}:3: gateway.data_dir: only 16 MiB free on the disk of {mount_point}, less than the outbox "
        "may grow to (storage.budget_mb = 512); free disk space, or lower storage.budget_mb to what the disk can hold",
    ))
    assert hub.check(hub.text(storage="budget_mb = 16")) == HostReport(file_problems=(), storage_problems=(),
                                                                       warnings=())


def test_a_file_as_data_dir_is_not_a_directory(hub: Hub) -> None:
    hub.data_dir.write_text("", encoding="utf-8")
    assert hub.problems(hub.text()) == [
        f"3: gateway.data_dir: {hub.data_dir} is not a directory; point data_dir at a directory"
    ]
    hub.data_dir = hub.data_dir / "below"
    assert hub.problems(hub.text()) == [
        f"3: gateway.data_dir: {hub.data_dir} does not exist and cannot be created: {hub.root / 'data'} "
        "is not a directory; point data_dir at a directory"
    ]


def test_a_data_dir_the_service_user_cannot_write_names_its_owner(hub: Hub) -> None:
    hub.data_dir.mkdir(mode=0o755)
    assert hub.problems(hub.text(), NOBODY) == [
        f"3: gateway.data_dir: {hub.data_dir} is not writable by user nobody ({_owned(0o755)}); "
        f"run: chown -R nobody: {hub.data_dir}",
        f"7: platform.secret_file: user nobody cannot read {hub.secret} ({_owned(0o600)}); "
        f"run: chown nobody {hub.secret}",
    ]
    hub.data_dir.rmdir()
    hub.root.chmod(0o755)
    assert hub.problems(hub.text(), NOBODY)[0] == (
        f"3: gateway.data_dir: {hub.data_dir} does not exist and cannot be created: {hub.root} is not writable "
        f"by user nobody ({_owned(0o755)}); create it: install -d -o nobody {hub.data_dir}"
    )


def test_outbox_files_left_by_a_run_as_another_user_are_named(hub: Hub) -> None:
    hub.data_dir.mkdir(mode=0o750)
    os.chown(hub.data_dir, NOBODY.uid, -1)
    (hub.data_dir / "outbox.sqlite").write_bytes(b"")
    (hub.data_dir / "outbox.sqlite").chmod(0o644)
    os.chown(hub.secret, NOBODY.uid, -1)
    assert hub.problems(hub.text(), NOBODY) == [
        f"3: gateway.data_dir: user nobody cannot write outbox.sqlite ({_owned(0o644)}) in {hub.data_dir}; "
        f"run: chown -R nobody: {hub.data_dir}"
    ]
