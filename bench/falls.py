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

Each wearer's upright is learnt from their walking trial first (bench/fall_tune.py), as the hub
learns it from the wearer's walking; a second, shorter LOSO shows the cold start, before any walking.

Also printed: the shipped models streamed in 0.2 s blocks through ``FallDetector`` (optimistic: they
were fitted on these subjects), with the CPU it costs per sample, and a check that the bench's
decision rule gives exactly what the streaming detector gives.
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from fall_tune import (
    FALSE_ALARM_BUDGET_PER_H,
    KINDS,
    FoldResult,
    Table,
    Trial,
    TrialOutcome,
    Uprights,
    adl_hours,
    build_tables,
    decide,
    load,
    loso_scores,
    model_scores,
    nested_loso,
    subjects_of,
    sweep,
    trial_evidence,
    upright_of,
    with_low_energy_features,
    with_lying_deg,
)

from gateway.detect.fall_model import DEFAULT_PARAMS, FallKind, FallParams
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
            parts.append(f"delay {delays(self.delays_s)}")
        return "  ".join(parts)


def delays(values: Sequence[float]) -> str:
    d = np.array(values)
    return f"median {np.median(d):.2f} s p95 {np.percentile(d, 95):.2f} s max {d.max():.2f} s"


def summarise(outcomes: Iterable[TrialOutcome]) -> Figures:
    falls = detected = adl = flagged = alarms = 0
    hours = 0.0
    found: list[float] = []
    for o in outcomes:
        if o.trial.is_fall:
            falls += 1
            if o.detections:
                detected += 1
                assert o.delay_s is not None
                found.append(o.delay_s)
        else:
            adl += 1
            hours += o.trial.duration_s / 3600.0
            flagged += bool(o.detections)
            alarms += len(o.detections)
    return Figures(falls, detected, adl, flagged, hours, alarms, tuple(found))


def groups(outcomes: Sequence[TrialOutcome], indent: str = "    ") -> None:
    for group in ("young", "elderly", "all"):
        print(f"{indent}{group:8s} {summarise(o for o in outcomes if group in ('all', o.trial.group)).line()}")


def stream_trial(trial: Trial, params: FallParams, uprights: Uprights | None) -> tuple[TrialOutcome, float]:
    """Run one trial through a fresh detector in 0.2 s blocks; returns the outcome and CPU seconds."""
    detector = FallDetector(trial.sample_rate_hz, params, upright_of(trial, uprights))
    block = max(1, round(BLOCK_S * trial.sample_rate_hz))
    found = []
    cpu = 0.0
    for start in range(0, trial.samples.shape[0], block):
        chunk = trial.samples[start : start + block]
        t0 = time.process_time()
        detections = detector.process(chunk)
        cpu += time.process_time() - t0
        found.extend((d.impact_index, d.decided_index, d.kind) for d in detections)
    return TrialOutcome(trial, tuple(found)), cpu


def report_shipped(trials: Sequence[Trial], params: FallParams, uprights: Uprights | None) -> None:
    outcomes, cpu = [], 0.0
    for trial in trials:
        outcome, spent = stream_trial(trial, params, uprights)
        outcomes.append(outcome)
        cpu += spent
    samples = sum(t.samples.shape[0] for t in trials)
    rate = trials[0].sample_rate_hz
    print(f"  shipped models streamed through FallDetector in {BLOCK_S:g} s blocks (fitted on these subjects, "
          f"optimistic): CPU {1e6 * cpu / samples:.2f} us/sample over {samples} samples at {rate:g} Hz")
    groups(outcomes)
    # The LOSO below scores candidates with the bench's own decision rule: it must be the detector's.
    tables = build_tables(trials, [trial_evidence(t, params, uprights) for t in trials], params)
    scores = model_scores(tables, params)
    thresholds = {kind: params.model(kind).threshold for kind in KINDS}
    agree = sum(decide(trials, n, tables, scores, thresholds, params.refractory_s).detections == o.detections
                for n, o in enumerate(outcomes))
    print(f"    bench decision rule == streaming detector on {agree}/{len(trials)} trials")


def spread(values: Sequence[float]) -> str:
    v = np.array(values)
    return (f"min {v.min():.3f}  p25 {np.percentile(v, 25):.3f}  median {np.median(v):.3f}  "
            f"mean {v.mean():.3f}  std {v.std():.3f}")


def kind_of(o: TrialOutcome) -> FallKind | None:
    nearest = o.nearest()
    return None if nearest is None else nearest[2]


