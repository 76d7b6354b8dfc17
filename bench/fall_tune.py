"""Fit the fall detector's logistic model with subject-wise cross-validation (reproducible tuning).

    python bench/fall_tune.py --data /path/to/sisfall_dev_acc.npz [--rates 50 200] [--cv-folds 5]

Only the 4 numbers of the logistic model (3 weights + bias) are fitted; the windows in
``gateway.detect.fall_model.FallParams`` are physically motivated and fixed. Candidates from every
rate in ``--rates`` are pooled so one model serves all wearables.

Training labels (candidate level): an impact candidate in a fall trial within ``POSITIVE_TOLERANCE_S``
of the trial's largest |a| is a fall; every candidate in an ADL trial is not; other candidates in fall
trials (a stumble before, rolling after) are left out of training because their truth is unknown.

Folds are formed by SUBJECT, never by trial: a person's trials are all in training or all held out,
so the figures estimate performance on people the model has not seen. Prints the CV figures and the
final weights (fitted on all subjects) to paste into ``fall_model.py``.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from gateway.detect.fall_model import DEFAULT_PARAMS, FEATURE_SCALES, FallParams
from gateway.detect.falls import ImpactCandidate, ImpactCandidates
from gateway.detect.features import decimate

SISFALL_RATE_HZ = 200.0
COUNTS_PER_G = 256.0
POSITIVE_TOLERANCE_S = 1.0
THRESHOLD_CURVE = (0.5, 0.7, 0.8, 0.85, 0.9, 0.95)
"""The operating point is chosen from this CV curve, not fitted: the shipped 0.9 keeps 1.5 points of
sensitivity above the 95 % target for unseen people while cutting false alarms sixfold against 0.5;
0.95 meets the false-alarm target on the dev split but leaves no sensitivity margin."""
L2_PENALTY = 1.0
"""Ridge on the standardised weights: with ~1000 positives it barely matters, it only keeps the
Newton steps finite when the classes are almost separable."""


@dataclass(frozen=True)
class Trial:
    name: str
    activity: str     # D01..D19, F01..F15
    subject: str      # SA01.., SE01..
    samples: np.ndarray
    sample_rate_hz: float

    @property
    def is_fall(self) -> bool:
        return self.activity.startswith("F")

    @property
    def group(self) -> str:
        return "elderly" if self.subject.startswith("SE") else "young"

    @property
    def duration_s(self) -> float:
        return self.samples.shape[0] / self.sample_rate_hz

    @property
    def impact_index(self) -> int:
        """The trial's largest |a| (the fall's impact in fall trials)."""
        return int(np.argmax(np.linalg.norm(self.samples, axis=1)))


def load_trials(path: Path, rate_hz: float) -> list[Trial]:
    """SisFall-format archive at 200 Hz, decimated with an anti-alias filter to ``rate_hz``."""
    factor = round(SISFALL_RATE_HZ / rate_hz)
    if factor < 1 or abs(SISFALL_RATE_HZ / factor - rate_hz) > 1e-9:
        raise SystemExit(f"--rates: {rate_hz} Hz is not 200 Hz divided by an integer")
    trials = []
    with np.load(path) as archive:
        for name in sorted(archive.files):
            activity, subject, _ = name.split("_")
            samples = decimate(archive[name].astype(np.float64) / COUNTS_PER_G, factor, SISFALL_RATE_HZ)
            trials.append(Trial(name, activity, subject, samples, rate_hz))
    return trials


def trial_candidates(trial: Trial, params: FallParams = DEFAULT_PARAMS) -> list[ImpactCandidate]:
    # Block-size invariance (tested) lets tuning feed whole trials at once.
    return ImpactCandidates(trial.sample_rate_hz, params).process(trial.samples)


@dataclass(frozen=True)
class LabelledCandidates:
    features: np.ndarray    # (n, k) scaled features
    label: np.ndarray       # 1 fall impact, 0 ADL, -1 unknown (fall trial, not the impact)
    trial: np.ndarray       # trial number in the list given
    impact: np.ndarray      # impact_index of each candidate


def label_candidates(
    trials: Sequence[Trial], per_trial: Sequence[list[ImpactCandidate]], posture_gate_deg: float
) -> LabelledCandidates:
    """Label the candidates that pass the posture gate (the model never sees the others)."""
    feats, labels, owners, impacts = [], [], [], []
    for n, (trial, cands) in enumerate(zip(trials, per_trial, strict=True)):
        truth = trial.impact_index
        for cand in cands:
            if cand.posture_change_deg < posture_gate_deg:
                continue
            feats.append(np.array(cand.features()) / np.array(FEATURE_SCALES))
            if not trial.is_fall:
                labels.append(0)
            elif abs(cand.impact_index - truth) <= POSITIVE_TOLERANCE_S * trial.sample_rate_hz:
                labels.append(1)
            else:
                labels.append(-1)
            owners.append(n)
            impacts.append(cand.impact_index)
    features = np.array(feats).reshape(-1, len(FEATURE_SCALES))
    return LabelledCandidates(features, np.array(labels), np.array(owners), np.array(impacts))


def fit_logistic(x: np.ndarray, y: np.ndarray, penalty: float = L2_PENALTY) -> tuple[float, tuple[float, ...]]:
    """Penalised logistic regression by Newton's method (IRLS); returns (bias, weights)."""
    design = np.hstack([np.ones((x.shape[0], 1)), x])
    beta = np.zeros(design.shape[1])
    ridge = np.eye(design.shape[1]) * penalty
    ridge[0, 0] = 0.0  # the bias is not shrunk
    for _ in range(50):
        p = 1.0 / (1.0 + np.exp(-np.clip(design @ beta, -60, 60)))
        grad = design.T @ (p - y) + ridge @ beta
        hess = (design * (p * (1 - p))[:, None]).T @ design + ridge
        step = np.linalg.solve(hess, grad)
        beta -= step
        if float(np.abs(step).max()) < 1e-8:
            break
    return float(beta[0]), tuple(float(b) for b in beta[1:])


