"""Fall detector figures on SisFall-format data: nested leave-one-subject-out, per code and per subject.

    python bench/falls.py --data /path/to/sisfall_dev_acc.npz [--rates 50 200]

Definitions (fall-detection.md asks to state them):
- every trial is a separate stream through a fresh detector;
- a fall trial is *detected* if the detector reports a fall anywhere in it;
- every detection in an ADL trial is a false alarm (false alarms per hour = detections / hours of ADL
  data); an ADL trial with any detection counts against the trial-level specificity;
- detection delay = decided sample - the trial's largest |a| (the impact), for the detection nearest it.

Headline: leave-one-subject-out (LOSO), nested. For each subject, the model is fitted on the others
and its threshold chosen by an inner LOSO over those others (bench/fall_tune.py); only then is the
held-out subject scored. The rates given are pooled for fitting, like the shipped model; each is
reported on its own. With the elderly subjects contributing no falls, the per-subject spread and the
false alarms on the elderly are what say whether the detector generalises.

Also printed: the shipped model streamed in 0.2 s blocks through ``FallDetector`` (optimistic: it was
fitted on these subjects), with the CPU it costs per sample, and a check that the bench's decision
rule gives exactly what the streaming detector gives.
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from fall_tune import (
    FoldResult,
    Trial,
    TrialOutcome,
    build_table,
    decide,
    load_trials,
    logits,
    nested_loso,
    trial_events,
)

from gateway.detect.fall_model import DEFAULT_PARAMS, FEATURE_SCALES, FallParams
from gateway.detect.falls import FallDetector

BLOCK_S = 0.2


@dataclass(frozen=True)
class Figures:
    falls: int
    detected: int
    adl_trials: int
    adl_flagged: int
    adl_hours: float
    false_alarms: int
    delays_s: tuple[float, ...]

    @property
    def sensitivity(self) -> float:
        return self.detected / self.falls if self.falls else float("nan")

    @property
    def specificity(self) -> float:
        return 1.0 - self.adl_flagged / self.adl_trials if self.adl_trials else float("nan")

    @property
    def false_alarms_per_hour(self) -> float:
        return self.false_alarms / self.adl_hours if self.adl_hours else float("nan")

    def line(self) -> str:
        parts = []
        if self.falls:
            parts.append(f"sens {self.sensitivity:.3f} ({self.detected}/{self.falls})")
        if self.adl_trials:
            parts.append(f"spec {self.specificity:.4f} ({self.adl_trials - self.adl_flagged}/{self.adl_trials})  "
                         f"FA/h {self.false_alarms_per_hour:.3f} ({self.false_alarms} in {self.adl_hours:.1f} h)")
        if self.delays_s:
            d = np.array(self.delays_s)
            parts.append(f"delay median {np.median(d):.2f} s p95 {np.percentile(d, 95):.2f} s max {d.max():.2f} s")
        return "  ".join(parts)


def summarise(outcomes: Iterable[TrialOutcome]) -> Figures:
    falls = detected = adl = flagged = alarms = 0
    hours = 0.0
    delays: list[float] = []
    for o in outcomes:
        if o.trial.is_fall:
            falls += 1
            if o.detections:
                detected += 1
                assert o.delay_s is not None
                delays.append(o.delay_s)
        else:
            adl += 1
            hours += o.trial.duration_s / 3600.0
            flagged += bool(o.detections)
            alarms += len(o.detections)
    return Figures(falls, detected, adl, flagged, hours, alarms, tuple(delays))


def stream_trial(trial: Trial, params: FallParams) -> tuple[TrialOutcome, float]:
    """Run one trial through a fresh detector in 0.2 s blocks; returns the outcome and CPU seconds."""
    detector = FallDetector(trial.sample_rate_hz, params)
    block = max(1, round(BLOCK_S * trial.sample_rate_hz))
    found = []
    cpu = 0.0
    for start in range(0, trial.samples.shape[0], block):
        chunk = trial.samples[start : start + block]
        t0 = time.process_time()
        detections = detector.process(chunk)
        cpu += time.process_time() - t0
        found.extend((d.impact_index, d.decided_index) for d in detections)
    return TrialOutcome(trial, tuple(found)), cpu


def report_shipped(trials: Sequence[Trial], params: FallParams) -> None:
    outcomes, cpu = [], 0.0
    for trial in trials:
        outcome, spent = stream_trial(trial, params)
        outcomes.append(outcome)
        cpu += spent
    samples = sum(t.samples.shape[0] for t in trials)
    rate = trials[0].sample_rate_hz
    print(f"  shipped model streamed through FallDetector in {BLOCK_S:g} s blocks (fitted on these subjects, "
          f"optimistic): CPU {1e6 * cpu / samples:.2f} us/sample over {samples} samples at {rate:g} Hz")
    for group in ("young", "elderly", "all"):
        print(f"    {group:8s} {summarise(o for o in outcomes if group in ('all', o.trial.group)).line()}")
    # The LOSO below scores events with the bench's own decision rule: it must be the detector's.
    events = [trial_events(t, params) for t in trials]
    table = build_table(trials, events)
    scores = logits(np.array([params.bias, *params.weights]), table.x)
    z = float(np.log(params.decision_threshold / (1 - params.decision_threshold)))
    agree = sum(decide(t, table, np.flatnonzero(table.trial == n), scores, z, params.refractory_s).detections
                == o.detections for n, (t, o) in enumerate(zip(trials, outcomes, strict=True)))
    print(f"    bench decision rule == streaming detector on {agree}/{len(trials)} trials")


def spread(values: Sequence[float]) -> str:
    v = np.array(values)
    return (f"min {v.min():.3f}  p25 {np.percentile(v, 25):.3f}  median {np.median(v):.3f}  "
            f"mean {v.mean():.3f}  std {v.std():.3f}")


def report_loso(outcomes: Sequence[TrialOutcome], folds: Sequence[FoldResult]) -> None:
    print("  nested leave-one-subject-out (model and threshold never saw the scored subject):")
    for group in ("young", "elderly", "all"):
        print(f"    {group:8s} {summarise(o for o in outcomes if group in ('all', o.trial.group)).line()}")

    by_code: dict[str, list[TrialOutcome]] = defaultdict(list)
    by_subject: dict[str, list[TrialOutcome]] = defaultdict(list)
    for o in outcomes:
        by_code[o.trial.activity].append(o)
        by_subject[o.trial.subject].append(o)
    print("    falls by code   (sensitivity, detected/falls, delay median/p95 s):")
    for code in sorted(c for c in by_code if c.startswith("F")):
        f = summarise(by_code[code])
        d = np.array(f.delays_s) if f.delays_s else np.array([np.nan])
        print(f"      {code}  {f.sensitivity:.3f}  {f.detected:3d}/{f.falls}  "
              f"{np.median(d):.2f}/{np.percentile(d, 95):.2f}")
    codes = {c: summarise(by_code[c]).sensitivity for c in by_code if c.startswith("F")}
    worst_code = min(codes, key=lambda c: codes[c])
    print(f"      worst code {worst_code} {codes[worst_code]:.3f}; codes: {spread(list(codes.values()))}")
    alarms = {c: summarise(by_code[c]).false_alarms for c in by_code if c.startswith("D")}
    print(f"    false alarms by ADL code: {({c: n for c, n in sorted(alarms.items()) if n})}")

    print("    by subject (sensitivity detected/falls; false alarms in ADL hours):")
    sens: dict[str, float] = {}
    lines = []
    for subject in sorted(by_subject):
        f = summarise(by_subject[subject])
        if f.falls:
            sens[subject] = f.sensitivity
        cell = f"{f.sensitivity:.3f} {f.detected:2d}/{f.falls}" if f.falls else " " * 11
        lines.append(f"{subject} {cell} FA {f.false_alarms} in {f.adl_hours:.2f} h")
    for i in range(0, len(lines), 3):
        print("      " + "  |  ".join(lines[i : i + 3]))
    worst = min(sens, key=lambda s: sens[s])
    print(f"      worst subject {worst} {sens[worst]:.3f}; subjects with falls: {spread(list(sens.values()))}")

    missed = sorted(o.trial.name for o in outcomes if o.trial.is_fall and not o.detections)
    print(f"    missed falls ({len(missed)}): {' '.join(missed)}")
    flagged = sorted(f"{o.trial.name}x{len(o.detections)}" for o in outcomes if not o.trial.is_fall and o.detections)
    print(f"    ADL trials with false alarms ({len(flagged)}): {' '.join(flagged)}")
    params = np.array([[f.params.bias, *f.params.weights, f.params.decision_threshold] for f in folds])
    print(f"    fold models (bias, weights per {FEATURE_SCALES}, threshold): mean {params.mean(axis=0).round(2)} "
          f"std {params.std(axis=0).round(2)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="SisFall-format .npz archive (200 Hz int16)")
    parser.add_argument("--rates", type=float, nargs="+", default=[50.0, 200.0])
    args = parser.parse_args()
    trials: list[Trial] = []
    for rate in args.rates:
        trials.extend(load_trials(args.data, rate))
    table = build_table(trials, [trial_events(t) for t in trials])
    folds = nested_loso(trials, table)
    for rate in args.rates:
        at_rate = [t for t in trials if t.sample_rate_hz == rate]
        print(f"{rate:g} Hz ({len(at_rate)} trials, {len({t.subject for t in at_rate})} subjects)")
        report_shipped(at_rate, DEFAULT_PARAMS)
        report_loso([o for f in folds for o in f.outcomes if o.trial.sample_rate_hz == rate], folds)


if __name__ == "__main__":
    main()
