"""The README's "Fleet operator" section must not drift from ``fleet.py config`` (scripts/fleetctl/cli.py)."""

from __future__ import annotations

import argparse
import re
import shlex
from pathlib import Path

from fleetctl.cli import add_config_commands

REPO = Path(__file__).resolve().parents[2]
README = (REPO / "README.md").read_text(encoding="utf-8")
SECTION = README.split("## Fleet operator\n", 1)[1].split("\n## ", 1)[0]


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="fleet.py")
    config = top.add_subparsers(dest="action", required=True).add_parser("config")
    add_config_commands(config)
    return top


def config_commands() -> dict[str, argparse.ArgumentParser]:
    top = parser()
    action = next(a for a in top._actions if isinstance(a, argparse._SubParsersAction))
    config = action.choices["config"]
    sub = next(a for a in config._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def test_every_option_of_config_push_and_status_is_in_the_fleet_operator_section() -> None:
    for name, command in config_commands().items():
        options = {option for action in command._actions for option in action.option_strings
                   if option.startswith("--") and option != "--help"}
        missing = sorted(option for option in options if f"`{option}" not in SECTION and f" {option}" not in SECTION)
        assert not missing, f"config {name}: {missing} not in README.md, Fleet operator"


def test_the_sections_push_example_is_a_valid_command_line() -> None:
    block = re.search(r"^ {7}python scripts/fleet\.py (config push .*?)(?:\n\n)", SECTION, re.MULTILINE | re.DOTALL)
    assert block is not None
    args = parser().parse_args(shlex.split(block.group(1).replace("\\\n", " ")))
    assert (args.hubs, args.body, args.state) == ("hubs.txt", "change.toml", "rollout-2027-01.json")
