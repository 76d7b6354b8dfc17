"""Fit the fall detector's two models and judge them by nested leave-one-subject-out cross-validation.

    python bench/fall_tune.py --data /path/to/sisfall_dev_acc.npz [--rates 50 200]

Only the logistic models (weights, bias) and their two decision thresholds are fitted: 4 + 6 + 2
numbers. The windows and gates in ``gateway.detect.fall_model.FallParams`` are physically motivated
and fixed. Candidates from every rate in ``--rates`` are pooled so one model serves all wearables.

Each wearer's upright is learnt the way the hub learns it, by streaming that person's walking
(SisFall D01, 100 s) through the detector's ``UprightLearner``; no label is involved.

Training labels (candidate level, per kind): a candidate in a fall trial within
``POSITIVE_TOLERANCE_S`` of the trial's largest |a| is a fall; every candidate in an ADL trial is not;
other candidates in fall trials (a stumble before, rolling after) are left out of training because
their truth is unknown. Each model only sees the candidates that pass its gates.

Honest figures (``nested_loso``): for each subject in turn, the models are fitted on the *other*
subjects and the thresholds chosen by an inner leave-one-subject-out run over those other subjects
only (``choose_thresholds``); the held-out subject is then scored once. Nothing about the scored
subject, not even which threshold works for it, reaches its own model. This script prints the models
fitted on all subjects (to paste into ``fall_model.py``); ``bench/falls.py`` prints the report.
"""

from __future__ import annotations

import argparse
import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from gateway.detect.fall_evidence import FallCandidates, FallEvidence
from gateway.detect.fall_model import DEFAULT_PARAMS, FallKind, FallParams, LogisticModel
from gateway.detect.falls import admissible
from gateway.detect.features import decimate
from gateway.detect.posture import UprightLearner

SISFALL_RATE_HZ = 200.0
COUNTS_PER_G = 256.0
POSITIVE_TOLERANCE_S = 1.0
KINDS = (FallKind.IMPACT, FallKind.LOW_ENERGY)
THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.97, 0.98, 0.99, 0.995)
"""Decision thresholds the inner cross-validation chooses from, for each kind (0.98 and 0.995 added in
the second round: the sharper low-energy model has its useful range at the top)."""
FALSE_ALARM_BUDGET_PER_H = 0.0
"""The threshold rule: the most sensitive pair of thresholds among those whose inner cross-validation
gives at most this many false alarms per ADL hour, or the fewest false alarms any pair gives if that is
more; ties go to fewer false alarms, then to higher thresholds.

The first round allowed the issue's target, 0.1 per hour. A rule that spends the whole target on the
28 inner subjects lands above it on the 29th about as often as below: the target is a ceiling, so the
second round asks for the fewest false alarms. This was changed after the first round's outer figures
were seen; docs/falls.md shows both rules (``--fa-budget 0.1`` reproduces the first)."""
L2_PENALTY = 1.0
"""Ridge on the standardised weights: with ~1000 positives it barely matters, it only keeps the
Newton steps finite when the classes are almost separable."""
WALKING_TRIAL = "D01"
FEATURE_SCALES = {"peak_g": 1.0, "descent_g": 0.1, "descent_speed_mps": 1.0, "sink_speed_mps": 1.0,
                  "variability_g": 0.1,
                  "posture_change_deg": 90.0, "tilt_before_deg": 90.0, "tilt_after_deg": 90.0, "tilt_gain_deg": 90.0,
                  "stillness_g": 0.1, "turn_rate_dps": 360.0, "overshoot_deg": 90.0}
"""The typical unit each feature is divided by before a model weighs it (as in the shipped models)."""


def with_low_energy_features(base: FallParams, features: Sequence[str] | None) -> FallParams:
    """``base`` with a low-energy model reading ``features`` instead, its weights left to fitting: the
    ablations in docs/falls.md (``--low-energy-features variability_g tilt_gain_deg tilt_after_deg`` is
    the first round's evidence)."""
    if not features:
        return base
    unknown = sorted(set(features) - FEATURE_SCALES.keys())
    if unknown:
        raise SystemExit(f"--low-energy-features: {unknown} not measured; choose from {sorted(FEATURE_SCALES)}")
    zeros = tuple(0.0 for _ in features)
    return replace(base, low_energy=LogisticModel(tuple(features), tuple(FEATURE_SCALES[f] for f in features), zeros,
                                                  0.0, 0.5))


