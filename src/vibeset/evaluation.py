"""Scoring annotators against the golden set, and the crowd's single-rater baseline.

Every annotator is reported twice: on all golden pairs it labelled, and head-to-head with
the crowd on exactly the crowd's ratings and references (leave-one-out consensus on pairs
with >= 3 raters). F1 over sets of different prevalence is not comparable; head-to-head is.
"""

from __future__ import annotations

import json
from typing import Any, Mapping

import pandas as pd

from .annotation import read_annotations
from .artifacts import Artifact, Stamp, artifacts_of
from .golden import GoldenSet
from .metrics import evaluate_pairs, fmt
from .runs import jsonable
from .workspace import Workspace

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


# -- the verdict: does each annotator beat a single human rater? -----------------------------------------
def verdict(workspace: Workspace) -> list[str]:
    """Short lines: does each annotator beat a single human rater, is the student within its teacher's AUC,
    and how much of the catalog each vibe labels against its estimated base rate."""
    catalog = artifacts_of(workspace)
    metrics = catalog.get("metrics")
    if not metrics.exists():
        return ["no evaluation yet: 'vibeset run' (or 'vibeset evaluate') makes one"]
    report = read_metrics(metrics)
    annotators = report["annotators"]
    teacher_name = f"teacher ({workspace.config.pipeline.teacher})"
    lines = [f"{teacher_name if v['annotator'] == 'teacher' else v['annotator']} {v['word']} a single human rater: head-to-head MCC {fmt(v['mcc'], v['ci'])} vs "
             f"{fmt(v['rater_mcc'], v['rater_ci'])} (n={v['n']:,}); all pairs AUC {fmt(v['auc'], v['auc_ci'])}"
             for v in rater_verdicts(report)]
    if "teacher" in annotators and "student" in annotators:
        teacher, student = annotators["teacher"]["micro"].get("roc_auc"), annotators["student"]["micro"].get("roc_auc")
        if teacher is not None and student is not None:
            gap = student - teacher
            judged = "within 0.01 of" if abs(gap) <= 0.01 else ("above" if gap > 0 else "below")
            lines.append(f"student AUC {student:.3f} is {judged} its teacher's {teacher:.3f} ({gap:+.3f})")
    labels = catalog.annotations("student")
    if labels.exists():
        lines.extend(_shares(read_annotations(labels), len(workspace.catalog), catalog.get("student")))
    return lines


def rater_verdicts(report: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Per annotator of an evaluation report: does it beat a single human rater head-to-head (MCC, 95% CIs)?

    ``word`` is "beats" / "loses to" when the CIs are apart, else "beats (CIs overlap)" or
    "does not beat (CIs overlap)".
    """
    annotators = report["annotators"]
    crowd = annotators.get("crowd", {}).get("head_to_head", {}).get("micro", {})
    if not crowd.get("n"):
        return []  # no single-rater baseline to compare with
    out = []
    for name, block in annotators.items():
        if name == "crowd" or "head_to_head" not in block:
            continue
        mine = block["head_to_head"]["micro"]
        ci, rater_ci = mine["ci"]["mcc"], crowd.get("ci", {}).get("mcc", [None, None])
        if None not in (*ci, *rater_ci) and ci[0] > rater_ci[1]:
            word = "beats"
        elif None not in (*ci, *rater_ci) and ci[1] < rater_ci[0]:
            word = "loses to"
        else:
            word = "beats" if mine["mcc"] > crowd.get("mcc", 1.0) else "does not beat"
            word += " (CIs overlap)"
        out.append({"annotator": name, "word": word, "mcc": mine["mcc"], "ci": ci, "rater_mcc": crowd.get("mcc"),
                    "rater_ci": rater_ci, "n": mine["n"], "auc": block["micro"].get("roc_auc"),
                    "auc_ci": block["micro"]["ci"].get("roc_auc")})
    return out


#: the student's catalog calibration, written by distill beside the student
CALIBRATION_FILE = "calibration.json"


def catalog_calibration(student: Artifact) -> Mapping[str, Any] | None:
    """The student's catalog calibration (per vibe: golden prevalence, base rate, share labelled, threshold),
    when the distill stage wrote one."""
    if not student.exists() or not (student.path / CALIBRATION_FILE).is_file():
        return None
    value = student.read_json(CALIBRATION_FILE)
    return value if isinstance(value, Mapping) and isinstance(value.get("attributes"), Mapping) else None


def _shares(labels: pd.DataFrame, videos: int, student: Artifact) -> list[str]:
    counts = labels[labels["label"]].groupby("attribute")["video_id"].nunique().reindex(sorted(set(labels["attribute"])), fill_value=0)
    share = counts / max(videos, 1)
    calibrated = catalog_calibration(student)
    rates = {k: v["base_rate"] for k, v in calibrated["attributes"].items()} if calibrated else {}
    parts = [f"{name} {value:.0%}" + (f"/{rates[name]:.0%}" if name in rates else "")
             for name, value in share.sort_values(ascending=False).items()]
    lines = ["share of the catalog labelled per vibe" + (" / its estimated base rate" if rates else "") + ": " + ", ".join(parts)]
    ratio = pd.Series({name: share[name] / rates[name] for name in share.index if rates.get(name)})
    if len(ratio):
        inside = ratio.between(0.5, 2.0 + 1e-9)
        lines.append(f"{int(inside.sum())} of {len(ratio)} vibes label 0.5-2x their estimated base rate "
                     f"(lowest {ratio.idxmin()} {ratio.min():.2f}x, highest {ratio.idxmax()} {ratio.max():.2f}x)")
    return lines