def subject_folds(subjects: Iterable[str], n_folds: int, seed: int = 20261123) -> list[list[str]]:
    """Deal young and elderly subjects separately round-robin so every fold holds both groups."""
    rng = np.random.default_rng(seed)
    folds: list[list[str]] = [[] for _ in range(n_folds)]
    unique = sorted(set(subjects))
    slot = 0
    for prefix in ("SA", "SE"):
        group = [s for s in unique if s.startswith(prefix)]
        for s in rng.permutation(group):
            folds[slot % n_folds].append(str(s))
            slot += 1
    return folds


def fit_params(
    trials: Sequence[Trial], per_trial: Sequence[list[ImpactCandidate]], base: FallParams = DEFAULT_PARAMS
) -> FallParams:
    labelled = label_candidates(trials, per_trial, base.posture_gate_deg)
    known = labelled.label >= 0
    bias, weights = fit_logistic(labelled.features[known], labelled.label[known].astype(np.float64))
    return replace(base, bias=round(bias, 3), weights=tuple(round(w, 3) for w in weights))


@dataclass(frozen=True)
class TrialOutcome:
    trial: Trial
    detections: int
    delay_s: float | None   # decided - impact for the detection nearest the trial's impact


def decide(trial: Trial, cands: Sequence[ImpactCandidate], params: FallParams) -> TrialOutcome:
    """What FallDetector would report for this trial, from its candidates (same refractory rule)."""
    refractory = round(params.refractory_s * trial.sample_rate_hz)
    until = -1
    fired: list[ImpactCandidate] = []
    for cand in cands:
        if cand.impact_index >= until and params.confidence(cand.features()) >= params.decision_threshold:
            fired.append(cand)
            until = cand.impact_index + refractory
    delay = None
    if fired:
        nearest = min(fired, key=lambda c: abs(c.impact_index - trial.impact_index))
        delay = (nearest.decided_index - trial.impact_index) / trial.sample_rate_hz
    return TrialOutcome(trial, len(fired), delay)


