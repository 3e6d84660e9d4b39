"""The linear student: ridge regression of the teacher's logits on the standardised feature groups.

A linear student keeps what a linear teacher knows exactly (the evidence teacher is one linear
model per vibe over the same blocks), and with a few hundred silver videos (an LLM teacher on a
small workspace) it is the student that generalises: 384 text dimensions and 150 videos leave
an MLP nothing to learn from but noise. The penalty is chosen by K-fold cross-validation on the
silver set (held-out squared error of the teacher's logits), and the cross-fitted predictions
are kept: every silver video's logits from the fold that did not train on it, so the student's
scores on golden dev can be judged honestly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np

from ..calibration import logit
from ..errors import DataError
from ..hashing import content_hash

ALPHAS = (0.01, 0.1, 1.0, 10.0, 100.0, 1000.0, 10000.0)
FOLDS = 5


def folds_of(video_ids: Sequence[str], k: int = FOLDS) -> np.ndarray:
    """A fold per video from a hash of its id (stable across runs and catalogs)."""
    return np.array([int(content_hash(f"fold:{v}", 8), 16) % k for v in video_ids])


def teacher_logits(soft: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The teacher's scores as logits; a missing score becomes its vibe's mean logit (it pulls nowhere)."""
    values = logit(np.clip(soft, 1e-4, 1 - 1e-4))
    means = np.array([values[mask[:, j], j].mean() if mask[:, j].any() else 0.0 for j in range(values.shape[1])])
    return np.where(mask, values, means[None, :])


@dataclass
class LinearFit:
    """A fitted linear student: ``logits = standardise(blocks) @ weight + bias``."""

    groups: tuple[str, ...]
    mean: dict[str, np.ndarray]
    std: dict[str, np.ndarray]
    weight: np.ndarray
    bias: np.ndarray
    alpha: float
    cv: list[dict] = field(default_factory=list)
    oof: np.ndarray | None = None  # cross-fitted logits of the training rows

    def design(self, blocks: Mapping[str, np.ndarray]) -> np.ndarray:
        return np.hstack([(blocks[g] - self.mean[g]) / self.std[g] for g in self.groups])

    def logits(self, blocks: Mapping[str, np.ndarray]) -> np.ndarray:
        return self.design(blocks) @ self.weight + self.bias


def _solve(gram: np.ndarray, cross: np.ndarray, x_mean: np.ndarray, y_mean: np.ndarray, alphas: Sequence[float],
           back: np.ndarray | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
    """(weight, bias) for every penalty from one eigendecomposition of a centred Gram matrix; ``back`` maps a
    dual solution (rows) to weights (columns)."""
    values, vectors = np.linalg.eigh(gram)
    projected = vectors.T @ cross
    out = []
    for alpha in alphas:
        shrunk = vectors @ (projected / (np.maximum(values, 0.0) + alpha)[:, None])
        weight = shrunk if back is None else back @ shrunk
        out.append((weight, y_mean - x_mean @ weight))
    return out


class _Moments:
    """Per-fold sums of x'x, x'y, x and y, so the Gram matrix of any training set is a subtraction, not a product."""

    def __init__(self, x: np.ndarray, y: np.ndarray, folds: np.ndarray) -> None:
        self.x, self.y, self.folds = x, y, folds
        self.parts = {f: (x[folds == f].T @ x[folds == f], x[folds == f].T @ y[folds == f], x[folds == f].sum(0),
                          y[folds == f].sum(0), int((folds == f).sum())) for f in np.unique(folds)}

    def path(self, without: int | None, alphas: Sequence[float]) -> list[tuple[np.ndarray, np.ndarray]]:
        keep = [part for f, part in self.parts.items() if f != without]
        n = sum(part[4] for part in keep)
        x_mean, y_mean = sum(p[2] for p in keep) / n, sum(p[3] for p in keep) / n
        if n < self.x.shape[1]:  # more columns than rows: the dual, on the rows themselves
            rows = self.folds != without if without is not None else np.ones(len(self.folds), bool)
            xc = self.x[rows] - x_mean
            return _solve(xc @ xc.T, self.y[rows] - y_mean, x_mean, y_mean, alphas, back=xc.T)
        gram = sum(p[0] for p in keep) - n * np.outer(x_mean, x_mean)
        cross = sum(p[1] for p in keep) - n * np.outer(x_mean, y_mean)
        return _solve(gram, cross, x_mean, y_mean, alphas)


def fit_linear(blocks: Mapping[str, np.ndarray], target: np.ndarray, folds: np.ndarray,
               alphas: Sequence[float] = ALPHAS) -> LinearFit:
    """Choose the penalty by K-fold held-out error, keep the cross-fitted logits, refit on every row."""
    groups = tuple(blocks)
    n = target.shape[0]
    if any(block.shape[0] != n for block in blocks.values()):
        raise DataError(f"feature blocks have {[b.shape[0] for b in blocks.values()]} rows, the teacher's logits {n}")
    if len(np.unique(folds)) < 2:
        raise DataError("cross-fitting the student needs at least two folds of silver videos")
    mean = {g: b.mean(axis=0) for g, b in blocks.items()}
    std = {g: np.maximum(b.std(axis=0), 1e-3) for g, b in blocks.items()}
    fit = LinearFit(groups, mean, std, np.zeros(0), np.zeros(0), 0.0)
    x = fit.design(blocks)
    moments = _Moments(x, target, folds)
    held = np.zeros((len(alphas), *target.shape))
    for fold in moments.parts:
        test = folds == fold
        for i, (weight, bias) in enumerate(moments.path(fold, alphas)):
            held[i, test] = x[test] @ weight + bias
    errors = ((held - target[None]) ** 2).mean(axis=(1, 2))
    best = int(np.argmin(errors))
    fit.weight, fit.bias = moments.path(None, [alphas[best]])[0]
    fit.alpha, fit.oof = float(alphas[best]), held[best]
    fit.cv = [{"alpha": float(a), "heldout_mse": float(e)} for a, e in zip(alphas, errors)]
    return fit
