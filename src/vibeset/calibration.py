"""Calibration and thresholds: Platt scaling of a score, and the threshold that meets an objective.

One implementation for every annotator that turns scores into labels on the golden dev split
(zero-shot, student, router), so "calibrated" and "threshold for precision 0.6" mean the same
thing everywhere.
"""

from __future__ import annotations

import numpy as np

from .errors import ConfigError
from .metrics import binary_metrics

OBJECTIVES = ("f1", "mcc", "precision:P")


def parse_objective(objective: str) -> tuple[str, float | None]:
    """'f1', 'mcc' or 'precision:0.8' -> (kind, target)."""
    if objective in ("f1", "mcc"):
        return objective, None
    if objective.startswith("precision:"):
        try:
            target = float(objective.split(":", 1)[1])
        except ValueError:
            target = -1.0
        if 0.0 < target < 1.0:
            return "precision", target
    raise ConfigError(f"objective must be f1, mcc or precision:P with 0 < P < 1, got {objective!r}")


def best_threshold(score: np.ndarray, truth: np.ndarray, objective: str) -> tuple[float, bool]:
    """The cut on ``score`` that best meets ``objective`` on ``truth``; the bool says whether a
    precision target was reached (the lowest cut that reaches it keeps the most recall)."""
    kind, target = parse_objective(objective)
    score, truth = np.asarray(score, dtype=float), np.asarray(truth, dtype=bool)
    candidates = np.unique(score)
    cuts = np.r_[candidates[0] - 1e-6, (candidates[:-1] + candidates[1:]) / 2, candidates[-1] + 1e-6]
    if kind == "precision":
        for cut in cuts:
            predicted = score >= cut
            if predicted.any() and truth[predicted].mean() >= target:
                return float(cut), True
        return float(cuts[-1]), False
    values = [binary_metrics(truth, score >= cut)[kind] for cut in cuts]
    return float(cuts[int(np.argmax(values))]), True