def with_lying_deg(base: FallParams, lying_deg: float | None) -> FallParams:
    """``base`` with the low-energy path's posture gate at ``lying_deg`` (the fourth round's ablation:
    ``--lying-deg 50`` is the gate before it)."""
    return base if lying_deg is None else replace(base, lying_deg=lying_deg)


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


Uprights = Mapping[tuple[str, float], np.ndarray | None]


def learn_uprights(trials: Sequence[Trial]) -> dict[tuple[str, float], np.ndarray | None]:
    """Each subject's upright at each rate, learnt from their walking trial as the hub would."""
    uprights: dict[tuple[str, float], np.ndarray | None] = {}
    for trial in trials:
        if trial.activity == WALKING_TRIAL:
            learner = UprightLearner(trial.sample_rate_hz)
            learner.feed(0, trial.samples)
            uprights[(trial.subject, trial.sample_rate_hz)] = learner.upright
    return uprights


def upright_of(trial: Trial, uprights: Uprights | None) -> np.ndarray | None:
    return None if uprights is None else uprights.get((trial.subject, trial.sample_rate_hz))


def trial_evidence(trial: Trial, params: FallParams = DEFAULT_PARAMS,
                   uprights: Uprights | None = None) -> list[FallEvidence]:
    # Block-size invariance (tested) lets the bench feed whole trials at once.
    return FallCandidates(trial.sample_rate_hz, params, upright_of(trial, uprights)).process(trial.samples)


@dataclass(frozen=True)
class Table:
    """One kind's admissible candidates of many trials as arrays, for fitting and fast threshold sweeps."""

    x: np.ndarray         # (n, k) model inputs divided by the model's scales
    label: np.ndarray     # 1 fall, 0 ADL, -1 unknown (fall trial, not the impact)
    trial: np.ndarray     # index into the trial list
    impact: np.ndarray
    decided: np.ndarray
    offsets: np.ndarray   # rows of trial n are offsets[n]:offsets[n + 1]

    def rows(self, n: int) -> slice:
        return slice(int(self.offsets[n]), int(self.offsets[n + 1]))


def build_table(trials: Sequence[Trial], evidence: Sequence[Sequence[FallEvidence]], kind: FallKind,
                params: FallParams = DEFAULT_PARAMS) -> Table:
    model = params.model(kind)
    rows, labels, owners, impacts, decided, offsets = [], [], [], [], [], [0]
    for n, (trial, found) in enumerate(zip(trials, evidence, strict=True)):
        truth = trial.impact_index
        for ev in found:
            if ev.kind is not kind or not admissible(params, ev):
                continue
            rows.append(np.array(ev.values(model.features)) / np.array(model.scales))
            if not trial.is_fall:
                labels.append(0)
            elif abs(ev.impact_index - truth) <= POSITIVE_TOLERANCE_S * trial.sample_rate_hz:
                labels.append(1)
            else:
                labels.append(-1)
            owners.append(n)
            impacts.append(ev.impact_index)
            decided.append(ev.decided_index)
        offsets.append(len(owners))
    return Table(np.array(rows).reshape(-1, len(model.features)), np.array(labels, dtype=int),
                 np.array(owners, dtype=int), np.array(impacts, dtype=int), np.array(decided, dtype=int),
                 np.array(offsets))


def build_tables(trials: Sequence[Trial], evidence: Sequence[Sequence[FallEvidence]],
                 params: FallParams = DEFAULT_PARAMS) -> dict[FallKind, Table]:
    return {kind: build_table(trials, evidence, kind, params) for kind in KINDS}


def fit_logistic(x: np.ndarray, y: np.ndarray, penalty: float = L2_PENALTY) -> np.ndarray:
    """Penalised logistic regression by Newton's method (IRLS); returns (bias, *weights)."""
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
    return beta


def fit_rows(table: Table, rows: np.ndarray) -> np.ndarray:
    known = rows & (table.label >= 0)
    if len(set(table.label[known])) < 2:  # e.g. no low-energy candidate at all before any upright is learnt
        return np.array([-np.inf, *np.zeros(table.x.shape[1])])
    return fit_logistic(table.x[known], table.label[known].astype(np.float64))


def refit(model: LogisticModel, beta: np.ndarray, threshold: float) -> LogisticModel:
    return replace(model, bias=round(float(beta[0]), 3), weights=tuple(round(float(w), 3) for w in beta[1:]),
                   threshold=threshold)


