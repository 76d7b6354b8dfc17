"""``config push`` arguments into a rollout request (scripts/fleetctl/cli.py): new, resumed, rotation only."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from fleetctl.cli import _request, add_config_commands
from fleetctl.documents import DocumentSpec
from fleetctl.errors import UsageError
from fleetctl.plan import plan_waves
from fleetctl.rollout import Policy, new_rollout


def push_args(*argv: str) -> argparse.Namespace:
    top = argparse.ArgumentParser()
    add_config_commands(top)
    return top.parse_args(["push", "--key", "fleet.key", "--state", "rollout.json", *argv])


@pytest.fixture
def files(tmp_path: Path) -> Path:
    (tmp_path / "hubs.txt").write_text("gw-0001\ngw-0002\n")
    (tmp_path / "change.toml").write_text("[alerts]\nrepeat_emergency_s = 90.0\n")
    (tmp_path / "next.pub").write_bytes(Ed25519PrivateKey.generate().public_key().public_bytes(
        Encoding.PEM, PublicFormat.SubjectPublicKeyInfo))
    return tmp_path


def test_a_new_rollout_takes_the_defaults(files: Path) -> None:
    request = _request(push_args("--hubs", str(files / "hubs.txt"), "--body", str(files / "change.toml")), None)
    assert (request.hubs, request.config) == (("gw-0001", "gw-0002"), {"alerts": {"repeat_emergency_s": 90.0}})
    assert (request.version, request.canary, request.wave_percent, request.halt_after, request.timeout_s,
            request.topic_root) == (None, 10, 10, 2, 150.0, "yiyang/v1")


def test_a_new_rollout_needs_hubs_and_a_body_unless_it_only_rotates_the_key(files: Path) -> None:
    with pytest.raises(UsageError, match="needs --hubs and --body"):
        _request(push_args("--hubs", str(files / "hubs.txt")), None)
    rotation = _request(push_args("--hubs", str(files / "hubs.txt"), "--fleet-public-key", str(files / "next.pub")),
                        None)
    assert rotation.config == {}
    assert rotation.fleet_public_key is not None


def test_a_resume_takes_what_is_not_given_from_the_state_file() -> None:
    document = DocumentSpec(version=4, issued_at="2027-01-15T08:00:00+08:00", config={"mqtt": {"keepalive_s": 60}})
    saved = new_rollout(document, "sha256:x", "fleet/v1", plan_waves(["gw-0001", "gw-0002"], 1, 50), Policy(2, 90))
    request = _request(push_args("--halt-after", "5", "--version", "auto"), saved)
    assert (request.hubs, request.config, request.version, request.topic_root) == (
        ("gw-0001", "gw-0002"), {"mqtt": {"keepalive_s": 60}}, 4, "fleet/v1")
    assert (request.canary, request.wave_percent, request.halt_after, request.timeout_s) == (1, 50, 5, 90)


@pytest.mark.parametrize("argv", [("--canary", "-1"), ("--version", "0"), ("--timeout", "0"), ("--halt-after", "x")])
def test_bad_numbers_are_usage_errors(argv: tuple[str, ...], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        push_args(*argv)
    assert exited.value.code == 2
    assert argv[0] in capsys.readouterr().err
