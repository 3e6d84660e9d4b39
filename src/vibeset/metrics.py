"""Classification metrics per attribute, micro and macro, with bootstrap CIs resampled by video.

Input is a long frame of scored pairs: video_id, attribute, y_true, y_pred and optionally
score. Resampling videos (not pairs) keeps a video's correlated labels together. Counts are
aggregated per video once, so each bootstrap replicate is a weighted sum, not a re-scan.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, roc_auc_score

from .errors import DataError

POINT_METRICS = ("precision", "recall", "f1", "mcc")


def _from_counts(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray, tn: np.ndarray) -> dict[str, np.ndarray]:
    """P, R, F1, MCC from confusion counts (arrays broadcast; 0 where undefined)."""
    tp, fp, fn, tn = (np.asarray(x, dtype=float) for x in (tp, fp, fn, tn))
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(tp + fp > 0, tp / (tp + fp), 0.0)
        recall = np.where(tp + fn > 0, tp / (tp + fn), 0.0)
        f1 = np.where(2 * tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn), 0.0)
        denom = np.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
        mcc = np.where(denom > 0, (tp * tn - fp * fn) / denom, 0.0)
    return {"precision": precision, "recall": recall, "f1": f1, "mcc": mcc}


def binary_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """Precision, recall, F1, MCC, n and prevalence of one set of binary decisions."""
    y_true = np.asarray(y_true, dtype=bool)
    y_pred = np.asarray(y_pred, dtype=bool)
    if y_true.shape != y_pred.shape:
        raise DataError(f"y_true has shape {y_true.shape} but y_pred has {y_pred.shape}")
    tp = np.sum(y_true & y_pred)
    fp = np.sum(~y_true & y_pred)
    fn = np.sum(y_true & ~y_pred)
    tn = np.sum(~y_true & ~y_pred)
    values = {k: float(v) for k, v in _from_counts(tp, fp, fn, tn).items()}
    return {**values, "n": int(y_true.size), "prevalence": float(y_true.mean()) if y_true.size else 0.0}


def weighted_auc(y_true: np.ndarray, score: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """ROC-AUC for each row of ``weights`` (B, n) at once; ties count half. NaN without both classes."""
    order = np.argsort(score, kind="stable")
    sorted_score = score[order]
    positive = y_true[order].astype(bool)
    starts = np.flatnonzero(np.r_[True, np.diff(sorted_score) != 0])
    w = np.atleast_2d(weights)[:, order]
    pos_group = np.add.reduceat(w * positive, starts, axis=1)
    neg_group = np.add.reduceat(w * ~positive, starts, axis=1)
    neg_before = np.cumsum(neg_group, axis=1) - neg_group
    total = pos_group.sum(axis=1) * neg_group.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(total > 0, (pos_group * (neg_before + 0.5 * neg_group)).sum(axis=1) / total, np.nan)


def _auc(y_true: np.ndarray, score: np.ndarray) -> tuple[float, float]:
    if len(np.unique(y_true)) < 2:
        return float("nan"), float("nan")
    return float(roc_auc_score(y_true, score)), float(average_precision_score(y_true, score))


def _mean_present(values: np.ndarray, present: np.ndarray) -> np.ndarray:
    """Row means over the entries marked present (an attribute a replicate drew no video of is skipped)."""
    counts = present.sum(axis=1)
    sums = np.where(present, values, 0.0).sum(axis=1)
    return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def bootstrap_weights(units: int, n_boot: int, seed: int = 0) -> np.ndarray:
    """(n_boot, units) resampling counts: each replicate draws ``units`` clusters (videos, users) with replacement."""
    rng = np.random.default_rng(seed)
    return rng.multinomial(units, np.full(units, 1 / units), size=n_boot).astype(float)


def percentile_ci(samples: np.ndarray) -> list[float]:
    """The 95% percentile interval of bootstrap replicates (NaN where none is finite)."""
    finite = np.asarray(samples, dtype=float)
    finite = finite[np.isfinite(finite)]
    if finite.size == 0:
        return [float("nan"), float("nan")]
    return [float(np.percentile(finite, 2.5)), float(np.percentile(finite, 97.5))]


def fmt(value: Any, ci: Any = None, digits: int = 3) -> str:
    """A value for people: '0.412 [0.38, 0.44]', '1,234', 'yes', or '-' when it is missing or not finite.

    The one formatter of the CLI tables, the error analysis and the report.
    """
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return f"{int(value):,}"
    if isinstance(value, str):
        return value
    if not isinstance(value, (float, np.floating)) or not math.isfinite(value):
        return "-"
    text = f"{value:.{digits}f}"
    if ci and len(ci) == 2 and all(isinstance(x, (int, float)) and math.isfinite(x) for x in ci):
        text += f" [{ci[0]:.2f}, {ci[1]:.2f}]"
    return text


def evaluate_pairs(frame: pd.DataFrame, *, n_boot: int = 500, seed: int = 0) -> dict[str, Any]:
    """Micro, macro and per-attribute metrics with 95% bootstrap CIs (videos resampled).

    Beside each result: ``prevalence`` and the always-positive baseline's F1 (its MCC is 0),
    because on high-prevalence data F1 alone flatters.
    """
    needed = {"video_id", "attribute", "y_true", "y_pred"}
    if missing := needed - set(frame.columns):
        raise DataError(f"scored pairs lack columns {sorted(missing)}")
    if frame.empty:
        raise DataError("no scored pairs to evaluate (annotator and golden set share no (video, attribute) pair)")
    scored = "score" in frame.columns and frame["score"].notna().all()
    videos, video_index = np.unique(frame["video_id"].to_numpy(), return_inverse=True)
    attributes, attr_index = np.unique(frame["attribute"].to_numpy(), return_inverse=True)
    y_true = frame["y_true"].to_numpy(dtype=bool)
    y_pred = frame["y_pred"].to_numpy(dtype=bool)

    # counts[video, attribute, (tp, fp, fn, tn)]
    counts = np.zeros((len(videos), len(attributes), 4))
    cell = np.stack([y_true & y_pred, ~y_true & y_pred, y_true & ~y_pred, ~y_true & ~y_pred], axis=1)
    np.add.at(counts, (video_index, attr_index), cell.astype(float))
    weights = bootstrap_weights(len(videos), n_boot, seed)
    boot_attr = np.einsum("bv,vak->bak", weights, counts)  # (B, A, 4)
    boot_micro = boot_attr.sum(axis=1)  # (B, 4)
    point_attr = counts.sum(axis=0)  # (A, 4)
    point_micro = point_attr.sum(axis=0)

    def block(point: np.ndarray, boot: np.ndarray) -> dict[str, Any]:
        values = _from_counts(*point)
        replicas = _from_counts(*boot.T)
        n = point.sum()
        positives = point[0] + point[2]
        out: dict[str, Any] = {k: float(values[k]) for k in POINT_METRICS}
        out["n"] = int(n)
        out["prevalence"] = float(positives / n) if n else 0.0
        out["always_positive_f1"] = float(2 * positives / (n + positives)) if n else 0.0
        out["ci"] = {k: percentile_ci(replicas[k]) for k in POINT_METRICS}
        return out

    per_attribute = {str(a): block(point_attr[i], boot_attr[:, i, :]) for i, a in enumerate(attributes)}
    micro = block(point_micro, boot_micro)
    macro_point = {k: float(np.mean([per_attribute[a][k] for a in per_attribute])) for k in POINT_METRICS}
    macro_boot = _from_counts(*np.moveaxis(boot_attr, 2, 0))  # each (B, A)
    macro = {
        **macro_point,
        "n": micro["n"],
        "attributes": len(attributes),
        "ci": {k: percentile_ci(_mean_present(macro_boot[k], boot_attr.sum(axis=2) > 0)) for k in POINT_METRICS},
    }
    if scored:
        score = frame["score"].to_numpy(dtype=float)
        _score_metrics(micro, macro, per_attribute, y_true, score, video_index, attr_index, attributes, weights)
    return {"micro": micro, "macro": macro, "per_attribute": per_attribute}


def _score_metrics(micro, macro, per_attribute, y_true, score, video_index, attr_index, attributes, weights) -> None:
    """ROC-AUC and PR-AUC: micro over pooled pairs, macro as the mean of per-attribute values."""
    pair_weights = weights[:, video_index]  # (B, pairs)
    micro["roc_auc"], micro["pr_auc"] = _auc(y_true, score)
    micro["ci"]["roc_auc"] = percentile_ci(weighted_auc(y_true, score, pair_weights))
    per_boot = np.full((len(weights), len(attributes)), np.nan)
    for i, attribute in enumerate(attributes):
        rows = attr_index == i
        block = per_attribute[str(attribute)]
        block["roc_auc"], block["pr_auc"] = _auc(y_true[rows], score[rows])
        per_boot[:, i] = weighted_auc(y_true[rows], score[rows], pair_weights[:, rows])
        block["ci"]["roc_auc"] = percentile_ci(per_boot[:, i])
    aucs = [per_attribute[str(a)]["roc_auc"] for a in attributes]
    macro["roc_auc"] = float(np.nanmean(aucs)) if any(math.isfinite(a) for a in aucs) else float("nan")
    macro["pr_auc"] = float(np.nanmean([per_attribute[str(a)]["pr_auc"] for a in attributes]))
    macro["ci"]["roc_auc"] = percentile_ci(_mean_present(per_boot, np.isfinite(per_boot)))