def with_models(base: FallParams, betas: Mapping[FallKind, np.ndarray],
                thresholds: Mapping[FallKind, float]) -> FallParams:
    return replace(base, impact=refit(base.impact, betas[FallKind.IMPACT], thresholds[FallKind.IMPACT]),
                   low_energy=refit(base.low_energy, betas[FallKind.LOW_ENERGY], thresholds[FallKind.LOW_ENERGY]))


def model_scores(tables: Mapping[FallKind, Table], params: FallParams) -> dict[FallKind, np.ndarray]:
    """Logits of every candidate under the given models (fitted as rounded in ``params``)."""
    return {kind: params.model(kind).bias + table.x @ np.array(params.model(kind).weights)
            for kind, table in tables.items()}


@dataclass(frozen=True)
class TrialOutcome:
    trial: Trial
    detections: tuple[tuple[int, int, FallKind], ...]   # (impact_index, decided_index, kind)

    def nearest(self) -> tuple[int, int, FallKind] | None:
        """The detection nearest the trial's largest |a|."""
        if not self.detections:
            return None
        return min(self.detections, key=lambda d: abs(d[0] - self.trial.impact_index))

    @property
    def delay_s(self) -> float | None:
        """decided - impact for the detection nearest the trial's largest |a|."""
        nearest = self.nearest()
        if nearest is None:
            return None
        return (nearest[1] - self.trial.impact_index) / self.trial.sample_rate_hz


def logit(p: float) -> float:
    return math.log(p / (1 - p))


def decide(trials: Sequence[Trial], n: int, tables: Mapping[FallKind, Table], scores: Mapping[FallKind, np.ndarray],
           thresholds: Mapping[FallKind, float], refractory_s: float) -> TrialOutcome:
    """What FallDetector reports for trial ``n``, from its candidates' scores (same refractory rule)."""
    fired: list[tuple[int, int, FallKind]] = []
    for kind, table in tables.items():
        rows = table.rows(n)
        hit = np.flatnonzero(scores[kind][rows] >= logit(thresholds[kind])) + rows.start
        fired.extend((int(table.impact[i]), int(table.decided[i]), kind) for i in hit)
    fired.sort(key=lambda d: (d[1], d[0]))
    trial = trials[n]
    refractory = round(refractory_s * trial.sample_rate_hz)
    until = -1
    found = []
    for impact, decided, kind in fired:
        if impact >= until:
            found.append((impact, decided, kind))
            until = impact + refractory
    return TrialOutcome(trial, tuple(found))


Curve = list[tuple[dict[FallKind, float], float, int]]


def sweep(trials: Sequence[Trial], tables: Mapping[FallKind, Table], trial_ids: np.ndarray,
          scores: Mapping[FallKind, np.ndarray], refractory_s: float) -> Curve:
    """(thresholds, sensitivity, false alarms) on these trials, for every pair of THRESHOLDS."""
    falls = np.array([n for n in trial_ids if trials[n].is_fall], dtype=int)
    best = {}
    suspects: set[int] = set()
    for kind, table in tables.items():
        best[kind] = np.full(len(trials), -np.inf)
        chosen = np.isin(table.trial, trial_ids)
        np.maximum.at(best[kind], table.trial[chosen], scores[kind][chosen])
        alarming = chosen & (table.label == 0) & (scores[kind] >= logit(min(THRESHOLDS)))
        suspects.update(int(n) for n in table.trial[alarming])
    curve: Curve = []
    for pair in itertools.product(THRESHOLDS, repeat=len(KINDS)):
        thresholds = dict(zip(KINDS, pair, strict=True))
        detected = np.zeros(len(falls), dtype=bool)
        for kind in KINDS:
            detected |= best[kind][falls] >= logit(thresholds[kind])
        alarms = sum(len(decide(trials, n, tables, scores, thresholds, refractory_s).detections) for n in suspects)
        curve.append((thresholds, float(detected.mean()) if len(falls) else math.nan, alarms))
    return curve


def choose_thresholds(curve: Curve, adl_hours: float,
                      budget_per_h: float = FALSE_ALARM_BUDGET_PER_H) -> dict[FallKind, float]:
    allowed = max(budget_per_h * adl_hours, min(c[2] for c in curve))
    within = [c for c in curve if c[2] <= allowed]
    return max(within, key=lambda c: (c[1], -c[2], sum(c[0].values())))[0]


@dataclass(frozen=True)
class FoldResult:
    held_out: str
    params: FallParams
    outcomes: list[TrialOutcome]


def subjects_of(trials: Sequence[Trial]) -> np.ndarray:
    return np.array([t.subject for t in trials])