def platt(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(a, b) with sigmoid(a * x + b) calibrated on ``y``; a score ranked backwards on ``y`` keeps its
    own order (a = 1) and only its bias is fitted."""
    from sklearn.linear_model import LogisticRegression

    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=bool)
    model = LogisticRegression(C=1.0).fit(x[:, None], y)
    a, b = float(model.coef_[0, 0]), float(model.intercept_[0])
    if a <= 0:
        a, b = 1.0, float(np.log(y.mean() / (1 - y.mean())) - np.median(x))
    return a, b


def logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=float), 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.asarray(x, dtype=float)))


# -- the catalog's base rates and thresholds -------------------------------------------------------------
BASE_RATE_METHODS = ("bounds", "em", "mean")
#: a vibe is labelled on at least half and at most twice its estimated catalog base rate
SHARE_BAND = (0.5, 2.0)


def prior_shift(p: np.ndarray, prior: float, *, iterations: int = 500, tol: float = 1e-7) -> float:
    """The catalog prior of a class by EM (Saerens, Latinne & Decaestecker 2002): posteriors ``p`` calibrated
    under training prior ``prior`` are re-weighted until the prior they imply stops moving."""
    p = np.clip(np.asarray(p, dtype=float), 1e-6, 1 - 1e-6)
    prior = float(np.clip(prior, 1e-6, 1 - 1e-6))
    pi = prior
    for _ in range(iterations):
        up, down = pi / prior, (1 - pi) / (1 - prior)
        new = float(np.mean(up * p / (up * p + down * (1 - p))))
        if abs(new - pi) < tol:
            return new
        pi = new
    return pi


def base_rate(catalog: np.ndarray, dev_score: np.ndarray, dev_truth: np.ndarray, method: str) -> float:
    """A vibe's share of the catalog from its calibrated scores over the catalog (``catalog``) and on golden dev.

    Two bounds: the mean calibrated score (``mean``) is right if the golden set chose its pairs only by
    what the videos look like, and too high when a survey asked about a vibe only where it was plausible
    (unfamiliar videos' scores fall back towards the golden prevalence); the expected positives among
    catalog videos scored at least like the median golden dev positive (taking only those scores at their
    word) is a floor. ``bounds`` (the default): their geometric mean, the estimate whose worst-case ratio
    to any base rate between the bounds is smallest. ``em``: the EM prior-shift estimate (Saerens,
    Latinne & Decaestecker 2002), right if only the class balance moved, kept between the bounds; it
    collapses to the floor when the catalog looks less like a vibe than the golden negatives do.
    """
    if method not in BASE_RATE_METHODS:
        raise ConfigError(f"base_rate must be one of {BASE_RATE_METHODS}, got {method!r}")
    catalog, dev_truth = np.asarray(catalog, dtype=float), np.asarray(dev_truth, dtype=bool)
    ceiling = float(np.mean(catalog))
    if method == "mean" or len(np.unique(dev_truth)) < 2:
        return ceiling
    floor = min(float(catalog[catalog >= np.median(np.asarray(dev_score)[dev_truth])].sum() / len(catalog)), ceiling)
    if method == "bounds":
        return float(np.sqrt(max(floor, 1.0 / len(catalog)) * ceiling))
    return float(np.clip(prior_shift(catalog, float(dev_truth.mean())), floor, ceiling))


def _rates_at(score: np.ndarray, truth: np.ndarray, cuts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(TPR, FPR) of ``score >= cut`` for every cut (sorted scores, one pass)."""
    positives, negatives = np.sort(score[truth]), np.sort(score[~truth])
    tpr = 1 - np.searchsorted(positives, cuts, side="left") / max(len(positives), 1)
    fpr = 1 - np.searchsorted(negatives, cuts, side="left") / max(len(negatives), 1)
    return tpr, fpr


def _at(rate: float, tpr: np.ndarray, fpr: np.ndarray) -> dict[str, np.ndarray]:
    """Precision, F1 and MCC that TPR and FPR give at prevalence ``rate``."""
    tp, fp = rate * tpr, (1 - rate) * fpr
    fn, tn = rate - tp, (1 - rate) - fp
    with np.errstate(divide="ignore", invalid="ignore"):
        denominator = np.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
        return {"precision": np.where(tp + fp > 0, tp / (tp + fp), 0.0),
                "f1": np.where(2 * tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn), 0.0),
                "mcc": np.where(denominator > 0, (tp * tn - fp * fn) / denominator, 0.0)}


def catalog_threshold(
    dev_score: np.ndarray, dev_truth: np.ndarray, catalog_score: np.ndarray, rate: float, objective: str,
    band: tuple[float, float] = SHARE_BAND,
) -> dict[str, float | bool]:
    """The cut on a calibrated score for the whole catalog, where the vibe's base rate is ``rate``.

    Every measure is the one golden dev's TPR and FPR give at prevalence ``rate``, not at the golden set's
    prevalence, which reflects how its pairs were picked. Only cuts that label between ``band[0]`` and
    ``band[1]`` times ``rate`` of the catalog are allowed. ``precision:P``: the lowest such cut whose
    precision reaches P; where none does, the best by MCC. ``mcc`` / ``f1``: the best by that measure.
    """
    kind, target = parse_objective(objective)
    dev_score, dev_truth = np.asarray(dev_score, dtype=float), np.asarray(dev_truth, dtype=bool)
    catalog = np.sort(np.asarray(catalog_score, dtype=float))
    cuts = np.unique(np.quantile(catalog, np.linspace(0.0, 1.0, 1001)))
    share = 1 - np.searchsorted(catalog, cuts, side="left") / len(catalog)
    tpr, fpr = _rates_at(dev_score, dev_truth, cuts)
    at_base = _at(rate, tpr, fpr)
    allowed = (share >= band[0] * rate) & (share <= band[1] * rate)
    if not allowed.any():  # ties in the scores: the cut whose share is nearest the base rate
        allowed = np.abs(share - rate) == np.abs(share - rate).min()
    hits = np.flatnonzero(allowed & (at_base["precision"] >= target)) if kind == "precision" else np.array([], int)
    reached = kind != "precision" or bool(hits.size)
    if hits.size:
        best = int(hits[0])
    else:
        best = int(np.argmax(np.where(allowed, at_base["f1" if kind == "f1" else "mcc"], -np.inf)))
    return {"threshold": float(cuts[best]), "reached": reached, "share_labelled": float(share[best]),
            "precision_at_base_rate": float(at_base["precision"][best]), "recall": float(tpr[best])}


def calibrate_catalog(
    dev_vibes: np.ndarray, dev_truth: np.ndarray, dev_score: np.ndarray, catalog: np.ndarray, names: list[str],
    declared: dict[str, float | None], objective: str, method: str,
) -> dict[str, dict[str, float | bool | str]]:
    """Per vibe: golden dev prevalence, catalog base rate (declared in the taxonomy, else estimated by ``method``
    from the calibrated ``catalog`` scores, videos x vibes), and the catalog threshold for ``objective``."""
    table = {}
    for j, name in enumerate(names):
        rows = dev_vibes == j
        truth, score = dev_truth[rows].astype(bool), dev_score[rows]
        prevalence = float(truth.mean()) if rows.any() else float(np.mean(dev_truth))
        rate = declared.get(name) or base_rate(catalog[:, j], score, truth, method)
        rate = float(np.clip(rate, 1.0 / len(catalog), 1.0))
        if len(np.unique(truth)) == 2:
            cut = catalog_threshold(score, truth, catalog[:, j], rate, objective)
        else:  # no evidence of both kinds on dev: label the top base-rate share
            threshold = float(np.quantile(catalog[:, j], 1.0 - rate))
            cut = {"threshold": threshold, "reached": False, "share_labelled": float(np.mean(catalog[:, j] >= threshold))}
        table[name] = {"golden_prevalence": prevalence, "base_rate": rate,
                       "base_rate_from": "taxonomy" if declared.get(name) else method, **cut}
    return table
