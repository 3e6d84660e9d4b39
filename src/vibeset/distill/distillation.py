"""One distillation run: features, training on the Silver Set, ONNX export, calibration, evaluation.

Library API behind ``vibeset distill``. The evaluation answers the issue's questions with
the golden test split only (dev calibrates): student vs teacher agreement on held-out
silver; teacher vs student vs crowd with CIs and head-to-head; an ablation of feature groups;
and the teacher-student router's trade-off.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
from scipy.stats import spearmanr
from sklearn.metrics import roc_auc_score

from ..annotate.silver import load_silver
from ..annotation import read_annotations
from ..artifacts import Artifact, Stamp
from ..errors import DataError
from ..evaluation import evaluate_all
from ..hashing import content_hash
from ..progress import status
from ..retrieval.collaborative import load_collaborative
from ..golden import workspace_golden
from ..runs import golden_split, taxonomy_in_use
from ..shards import read_embeddings
from ..workspace import Workspace
from . import mlp
from .features import FeatureSpace, build_feature_space, parse_groups
from .router import router_report
from .student import Calibration, Student, calibrate, save_student

ABLATION = (("text",), ("text", "tags"), ("text", "cf"), ("text", "tags", "cf"))


@dataclass
class SilverTargets:
    """Silver soft labels aligned to catalog rows."""

    rows: np.ndarray  # catalog row of each silver video
    soft: np.ndarray  # (n, A) teacher scores
    mask: np.ndarray  # (n, A) which scores exist
    heldout: np.ndarray  # (n,) early-stopping rows
    teacher_labels: np.ndarray  # (n, A)


def silver_targets(silver: pd.DataFrame, attributes: list[str], catalog_ids: list[str], *, heldout_share: float = 0.1) -> SilverTargets:
    position = {video_id: i for i, video_id in enumerate(catalog_ids)}
    silver = silver[silver["video_id"].isin(position) & silver["attribute"].isin(attributes)]
    if silver.empty:
        raise DataError("the silver set has no (video, attribute) rows for catalog videos and taxonomy attributes")
    if silver["score"].isna().any():
        silver = silver.assign(score=silver["score"].fillna(silver["label"].astype("float32")))
    score = silver.pivot_table(index="video_id", columns="attribute", values="score", aggfunc="mean").reindex(columns=attributes)
    label = silver.pivot_table(index="video_id", columns="attribute", values="label", aggfunc="mean").reindex(columns=attributes)
    ids = list(score.index)
    bucket = np.array([int(content_hash(f"heldout:{v}", 8), 16) / 0xFFFFFFFF for v in ids])
    return SilverTargets(
        rows=np.array([position[v] for v in ids]),
        soft=score.fillna(0.5).to_numpy(np.float32),
        mask=score.notna().to_numpy(),
        heldout=bucket < heldout_share,
        teacher_labels=label.fillna(0).to_numpy() >= 0.5,
    )


@dataclass
class Fitted:
    """One trained + calibrated student (not yet saved) and its scores for the whole catalog."""

    groups: tuple[str, ...]
    student: Student
    onnx_file: Path
    scores: np.ndarray  # (catalog, A) calibrated
    train: mlp.TrainResult
    parity: float  # max |torch - onnx| logit difference on held-out silver
    workdir: tempfile.TemporaryDirectory = field(repr=False, default=None)


def fit_one(
    space: FeatureSpace,
    blocks: dict[str, np.ndarray],
    targets: SilverTargets,
    attributes: list[str],
    golden_dev,
    catalog_ids: list[str],
    groups: Sequence[str],
    objective: str,
    config: mlp.TrainConfig,
) -> Fitted:
    """Train on silver rows, export ONNX, reload with onnxruntime, calibrate on golden dev."""
    groups = parse_groups(groups)
    sub = {g: blocks[g][targets.rows] for g in groups}
    net, result = mlp.train(sub, targets.soft, targets.mask, targets.heldout, config)
    workdir = tempfile.TemporaryDirectory(prefix="vibeset-student-")
    onnx_file = mlp.export_onnx(net, {g: blocks[g].shape[1] for g in groups}, Path(workdir.name) / "student.onnx")
    sub_space = FeatureSpace(**{**space.__dict__, "groups": groups})
    staging = Path(workdir.name) / "student"
    identity = Calibration(np.ones(len(attributes)), np.zeros(len(attributes)), np.full(len(attributes), 0.5), objective, [True] * len(attributes))
    save_student(
        staging, onnx_file=onnx_file, space=sub_space, attributes=attributes, calibration=identity,
        taxonomy_version="", lineage={}, metrics={},
    )
    student = Student(staging)
    catalog_blocks = {g: blocks[g] for g in groups}
    logits = student.logits(catalog_blocks)
    held_rows = targets.rows[targets.heldout]
    parity = float(np.abs(mlp.torch_logits(net, {g: blocks[g][held_rows] for g in groups}) - logits[held_rows]).max())
    dev_ids = sorted(set(golden_dev.pairs["video_id"]) & set(catalog_ids))
    position = {v: i for i, v in enumerate(catalog_ids)}
    student.calibration = calibrate(logits[[position[v] for v in dev_ids]], attributes, golden_dev, dev_ids, objective)
    return Fitted(groups, student, onnx_file, student.calibration.apply(logits), result, parity, workdir)


def frame_of(fitted: Fitted, catalog_ids: list[str], rows: np.ndarray | None = None) -> pd.DataFrame:
    """Long annotations-like frame (video_id, attribute, score, label) for catalog rows."""
    rows = np.arange(len(catalog_ids)) if rows is None else rows
    scores = fitted.scores[rows]
    attributes = fitted.student.attributes
    return pd.DataFrame(
        {
            "video_id": np.repeat(np.asarray(catalog_ids, dtype=object)[rows], len(attributes)),
            "attribute": np.tile(attributes, len(rows)),
            "score": scores.reshape(-1),
            "label": fitted.student.labels(scores).reshape(-1),
        }
    )


def agreement(fitted: Fitted, targets: SilverTargets) -> dict[str, float]:
    """Student vs teacher on held-out silver: label agreement, AUC against teacher labels, rank correlation."""
    rows = targets.heldout
    scores = fitted.scores[targets.rows[rows]]
    mask = targets.mask[rows]
    teacher = targets.teacher_labels[rows][mask]
    student_labels = fitted.student.labels(scores)[mask]
    return {
        "heldout_videos": int(rows.sum()),
        "label_agreement": float((teacher == student_labels).mean()),
        "auc_vs_teacher_labels": float(roc_auc_score(teacher, scores[mask])) if len(np.unique(teacher)) == 2 else float("nan"),
        "spearman_vs_teacher_scores": float(spearmanr(scores[mask], targets.soft[rows][mask]).statistic),
    }


def _summary(report: dict, name: str) -> dict[str, float]:
    block = report["annotators"][name]
    out = {}
    for view in ("micro", "macro"):
        for metric in ("roc_auc", "f1", "mcc", "precision", "recall"):
            out[f"{view}_{metric}"] = block[view].get(metric)
        out[f"{view}_auc_ci"] = block[view]["ci"].get("roc_auc")
    return out


def run_distillation(
    workspace: Workspace,
    *,
    silver: Artifact,
    shards: Artifact,
    out: Artifact,
    stamp: Stamp,
    collaborative: Artifact | None = None,
    teacher: Artifact | None = None,
    groups: Sequence[str] = ("text", "tags", "cf"),
    objective: str = "mcc",
    ablation: bool = True,
    router: bool = True,
    frames: str | Path | None = None,
    config: mlp.TrainConfig | None = None,
    n_boot: int = 500,
) -> dict:
    """Train the student from the silver artifact over the catalog shards; write the student artifact.

    With ``ablation`` or ``router``, students and the router are scored on the golden test split
    (a recorded use of it) against ``teacher``'s labels.
    """
    config = config or mlp.TrainConfig()
    groups = parse_groups(groups)
    taxonomy = taxonomy_in_use(workspace)
    attributes = taxonomy.names
    silver_frame, silver_meta = load_silver(silver)
    ids, text, tags = read_embeddings(shards)
    encoder = shards.manifest().meta["encoder"]
    golden = workspace_golden(workspace)
    dev = golden.split("dev")
    needed = sorted(set(groups) | ({"tags", "cf"} if ablation else set()), key=["text", "tags", "cf", "frames"].index)
    cf_model = load_collaborative(collaborative) if collaborative is not None and "cf" in needed else None
    space = build_feature_space(needed, text_dim=text.shape[1], encoder_name=encoder,
                                tag_vocabulary=sorted({t for row in tags for t in row}), collaborative=cf_model, frames=frames)
    blocks = space.blocks(ids, text, tags)
    targets = silver_targets(silver_frame, attributes, ids)
    variants = [tuple(v) for v in ABLATION if set(v) <= set(needed)] if ablation else []
    if groups not in variants:
        variants.append(groups)
    fitted: dict[tuple[str, ...], Fitted] = {}
    for variant in variants:
        with status(f"training the student on {'+'.join(variant)} ({len(targets.rows)} silver videos)"):
            fitted[variant] = fit_one(space, blocks, targets, attributes, dev, ids, variant, objective, config)
    main = fitted[groups]
    report: dict = {"agreement": agreement(main, targets), "ablation": [], "router": []}
    if ablation or router:
        report.update(_test_report(workspace, fitted, main, targets, teacher, ids, attributes, ablation, router, n_boot))
    teacher_lineage = silver.lineage().get("inputs", {}).get("teacher", {})
    lineage = {
        "teacher": silver_meta.get("teacher", teacher_lineage.get("name", "")),
        "prompt_version": teacher_lineage.get("prompt_version", ""),
        "teacher_model": teacher_lineage.get("model", ""),
        "taxonomy_version": taxonomy.version,
        "golden_version": golden.version,
        "calibrated_on": "golden dev",
        "silver_videos": int(len(targets.rows)),
        "feature_groups": list(groups),
        "features": space.lineage,
        "train": {**config.to_dict(), "best_epoch": main.train.best_epoch, "epochs": main.train.epochs},
        "onnx_parity_max_abs": main.parity,
    }
    with out.replace(stamp) as staging:
        version = save_student(
            staging, onnx_file=main.onnx_file, space=FeatureSpace(**{**space.__dict__, "groups": groups}),
            attributes=attributes, calibration=main.student.calibration, taxonomy_version=taxonomy.version,
            lineage=lineage, metrics={"agreement": report["agreement"]},
        )
        report["student"] = {"directory": str(out.path), "version": version, "lineage": lineage}
        (staging / "report.json").write_text(json.dumps(report, indent=2, default=float), encoding="utf-8")
        stamp.lineage = {"student_version": version, **lineage}
        stamp.meta = {"version": version, "agreement": report["agreement"]}
    for fit in fitted.values():
        fit.workdir.cleanup()
    return report


def _test_report(workspace, fitted, main, targets, teacher, ids, attributes, ablation, router, n_boot) -> dict:
    """Teacher vs student vs crowd, the feature ablation and the router, on golden test (recorded)."""
    test = golden_split(workspace, "test", final=True, purpose="distill: ablation and router")
    position = {v: i for i, v in enumerate(ids)}
    test_ids = sorted(set(test.pairs["video_id"]) & set(position))
    test_rows = np.array([position[v] for v in test_ids])
    teacher_frame = read_annotations(teacher) if teacher is not None else None
    tables = {"student": frame_of(main, ids, test_rows)}
    if teacher_frame is not None:
        tables["teacher"] = teacher_frame[teacher_frame["video_id"].isin(test_ids)]
    report = evaluate_all(test, tables, crowd=True, n_boot=n_boot)
    report["golden"]["split"] = "test"
    teacher_auc = report["annotators"].get("teacher", {}).get("micro", {}).get("roc_auc")
    rows = []
    for variant, fit in fitted.items() if ablation else ():
        summary = _summary(evaluate_all(test, {"s": frame_of(fit, ids, test_rows)}, crowd=False, n_boot=n_boot), "s")
        rows.append({
            "groups": "+".join(variant), **summary,
            "delta_micro_auc_vs_teacher": summary["micro_roc_auc"] - teacher_auc if teacher_auc is not None else None,
            **{f"teacher_{k}": v for k, v in agreement(fit, targets).items() if k != "heldout_videos"},
            "epochs": fit.train.best_epoch,
        })
    report["ablation"] = rows
    if router and teacher_frame is not None:
        golden = workspace_golden(workspace)
        golden_ids = sorted(set(golden.pairs["video_id"]) & set(position))
        golden_rows = np.array([position[v] for v in golden_ids])
        thresholds = dict(zip(attributes, main.student.calibration.thresholds.tolist()))
        report["router"] = router_report(golden, frame_of(main, ids, golden_rows), teacher_frame, thresholds)
    return report
