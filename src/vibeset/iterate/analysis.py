"""Error analysis on the golden dev split: what the annotator gets wrong, most confident first.

For each attribute: metrics with bootstrap CIs, confusion counts, and every false positive and
false negative with the video's text, the individual human ratings behind the consensus, and
the annotator's score and evidence. Attributes are ordered worst F1 first, so the next edit is
the first thing in the report.
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

from ..calibration import logit, platt, sigmoid
from ..catalog import Video
from ..errors import DataError
from ..evaluation import evaluate_annotator
from ..metrics import evaluate_pairs, fmt
from ..golden import GoldenSet
from ..artifacts import Artifact, Stamp
from ..runs import jsonable

CONFUSION = ("tp", "fp", "fn", "tn")
#: Kinds of confidence an LLM annotations table can carry: the score used, and where it came from.
CONFIDENCE_KINDS = {"score": "used (logprob, else self-report)", "score_self": "self-report", "score_logprob": "logprob"}
FOLDS = 5


def scored_pairs(golden: GoldenSet, annotations: pd.DataFrame) -> pd.DataFrame:
    """Golden pairs joined with the annotator's labels: y_true, y_pred, score, evidence, outcome."""
    reference = golden.pairs[["video_id", "attribute", "label", "mean_rating", "n_raters"]].rename(
        columns={"label": "y_true"}
    )
    labels = annotations[["video_id", "attribute", "label", "score", "evidence"]].rename(columns={"label": "y_pred"})
    joined = reference.merge(labels, on=["video_id", "attribute"], how="inner")
    if joined.empty:
        raise DataError("the annotator labelled none of the golden pairs; nothing to analyse")
    y_true, y_pred = joined["y_true"].astype(bool), joined["y_pred"].astype(bool)
    joined["outcome"] = np.select(
        [y_true & y_pred, ~y_true & y_pred, y_true & ~y_pred], ["tp", "fp", "fn"], default="tn"
    )
    score = joined["score"].astype(float)
    # confidence in the label it gave; unknown scores sort last
    joined["confidence"] = np.where(y_pred, score, 1.0 - score)
    return joined


def _calibrated(fit: pd.DataFrame, apply: pd.DataFrame, kind: str) -> np.ndarray:
    """Platt scaling of ``kind`` fitted on ``fit`` (golden dev pairs), applied to ``apply``."""
    a, b = platt(logit(fit[kind].to_numpy(float)), fit["y_true"].to_numpy(bool))
    return sigmoid(a * logit(apply[kind].to_numpy(float)) + b)


def confidence_kinds(golden: GoldenSet, dev: GoldenSet, confidences: pd.DataFrame, *, n_boot: int = 200,
                     seed: int = 0) -> dict[str, Any]:
    """Each kind of confidence side by side on ``golden``: ROC-AUC (micro and macro, with CIs) and the
    Brier score before and after Platt calibration fitted on golden dev (on dev itself: fitted on the
    other folds of videos, so no pair is scored by a calibration that saw it)."""
    def joined(split: GoldenSet) -> pd.DataFrame:
        reference = split.pairs[["video_id", "attribute", "label"]].rename(columns={"label": "y_true"})
        return reference.merge(confidences, on=["video_id", "attribute"], how="inner")

    target, train = joined(golden), joined(dev)
    same = golden.version == dev.version
    kinds: dict[str, Any] = {}
    for kind, description in CONFIDENCE_KINDS.items():
        if kind not in target:
            continue
        rows = target[target[kind].notna()].reset_index(drop=True)
        if rows.empty or rows["y_true"].nunique() < 2:
            continue
        scored = rows.assign(y_pred=rows[kind] >= 0.5, score=rows[kind].astype(float))
        metrics = evaluate_pairs(scored[["video_id", "attribute", "y_true", "y_pred", "score"]], n_boot=n_boot, seed=seed)
        truth = rows["y_true"].to_numpy(float)
        calibrated = np.full(len(rows), np.nan)
        if same:
            fold = rows["video_id"].map(lambda v: zlib.crc32(str(v).encode()) % FOLDS).to_numpy()
            for k in range(FOLDS):
                fit = rows[fold != k]
                if (fold == k).any() and fit["y_true"].nunique() == 2:
                    calibrated[fold == k] = _calibrated(fit, rows[fold == k], kind)
        else:
            fit = train[train[kind].notna()]
            if fit["y_true"].nunique() == 2:
                calibrated = _calibrated(fit, rows, kind)
        kinds[kind] = {
            "description": description, "pairs": int(len(rows)), "coverage": len(rows) / max(1, len(target)),
            "micro_auc": metrics["micro"]["roc_auc"], "micro_auc_ci": metrics["micro"]["ci"]["roc_auc"],
            "macro_auc": metrics["macro"]["roc_auc"], "macro_auc_ci": metrics["macro"]["ci"]["roc_auc"],
            "brier": float(np.mean((rows[kind].to_numpy(float) - truth) ** 2)),
            "brier_calibrated": float(np.nanmean((calibrated - truth) ** 2)) if np.isfinite(calibrated).any() else None,
        }
    return kinds


