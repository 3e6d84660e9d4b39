"""Teacher-student router: send the pairs the student is unsure of to the teacher.

The band is calibrated on the golden dev split: for a budget (the share of (video, attribute)
pairs the teacher may see), the width is the dev quantile of |score - threshold|; a video
with any pair inside the band costs one teacher call, and the teacher's answer replaces the
student's on those pairs. The teacher's scores are Platt-scaled per attribute on dev so a
routed pair's score is on the student's calibrated scale and AUC stays meaningful.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from ..calibration import logit, platt, sigmoid
from ..golden import GoldenSet
from ..metrics import evaluate_pairs

BUDGETS = (0.05, 0.1, 0.2, 0.4)


def _platt(frame: pd.DataFrame, golden_dev: GoldenSet) -> dict[str, tuple[float, float]]:
    """Per attribute (a, b) so that sigmoid(a * logit(score) + b) is calibrated on dev."""
    joined = golden_dev.pairs.merge(frame[["video_id", "attribute", "score"]], on=["video_id", "attribute"])
    return {attribute: platt(logit(rows["score"]), rows["label"]) for attribute, rows in joined.groupby("attribute")
            if rows["label"].nunique() == 2}


def _rescale(frame: pd.DataFrame, params: dict[str, tuple[float, float]]) -> pd.Series:
    a = frame["attribute"].map(lambda n: params.get(n, (1.0, 0.0))[0]).to_numpy(float)
    b = frame["attribute"].map(lambda n: params.get(n, (1.0, 0.0))[1]).to_numpy(float)
    return pd.Series(sigmoid(a * logit(frame["score"]) + b), index=frame.index)


def _scored(reference: pd.DataFrame, frame: pd.DataFrame) -> pd.DataFrame:
    columns = [c for c in ("video_id", "attribute", "label", "score", "margin") if c in frame.columns]
    return reference.merge(frame[columns].rename(columns={"label": "y_pred"}), on=["video_id", "attribute"])


def router_report(
    golden: GoldenSet,
    student: pd.DataFrame,
    teacher: pd.DataFrame,
    thresholds: dict[str, float],
    budgets: Sequence[float] = BUDGETS,
) -> list[dict]:
    """Quality on golden test pairs vs teacher calls spent, per budget (0 = student alone, 1 = teacher alone)."""
    dev, test = golden.split("dev"), golden.split("test")
    margin = (student["score"] - student["attribute"].map(thresholds)).abs()
    student = student.assign(margin=margin)
    teacher = teacher.assign(score=_rescale(teacher, _platt(teacher, dev)))
    dev_margin = _scored(dev.pairs[["video_id", "attribute"]], student)["margin"].to_numpy()
    reference = test.pairs[["video_id", "attribute", "label"]].rename(columns={"label": "y_true"})
    test_student = _scored(reference, student)
    test_teacher = _scored(reference, teacher).set_index(["video_id", "attribute"])
    videos = test_student["video_id"].nunique()
    rows = []
    for budget in (0.0, *budgets, 1.0):
        width = float(np.quantile(dev_margin, budget)) if 0 < budget < 1 else (0.0 if budget == 0 else np.inf)
        routed = (test_student["margin"] < width).to_numpy() if budget < 1 else np.ones(len(test_student), bool)
        mixed = test_student.astype({"score": "float64"})
        keys = pd.MultiIndex.from_frame(mixed.loc[routed, ["video_id", "attribute"]])
        answered = keys.isin(test_teacher.index)
        index = np.flatnonzero(routed)[answered]
        mixed.loc[mixed.index[index], "y_pred"] = test_teacher.loc[keys[answered], "y_pred"].to_numpy()
        mixed.loc[mixed.index[index], "score"] = test_teacher.loc[keys[answered], "score"].to_numpy()
        result = evaluate_pairs(mixed, n_boot=1)
        rows.append(
            {
                "budget": budget,
                "band_width": width,
                "teacher_pairs_share": float(routed.mean()),
                "teacher_calls_share": float(mixed.loc[routed, "video_id"].nunique() / videos) if videos else 0.0,
                "micro_f1": result["micro"]["f1"],
                "micro_mcc": result["micro"]["mcc"],
                "micro_auc": result["micro"].get("roc_auc"),
                "macro_auc": result["macro"].get("roc_auc"),
            }
        )
    return rows