def report_codes(outcomes: Sequence[TrialOutcome]) -> None:
    by_code: dict[str, list[TrialOutcome]] = defaultdict(list)
    for o in outcomes:
        by_code[o.trial.activity].append(o)
    print("    falls by code: sensitivity detected/falls, by kind, delay median/p95 s")
    codes: dict[str, float] = {}
    for code in sorted(c for c in by_code if c.startswith("F")):
        f = summarise(by_code[code])
        codes[code] = f.sensitivity
        kinds = [kind_of(o) for o in by_code[code]]
        d = np.array(f.delays_s) if f.delays_s else np.array([np.nan])
        print(f"      {code}  {f.sensitivity:.3f}  {f.detected:3d}/{f.falls}  impact {kinds.count(FallKind.IMPACT):2d} "
              f"low-energy {kinds.count(FallKind.LOW_ENERGY):2d}  {np.median(d):.2f}/{np.percentile(d, 95):.2f}")
    worst = min(codes, key=lambda c: codes[c])
    print(f"      worst code {worst} {codes[worst]:.3f}; codes: {spread(list(codes.values()))}")
    for kind in KINDS:
        values = [o.delay_s for o in outcomes if o.trial.is_fall and kind_of(o) is kind and o.delay_s is not None]
        if values:
            print(f"      delay of {kind} detections ({len(values)}): {delays(values)}")
    alarms = {c: summarise(by_code[c]).false_alarms for c in by_code if c.startswith("D")}
    print(f"    false alarms by ADL code: {({c: n for c, n in sorted(alarms.items()) if n})}")


def report_subjects(outcomes: Sequence[TrialOutcome]) -> None:
    by_subject: dict[str, list[TrialOutcome]] = defaultdict(list)
    for o in outcomes:
        by_subject[o.trial.subject].append(o)
    print("    by subject: sensitivity detected/falls, false alarms in ADL hours")
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


def report_loso(outcomes: Sequence[TrialOutcome]) -> None:
    print("  nested leave-one-subject-out (models and thresholds never saw the scored subject):")
    groups(outcomes)
    report_codes(outcomes)
    report_subjects(outcomes)
    missed = sorted(o.trial.name for o in outcomes if o.trial.is_fall and not o.detections)
    print(f"    missed falls ({len(missed)}): {' '.join(missed)}")
    flagged = sorted(f"{o.trial.name}x{len(o.detections)}" for o in outcomes if not o.trial.is_fall and o.detections)
    print(f"    ADL trials with false alarms ({len(flagged)}): {' '.join(flagged)}")


def report_curve(trials: Sequence[Trial], tables: Mapping[FallKind, Table], params: FallParams) -> None:
    """The trade-off the threshold rule chose from: LOSO models, every low-energy threshold."""
    scores = loso_scores(trials, tables, sorted(set(subjects_of(trials))))
    ids = np.arange(len(trials))
    hours = adl_hours(trials, ids)
    impact = params.impact.threshold
    print(f"  operating curve (all rates pooled, LOSO models, impact threshold {impact:g}; not nested):")
    for thresholds, sensitivity, alarms in sweep(trials, tables, ids, scores, params.refractory_s):
        if thresholds[FallKind.IMPACT] == impact:
            print(f"    low-energy threshold {thresholds[FallKind.LOW_ENERGY]:g}: sens {sensitivity:.3f}  "
                  f"false alarms {alarms} ({alarms / hours:.3f}/h)")


def report_folds(folds: Sequence[FoldResult]) -> None:
    for kind in KINDS:
        models = [f.params.model(kind) for f in folds]
        values = np.array([[m.bias, *m.weights, m.threshold] for m in models])
        print(f"  {kind} models over the {len(folds)} folds, (bias, {', '.join(models[0].features)}, threshold): "
              f"mean {values.mean(axis=0).round(2)} std {values.std(axis=0).round(2)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="SisFall-format .npz archive (200 Hz int16)")
    parser.add_argument("--rates", type=float, nargs="+", default=[50.0, 200.0])
    parser.add_argument("--no-cold", action="store_true", help="skip the cold-start LOSO (no upright learnt)")
    parser.add_argument("--fa-budget", type=float, default=FALSE_ALARM_BUDGET_PER_H,
                        help="false alarms per ADL hour the threshold rule may spend in its inner cross-validation")
    parser.add_argument("--low-energy-features", nargs="+",
                        help="score a low-energy model reading these instead of the shipped one's (an ablation)")
    parser.add_argument("--lying-deg", type=float,
                        help="the low-energy path's posture gate instead of the shipped one (an ablation)")
    args = parser.parse_args()
    base = with_lying_deg(with_low_energy_features(DEFAULT_PARAMS, args.low_energy_features), args.lying_deg)
    trials, tables, uprights = load(args.data, args.rates, base)
    learnt = sum(u is not None for u in (uprights or {}).values())
    print(f"uprights learnt from {learnt} of {len(uprights or {})} walking trials")
    folds = nested_loso(trials, tables, base, budget_per_h=args.fa_budget)
    cold = [] if args.no_cold else nested_loso(trials, load(args.data, args.rates, base, warm=False)[1], base,
                                               budget_per_h=args.fa_budget)
    for rate in args.rates:
        at_rate = [t for t in trials if t.sample_rate_hz == rate]
        print(f"{rate:g} Hz ({len(at_rate)} trials, {len({t.subject for t in at_rate})} subjects)")
        report_shipped(at_rate, DEFAULT_PARAMS, uprights)
        report_loso([o for f in folds for o in f.outcomes if o.trial.sample_rate_hz == rate])
        if cold:
            print("  cold start (no upright learnt: tilts from the direction before each event), nested LOSO:")
            groups([o for f in cold for o in f.outcomes if o.trial.sample_rate_hz == rate])
    report_folds(folds)
    report_curve(trials, tables, base)


if __name__ == "__main__":
    main()