def _example(row: Any, video: Video | None, ratings: list[float]) -> dict[str, Any]:
    return {
        "video_id": row.video_id,
        "title": video.title if video else "",
        "tags": list(video.tags) if video else [],
        "text": video.description if video else "",
        "score": None if pd.isna(row.score) else float(row.score),
        "confidence": None if pd.isna(row.confidence) else float(row.confidence),
        "evidence": row.evidence or "",
        "human_mean_rating": float(row.mean_rating),
        "human_ratings": ratings,
        "n_raters": int(row.n_raters),
    }


def error_analysis(
    golden: GoldenSet,
    annotations: pd.DataFrame,
    videos: Mapping[str, Video],
    *,
    n_boot: int = 500,
    seed: int = 0,
) -> dict[str, Any]:
    """The analysis object: overall metrics, and per attribute metrics, confusion and errors."""
    pairs = scored_pairs(golden, annotations)
    evaluation = evaluate_annotator(golden, annotations, n_boot=n_boot, seed=seed)
    ratings = golden.judgements.groupby(["video_id", "attribute"])["rating"].apply(lambda r: sorted(map(float, r)))
    attributes = []
    for name, rows in pairs.groupby("attribute"):
        counts = rows["outcome"].value_counts()
        errors = {}
        for outcome, key in (("fp", "false_positives"), ("fn", "false_negatives")):
            wrong = rows[rows["outcome"] == outcome].sort_values("confidence", ascending=False, na_position="last")
            errors[key] = [
                _example(row, videos.get(row.video_id), ratings.get((row.video_id, name), []))
                for row in wrong.itertuples(index=False)
            ]
        attributes.append(
            {
                "attribute": name,
                "metrics": evaluation["per_attribute"][name],
                "confusion": {key: int(counts.get(key, 0)) for key in CONFUSION},
                **errors,
            }
        )
    attributes.sort(key=lambda block: (block["metrics"]["f1"], block["attribute"]))
    return {
        "micro": evaluation["micro"],
        "macro": evaluation["macro"],
        "coverage": evaluation["coverage"],
        "head_to_head": {k: evaluation["head_to_head"][k] for k in ("micro", "macro")} if "head_to_head" in evaluation else None,
        "per_attribute": evaluation["per_attribute"],
        "attributes": attributes,
    }


def _cell(text: str, limit: int = 0) -> str:
    """Untrusted text made inert for Markdown tables and viewers: no HTML, pipes or newlines."""
    text = " ".join(str(text).split())
    if limit and len(text) > limit:
        text = text[: limit - 1] + "…"
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("|", "\\|")


