"""What the operator sees of a rollout: a live line on a terminal, plain lines in a log, and the
summary at the end. Rendering is pure; :class:`ProgressPrinter` only writes it out."""

from __future__ import annotations

from typing import TextIO

from fleetctl.engine import Progress, RolloutResult
from fleetctl.rollout import Counts, HubRecord, Phase

LOG_EVERY_S = 10.0
"""Without a terminal, a counts line this often while waiting: a log shows the rollout alive
without a line per report."""
ERRORS_SHOWN = 5


def elapsed(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}:{secs:02d}"


def counts_text(counts: Counts) -> str:
    return (f"applied {counts.applied}  rejected {counts.rejected}  rolled back {counts.rolled_back}  "
            f"no answer {counts.no_answer}  waiting {counts.waiting}  not sent {counts.not_sent}")


def status_line(progress: Progress) -> str:
    wave = f"wave {progress.waves_sent}/{progress.waves}"
    flag = "  HALTING: no further wave" if progress.halting else ""
    return f"v{progress.version}  {wave}  {counts_text(progress.counts)}  {elapsed(progress.elapsed_s)}{flag}"


def outcome_lines(hub: str, record: HubRecord, timeout_s: float | None = None) -> list[str]:
    """A hub that did not apply the document, and why; nothing for one that did."""
    if record.phase is Phase.APPLIED:
        return []
    if record.phase is Phase.NO_ANSWER:
        within = f" within {timeout_s:.0f} s" if timeout_s is not None else ""
        return [f"  {hub}  no answer{within} (its document stays retained; `config status` shows it later)"]
    lines = [f"  {hub}  {record.phase.value}"]
    for error in record.errors[:ERRORS_SHOWN]:
        lines.append(f"      {error.path}: {error.message}" if error.path else f"      {error.message}")
    if len(record.errors) > ERRORS_SHOWN:
        lines.append(f"      ... and {len(record.errors) - ERRORS_SHOWN} more (in the state file)")
    if not record.errors:
        lines.append("      (the hub gave no reason)")
    return lines


def summary(result: RolloutResult) -> list[str]:
    state, counts = result.state, result.counts
    lines = [f"version {state.document.version} to {len(state.hubs)} hubs, "
             f"{state.waves_sent} of {len(state.plan.waves)} waves sent: {counts_text(counts)}"]
    if result.halted:
        lines.append(f"HALTED: {counts.failed} hubs rejected or rolled back (--halt-after {state.policy.halt_after}); "
                     f"{counts.not_sent} hubs were not sent the document.")
    failures = result.failures()
    if failures:
        lines.append("These hubs did not apply it and keep running their previous configuration:")
        for hub, record in failures:
            lines += outcome_lines(hub, record, state.policy.timeout_s)
    if result.halted:
        lines.append("Fix the document and push it as a new version; or, if these failures are acceptable, "
                     f"re-run the same command with a --halt-after above {counts.failed} to go on.")
    elif result.ok:
        lines.append("Every hub applied it.")
    return lines


class ProgressPrinter:
    """The progress callback of ``config push``: a line rewritten in place on a terminal, plain lines otherwise."""

    def __init__(self, out: TextIO, *, tty: bool | None = None, timeout_s: float | None = None) -> None:
        self._out = out
        self._tty = out.isatty() if tty is None else tty
        self._timeout_s = timeout_s
        self._logged_at = -LOG_EVERY_S
        self._last_logged = ""

    def __call__(self, progress: Progress) -> None:
        lines = []
        if progress.sent:
            lines.append(f"wave {progress.waves_sent}/{progress.waves}: sent to {len(progress.sent)} hubs")
        for hub, record in progress.answered:
            lines += outcome_lines(hub, record, self._timeout_s)
        lines += progress.notes
        if self._tty:
            # Clear the live line, print what is permanent above it, then draw it again.
            self._out.write("\r\x1b[K" + "".join(line + "\n" for line in lines))
            self._out.write(status_line(progress) + ("\n" if progress.done else ""))
        else:
            line = status_line(progress)
            due = progress.elapsed_s - self._logged_at >= LOG_EVERY_S
            # The final line repeats the last one when nothing changed since: a log needs it once.
            if lines or due or (progress.done and line != self._last_logged):
                lines.append(line)
                self._logged_at, self._last_logged = progress.elapsed_s, line
            self._out.write("".join(line + "\n" for line in lines))
        self._out.flush()