@dataclass(frozen=True)
class Figures:
    falls: int
    falls_detected: int
    adl_trials: int
    adl_flagged: int
    adl_hours: float
    false_alarms: int
    delays_s: tuple[float, ...]

    @property
    def sensitivity(self) -> float:
        return self.falls_detected / self.falls if self.falls else math.nan

    @property
    def specificity(self) -> float:
        return 1.0 - self.adl_flagged / self.adl_trials if self.adl_trials else math.nan

    @property
    def false_alarms_per_hour(self) -> float:
        return self.false_alarms / self.adl_hours if self.adl_hours else math.nan

    def line(self) -> str:
        delays = np.array(self.delays_s)
        sens = f"{100 * self.sensitivity:5.1f}%" if self.falls else "  n/a "
        return (
            f"sens {sens} ({self.falls_detected}/{self.falls})  "
            f"spec {100 * self.specificity:5.1f}% ({self.adl_trials - self.adl_flagged}/{self.adl_trials})  "
            f"FA/h {self.false_alarms_per_hour:.3f} ({self.false_alarms} in {self.adl_hours:.1f} h)  "
            + (f"delay median {np.median(delays):.2f} s p95 {np.percentile(delays, 95):.2f} s" if self.delays_s else "")
        )


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
            flagged += o.detections > 0
            alarms += o.detections
    return Figures(falls, detected, adl, flagged, hours, alarms, tuple(delays))


def cross_validate(
    trials: Sequence[Trial], per_trial: Sequence[list[ImpactCandidate]], n_folds: int, base: FallParams = DEFAULT_PARAMS
) -> tuple[list[TrialOutcome], list[FallParams]]:
    """Leave-subjects-out: fit on the other folds' subjects, decide on the held-out subjects' trials."""
    outcomes: list[TrialOutcome] = []
    fitted: list[FallParams] = []
    for held_out in subject_folds((t.subject for t in trials), n_folds):
        train = [n for n, t in enumerate(trials) if t.subject not in held_out]
        test = [n for n, t in enumerate(trials) if t.subject in held_out]
        params = fit_params([trials[n] for n in train], [per_trial[n] for n in train], base)
        fitted.append(params)
        outcomes.extend(decide(trials[n], per_trial[n], params) for n in test)
    return outcomes, fitted


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="SisFall-format .npz archive (200 Hz int16)")
    parser.add_argument("--rates", type=float, nargs="+", default=[50.0, 200.0])
    parser.add_argument("--cv-folds", type=int, default=5)
    args = parser.parse_args()

    trials: list[Trial] = []
    per_trial: list[list[ImpactCandidate]] = []
    for rate in args.rates:
        rate_trials = load_trials(args.data, rate)
        trials.extend(rate_trials)
        per_trial.extend(trial_candidates(t) for t in rate_trials)

    print(f"subject-wise {args.cv_folds}-fold CV (held-out subjects), rates {args.rates}, by decision threshold:")
    for threshold in THRESHOLD_CURVE:
        base = replace(DEFAULT_PARAMS, decision_threshold=threshold)
        outcomes, fitted = cross_validate(trials, per_trial, args.cv_folds, base)
        print(f"  threshold {threshold:.2f} {summarise(outcomes).line()}")
    spread = np.array([[p.bias, *p.weights] for p in fitted])
    print("  fold weights (bias, w...) mean", spread.mean(axis=0).round(2), "std", spread.std(axis=0).round(2))

    final = fit_params(trials, per_trial)
    print("fitted on all subjects, paste into gateway/detect/fall_model.py:")
    print(f"    weights: tuple[float, ...] = {final.weights}")
    print(f"    bias: float = {final.bias}")


if __name__ == "__main__":
    main()