def to_markdown(report: Mapping[str, Any], *, examples: int = 5) -> str:
    """A readable report: headline, per-attribute table (worst first), top errors per attribute."""
    head = report["header"]
    lines = [
        f"# Error analysis: {head['annotator']} on the golden {head['split']} split",
        "",
        f"- run `{head['run_id']}`; annotator version `{head['annotator_version']}`, model `{head['model']}`",
        f"- taxonomy `{head['taxonomy_version']}`, golden `{head['golden_version']}` ({head['split']} split)",
        f"- golden test split used {head['test_uses']} time(s) for this golden version",
        f"- macro F1 {fmt(report['macro']['f1'], report['macro']['ci']['f1'])}, "
        f"micro F1 {fmt(report['micro']['f1'], report['micro']['ci']['f1'])}, coverage {report['coverage']:.0%}",
    ]
    if report.get("head_to_head"):
        h2h = report["head_to_head"]["macro"]
        lines.append(f"- head-to-head with single raters' references: macro F1 {fmt(h2h['f1'], h2h['ci']['f1'])}")
    lines += [
        "",
        "## Attributes, worst F1 first",
        "",
        "| attribute | n | prevalence | precision | recall | F1 [95% CI] | always-yes F1 | TP | FP | FN | TN |",
        "| --- | --: | --: | --: | --: | --: | --: | --: | --: | --: | --: |",
    ]
    for block in report["attributes"]:
        m, c = block["metrics"], block["confusion"]
        lines.append(
            f"| {block['attribute']} | {m['n']} | {m['prevalence']:.2f} | {fmt(m['precision'])} | {fmt(m['recall'])} "
            f"| {fmt(m['f1'], m['ci']['f1'])} | {fmt(m['always_positive_f1'])} | {c['tp']} | {c['fp']} | {c['fn']} | {c['tn']} |"
        )
    if report.get("confidence"):
        lines += ["", "## Confidence: each kind side by side", "",
                  "| kind | pairs | micro ROC-AUC [95% CI] | macro ROC-AUC | Brier | Brier after Platt (dev) |",
                  "| --- | --: | --: | --: | --: | --: |"]
        for kind in report["confidence"].values():
            lines.append(f"| {kind['description']} | {kind['pairs']} | {fmt(kind['micro_auc'], kind['micro_auc_ci'])} "
                         f"| {fmt(kind['macro_auc'])} | {fmt(kind['brier'])} | {fmt(kind['brier_calibrated'])} |")
    if report["attributes"]:
        worst = report["attributes"][0]["attribute"]
        lines += ["", f"Next: `vibeset iterate refine --attribute {worst}` (offline) or with `--backend openai ...`."]
    for block in report["attributes"]:
        lines += ["", f"## {block['attribute']}"]
        for key, title in (("false_positives", "False positives (annotator yes, humans no)"),
                           ("false_negatives", "False negatives (annotator no, humans yes)")):
            shown = block[key][:examples]
            lines += ["", f"### {title}: {len(block[key])}, most confident first", ""]
            if not shown:
                lines.append("none")
            for ex in shown:
                ratings = ", ".join(f"{r:g}" for r in ex["human_ratings"])
                lines.append(
                    f"- **{_cell(ex['title'])}** (`{ex['video_id']}`) score {fmt(ex['score'])}; humans mean "
                    f"{ex['human_mean_rating']:.2f} from [{ratings}]"
                    + (f"; evidence: {_cell(ex['evidence'], 200)}" if ex["evidence"] else "")
                    + f"  \n  {_cell(ex['text'], 300)}"
                )
    return "\n".join(lines) + "\n"


def write_report(report: Mapping[str, Any], artifact: Artifact, stamp: Stamp) -> dict[str, Path]:
    """Write ``analysis.json`` and ``analysis.md`` as an analysis artifact; returns their final paths."""
    head = report["header"]
    stamp.lineage = {key: head[key] for key in ("annotator", "annotator_version", "model", "taxonomy_version", "golden_version", "split")}
    with artifact.replace(stamp) as staging:
        (staging / "analysis.json").write_text(json.dumps(jsonable(report), indent=2, allow_nan=False), encoding="utf-8")
        (staging / "analysis.md").write_text(to_markdown(report), encoding="utf-8")
    return {"json": artifact.path / "analysis.json", "markdown": artifact.path / "analysis.md"}
