"""The README must not drift from the CLI, the scripts or CI."""

from __future__ import annotations

import re
from pathlib import Path

from gateway.cli import build_parser

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text(encoding="utf-8")


def _subcommands() -> set[str]:
    parser = build_parser()
    action = next(a for a in parser._actions if a.dest == "command")
    return set(action.choices)  # type: ignore[arg-type]


def test_every_cli_command_is_documented_and_every_documented_one_exists() -> None:
    documented = set(re.findall(r"`yiyang ([a-z-]+)", README))
    assert _subcommands() <= documented, f"undocumented: {_subcommands() - documented}"
    assert documented <= _subcommands(), f"documented but missing: {documented - _subcommands()}"


def test_ci_runs_exactly_the_readme_test_command() -> None:
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    assert "    scripts/test.sh\n" in README
    assert "    scripts/demo.sh\n" in README
    assert re.search(r"^scripts/test\.sh$", ci, re.MULTILINE)
