"""Fall detector figures on SisFall-format data, streamed block by block like a real wearable.

    python bench/falls.py --data /path/to/sisfall_dev_acc.npz [--rates 200 50] [--cv-folds 5]

Trial-level definitions (fall-detection.md asks to state them):
- every trial is streamed through a fresh ``FallDetector`` in blocks of 0.2 s (10 samples at 50 Hz);
- a fall trial is *detected* if a detection's impact lies in the trial;
- an ADL trial is a *false positive* if any detection fires; every detection in ADL data is a false
  alarm (false alarms per hour = detections / hours of ADL data);
- detection delay = decided time - impact time, impact = the trial's largest |a|, for the detection
  nearest that impact.

The figures of the shipped model are optimistic (it was fitted on these subjects); the subject-wise
cross-validation figures that follow (model refitted without the held-out subjects) are the honest
estimate for people the detector has never seen.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from fall_tune import Trial, TrialOutcome, cross_validate, load_trials, summarise, trial_candidates

from gateway.detect.falls import FallDetector

BLOCK_S = 0.2


def stream_trial(trial: Trial) -> tuple[TrialOutcome, float]:
    """Run one trial through a fresh detector; returns the outcome and CPU seconds spent in ``process``."""
    detector = FallDetector(trial.sample_rate_hz)
    block = max(1, round(BLOCK_S * trial.sample_rate_hz))
    detections = []
    cpu = 0.0
    for start in range(0, trial.samples.shape[0], block):
        chunk = trial.samples[start : start + block]
        t0 = time.process_time()
        detections.extend(detector.process(chunk))
        cpu += time.process_time() - t0
    delay = None
    if detections:
        nearest = min(detections, key=lambda d: abs(d.impact_index - trial.impact_index))
        delay = (nearest.decided_index - trial.impact_index) / trial.sample_rate_hz
    return TrialOutcome(trial, len(detections), delay), cpu


def report_rate(trials: list[Trial], cv_folds: int) -> None:
    rate = trials[0].sample_rate_hz
    outcomes: list[TrialOutcome] = []
    cpu = 0.0
    for trial in trials:
        outcome, spent = stream_trial(trial)
        outcomes.append(outcome)
        cpu += spent
    samples = sum(t.samples.shape[0] for t in trials)
    block = max(1, round(BLOCK_S * rate))
    print(f"{rate:.0f} Hz, blocks of {block} samples, CPU {1e6 * cpu / samples:.2f} us/sample ({samples} samples)")
    print("  shipped model (fitted on these subjects):")
    for group in ("young", "elderly", "all"):
        chosen = [o for o in outcomes if group in ("all", o.trial.group)]
        print(f"    {group:8s} {summarise(chosen).line()}")

    per_trial = [trial_candidates(t) for t in trials]
    cv_outcomes, fitted = cross_validate(trials, per_trial, cv_folds)
    print(f"  subject-wise {cv_folds}-fold cross-validation (held-out subjects, model refitted per fold on this rate):")
    for group in ("young", "elderly", "all"):
        chosen = [o for o in cv_outcomes if group in ("all", o.trial.group)]
        print(f"    {group:8s} {summarise(chosen).line()}")
    spread = np.array([[p.bias, *p.weights] for p in fitted])
    print(f"    fold (bias, weights) std {spread.std(axis=0).round(2)} around mean {spread.mean(axis=0).round(2)}")
    flagged: dict[str, int] = {}
    for o in outcomes:
        if not o.trial.is_fall and o.detections:
            flagged[o.trial.activity] = flagged.get(o.trial.activity, 0) + o.detections
    missed = sorted({o.trial.activity for o in outcomes if o.trial.is_fall and not o.detections})
    print(f"  false alarms by ADL: {dict(sorted(flagged.items()))}; missed falls in: {missed}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="SisFall-format .npz archive (200 Hz int16)")
    parser.add_argument("--rates", type=float, nargs="+", default=[200.0, 50.0])
    parser.add_argument("--cv-folds", type=int, default=5)
    args = parser.parse_args()
    for rate in args.rates:
        report_rate(load_trials(args.data, rate), args.cv_folds)


if __name__ == "__main__":
    main()
