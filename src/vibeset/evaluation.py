"""Scoring annotators against the golden set, and the crowd's single-rater baseline.

Every annotator is reported twice: on all golden pairs it labelled, and head-to-head with
the crowd on exactly the crowd's ratings and references (leave-one-out consensus on pairs
with >= 3 raters). F1 over sets of different prevalence is not comparable; head-to-head is.
"""

from __future__ import annotations

import json
from typing import Any, Mapping

import pandas as pd

from .artifacts import Artifact, Stamp
from .golden import GoldenSet
from .metrics import evaluate_pairs
from .runs import jsonable

MIN_CROWD_RATERS = 3


def crowd_pairs(golden: GoldenSet, min_raters: int = MIN_CROWD_RATERS) -> pd.DataFrame:
    """One row per (video, attribute, rater) on pairs with >= ``min_raters`` raters.

    ``y_pred``: the rater's own rating >= rater_positive. ``y_true``: the mean of the other
    raters >= the consensus threshold (leave-one-out, so a rater is never scored against
    themselves).
    """
    judgements = golden.judgements
    grouped = judgements.groupby(["video_id", "attribute"])["rating"]
    count = grouped.transform("size")
    total = grouped.transform("sum")
    rows = judgements[count >= min_raters].copy()
    others = (total[count >= min_raters] - rows["rating"]) / (count[count >= min_raters] - 1)
    rows["y_true"] = others >= golden.threshold
    rows["y_pred"] = rows["rating"] >= golden.rater_positive
    return rows[["video_id", "attribute", "rater", "y_true", "y_pred"]].reset_index(drop=True)


def _join(reference: pd.DataFrame, annotations: pd.DataFrame) -> pd.DataFrame:
    labels = annotations[["video_id", "attribute", "label", "score"]].rename(columns={"label": "y_pred"})
    return reference.merge(labels, on=["video_id", "attribute"], how="inner")


def evaluate_annotator(
    golden: GoldenSet, annotations: pd.DataFrame, *, n_boot: int = 500, seed: int = 0
) -> dict[str, Any]:
    """Metrics of one annotations table on all golden pairs and head-to-head with the crowd."""
    reference = golden.pairs[["video_id", "attribute", "label"]].rename(columns={"label": "y_true"})
    joined = _join(reference, annotations)
    if joined["score"].isna().any():
        joined = joined.drop(columns="score")
    result = evaluate_pairs(joined, n_boot=n_boot, seed=seed)
    result["coverage"] = float(len(joined) / len(reference)) if len(reference) else 0.0
    crowd = crowd_pairs(golden)
    head = _join(crowd.drop(columns="y_pred"), annotations)
    if not head.empty:
        if head["score"].isna().any():
            head = head.drop(columns="score")
        result["head_to_head"] = evaluate_pairs(head, n_boot=n_boot, seed=seed)
    return result


def evaluate_crowd(golden: GoldenSet, *, n_boot: int = 500, seed: int = 0) -> dict[str, Any]:
    """The single-rater baseline; its head-to-head block is itself (same rows)."""
    result = evaluate_pairs(crowd_pairs(golden), n_boot=n_boot, seed=seed)
    result["coverage"] = 1.0
    result["head_to_head"] = {key: result[key] for key in ("micro", "macro", "per_attribute")}
    return result


def evaluate_all(
    golden: GoldenSet, annotations: Mapping[str, pd.DataFrame], *, crowd: bool = True, n_boot: int = 500, seed: int = 0
) -> dict[str, Any]:
    """The evaluation object printed by ``vibeset evaluate --json``."""
    summary = golden.summary()
    report: dict[str, Any] = {
        "golden": {key: summary[key] for key in ("pairs", "videos", "attributes", "prevalence", "skipped_videos")},
        "annotators": {},
    }
    report["golden"]["version"] = golden.version
    report["golden"]["crowd_pairs"] = int(len(crowd_pairs(golden)))
    if crowd:
        report["annotators"]["crowd"] = evaluate_crowd(golden, n_boot=n_boot, seed=seed)
    for name, frame in annotations.items():
        report["annotators"][name] = evaluate_annotator(golden, frame, n_boot=n_boot, seed=seed)
    return report


METRICS_FILE = "metrics.json"


def write_metrics(report: Mapping[str, Any], artifact: Artifact, stamp: Stamp) -> None:
    """Write an evaluation report as the metrics artifact (strict JSON: NaN becomes null)."""
    golden = report["golden"]
    stamp.lineage = {"golden_version": golden.get("version", ""), "split": golden.get("split", ""), **(stamp.lineage or {})}
    stamp.meta = {"annotators": list(report["annotators"]), **(stamp.meta or {})}
    with artifact.replace(stamp) as staging:
        (staging / METRICS_FILE).write_text(json.dumps(jsonable(report), indent=2, allow_nan=False), encoding="utf-8")


def read_metrics(artifact: Artifact) -> dict[str, Any]:
    artifact.complete_manifest()
    report = artifact.read_json(METRICS_FILE)
    if not isinstance(report, dict) or "annotators" not in report or "golden" not in report:
        raise artifact.error(artifact.path / METRICS_FILE, "not an evaluation report (no 'golden' and 'annotators')")
    return report
