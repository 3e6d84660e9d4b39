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