def loso_scores(trials: Sequence[Trial], tables: Mapping[FallKind, Table],
                subjects: Iterable[str]) -> dict[FallKind, np.ndarray]:
    """Out-of-fold logits for the candidates of ``subjects``, each from models fitted on the others."""
    subject = subjects_of(trials)
    chosen = list(subjects)
    scores = {}
    for kind, table in tables.items():
        owner = subject[table.trial]
        scores[kind] = np.full(len(owner), -np.inf)
        for s in chosen:
            train = np.isin(owner, chosen) & (owner != s)
            test = owner == s
            beta = fit_rows(table, train)
            scores[kind][test] = beta[0] + table.x[test] @ beta[1:]
    return scores


def adl_hours(trials: Sequence[Trial], ids: Iterable[int]) -> float:
    return sum(trials[n].duration_s for n in ids if not trials[n].is_fall) / 3600.0


def nested_loso(trials: Sequence[Trial], tables: Mapping[FallKind, Table], base: FallParams = DEFAULT_PARAMS,
                budget_per_h: float = FALSE_ALARM_BUDGET_PER_H) -> list[FoldResult]:
    """Leave one subject out; the thresholds come from an inner leave-one-subject-out on the rest."""
    subject = subjects_of(trials)
    folds = []
    for held_out in sorted(set(subject)):
        train_ids = np.flatnonzero(subject != held_out)
        inner = loso_scores(trials, tables, sorted(set(subject) - {held_out}))
        thresholds = choose_thresholds(sweep(trials, tables, train_ids, inner, base.refractory_s),
                                       adl_hours(trials, train_ids), budget_per_h)
        betas = {kind: fit_rows(table, subject[table.trial] != held_out) for kind, table in tables.items()}
        params = with_models(base, betas, thresholds)
        scores = model_scores(tables, params)
        outcomes = [decide(trials, int(n), tables, scores, thresholds, base.refractory_s)
                    for n in np.flatnonzero(subject == held_out)]
        folds.append(FoldResult(held_out, params, outcomes))
    return folds


def fit_all(trials: Sequence[Trial], tables: Mapping[FallKind, Table], base: FallParams = DEFAULT_PARAMS,
            budget_per_h: float = FALSE_ALARM_BUDGET_PER_H) -> FallParams:
    """The shipped models: weights from every subject, thresholds from one leave-one-subject-out run."""
    scores = loso_scores(trials, tables, sorted(set(subjects_of(trials))))
    ids = np.arange(len(trials))
    thresholds = choose_thresholds(sweep(trials, tables, ids, scores, base.refractory_s), adl_hours(trials, ids),
                                   budget_per_h)
    betas = {kind: fit_rows(table, np.ones(len(table.trial), dtype=bool)) for kind, table in tables.items()}
    return with_models(base, betas, thresholds)


def load(path: Path, rates: Sequence[float], params: FallParams = DEFAULT_PARAMS, warm: bool = True,
         ) -> tuple[list[Trial], dict[FallKind, Table], Uprights | None]:
    """Trials at every rate, each wearer's upright (``warm``) and the candidate tables."""
    trials: list[Trial] = []
    for rate in rates:
        trials.extend(load_trials(path, rate))
    uprights = learn_uprights(trials) if warm else None
    tables = build_tables(trials, [trial_evidence(t, params, uprights) for t in trials], params)
    return trials, tables, uprights


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="SisFall-format .npz archive (200 Hz int16)")
    parser.add_argument("--rates", type=float, nargs="+", default=[50.0, 200.0])
    parser.add_argument("--fa-budget", type=float, default=FALSE_ALARM_BUDGET_PER_H,
                        help="false alarms per ADL hour the threshold rule may spend in its inner cross-validation")
    parser.add_argument("--low-energy-features", nargs="+", help="fit a low-energy model reading these instead")
    parser.add_argument("--lying-deg", type=float,
                        help="the low-energy path's posture gate instead of the shipped one (an ablation)")
    args = parser.parse_args()
    base = with_lying_deg(with_low_energy_features(DEFAULT_PARAMS, args.low_energy_features), args.lying_deg)
    trials, tables, _ = load(args.data, args.rates, base)
    final = fit_all(trials, tables, base, budget_per_h=args.fa_budget)
    print(f"fitted on all subjects at {args.rates} Hz, paste into gateway/detect/fall_model.py:")
    for kind in KINDS:
        model = final.model(kind)
        print(f"  {kind}: weights={model.weights}, bias={model.bias}, threshold={model.threshold}")
        print(f"    {model.describe()}")


if __name__ == "__main__":
    main()
