"""The hubs file: one gateway id per line, in rollout order (the first lines are the canaries).

Blank lines and ``#`` comments (whole lines, or after an id) are ignored. Every id must be a valid
gateway id ([gateway] id in gateway.toml), and none may appear twice: a hub listed twice would be
counted twice in a wave.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from fleetctl.errors import UsageError
from gateway.config.schema import GatewaySettings, setting_of

_ID_SETTING = setting_of(next(f for f in dataclasses.fields(GatewaySettings) if f.name == "id"))
assert _ID_SETTING.pattern is not None
GATEWAY_ID = _ID_SETTING.pattern
"""The hub's own rule for its id, so the tool never accepts an id no hub can have."""

MAX_HUBS_FILE_BYTES = 16 * 1024 * 1024
"""Room for a province (a million ids); a bigger file is a mistake (a binary, a log)."""


def parse_hubs(text: str, source: str) -> tuple[str, ...]:
    """The gateway ids in ``text``, in order; :class:`UsageError` lists every bad line."""
    hubs: list[str] = []
    seen: dict[str, int] = {}
    problems: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        hub = line.split("#", 1)[0].strip()
        if not hub:
            continue
        if not GATEWAY_ID.fullmatch(hub):
            problems.append(f"{source}:{number}: {hub[:80]!r} is not a gateway id ({_ID_SETTING.form})")
        elif hub in seen:
            problems.append(f"{source}:{number}: {hub} is listed already on line {seen[hub]}")
        else:
            seen[hub] = number
            hubs.append(hub)
    if problems:
        more = [f"... and {len(problems) - 20} more"] if len(problems) > 20 else []
        raise UsageError("\n".join(problems[:20] + more))
    if not hubs:
        raise UsageError(f"{source}: no gateway ids; write one per line")
    return tuple(hubs)


def load_hubs(path: Path) -> tuple[str, ...]:
    try:
        with path.open("rb") as file:
            data = file.read(MAX_HUBS_FILE_BYTES + 1)
    except OSError as exc:
        raise UsageError(f"{path}: cannot read the hubs file ({exc.strerror})") from exc
    if len(data) > MAX_HUBS_FILE_BYTES:
        raise UsageError(f"{path}: larger than {MAX_HUBS_FILE_BYTES // (1024 * 1024)} MiB; is it the hubs file?")
    try:
        return parse_hubs(data.decode("utf-8"), str(path))
    except UnicodeDecodeError as exc:
        raise UsageError(f"{path}: byte {exc.start} is not UTF-8; save the hubs file as UTF-8") from exc
