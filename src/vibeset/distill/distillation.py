"""One distillation run: features, the student fitted on the Silver Set, calibration, the gate, ONNX export.

Library API behind ``vibeset distill``. Everything is decided on held-out silver and golden dev,
never on test: the student's penalty and feature groups by K-fold on the silver set (how well it
predicts the teacher's logits on videos it did not train on), its calibration and catalog
thresholds on golden dev, and the gate: a student that loses more than ``max_auc_loss`` ROC-AUC to
its teacher on golden dev (its cross-fitted scores against the teacher's own) is refused, and the
previous student stays the serving default. Only ``router=True`` reads the golden test split (a
recorded use).
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
from scipy.stats import spearmanr
from sklearn.metrics import roc_auc_score

from ..annotate.silver import load_silver
from ..annotation import read_annotations
from ..artifacts import Artifact, Stamp
from ..errors import ConfigError, DataError
from ..evaluation import CALIBRATION_FILE, evaluate_all
from ..golden import GoldenSet
from ..hashing import content_hash
from ..progress import status
from ..retrieval.collaborative import load_collaborative
from ..runs import golden_split, taxonomy_in_use
from ..shards import read_embeddings
from ..tag_sources import tag_matrix, workspace_tag_sources
from ..workspace import Workspace
from . import mlp
from .features import GROUPS, FeatureSpace, build_feature_space, parse_groups
from .linear import LinearFit, fit_linear, folds_of, teacher_logits
from .router import router_report
from .student import Student, calibrate, save_student

STUDENTS = ("linear", "mlp")


@dataclass
class SilverTargets:
    """Silver soft labels aligned to catalog rows."""

    ids: list[str]  # silver video ids
    rows: np.ndarray  # catalog row of each silver video
    soft: np.ndarray  # (n, A) teacher scores
    mask: np.ndarray  # (n, A) which scores exist
    heldout: np.ndarray  # (n,) early-stopping rows (MLP)
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
        ids=ids,
        rows=np.array([position[v] for v in ids]),
        soft=score.fillna(0.5).to_numpy(np.float32),
        mask=score.notna().to_numpy(),
        heldout=bucket < heldout_share,
        teacher_labels=label.fillna(0).to_numpy() >= 0.5,
    )


# -- fitting -----------------------------------------------------------------------------------------
@dataclass
class Fitted:
    """One student: its network (for export), the logits of every catalog row, and cross-fitted silver logits."""

    groups: tuple[str, ...]
    net: Any
    catalog: np.ndarray  # (catalog, A) logits of the model fitted on every silver video
    oof: np.ndarray  # (silver, A) logits from the fold that did not train on the video
    detail: dict[str, Any]


def _fit_linear(blocks: dict[str, np.ndarray], targets: SilverTargets, groups: Sequence[str], folds: np.ndarray) -> Fitted:
    sub = {g: blocks[g][targets.rows] for g in groups}
    fit: LinearFit = fit_linear(sub, teacher_logits(targets.soft, targets.mask), folds)
    net = mlp.linear_module(list(groups), fit.mean, fit.std, fit.weight, fit.bias)
    return Fitted(tuple(groups), net, fit.logits({g: blocks[g] for g in groups}), fit.oof,
                  {"kind": "linear", "alpha": fit.alpha, "cv": fit.cv})


def _fit_mlp(blocks: dict[str, np.ndarray], targets: SilverTargets, groups: Sequence[str], folds: np.ndarray,
             config: mlp.TrainConfig) -> Fitted:
    """K nets for the cross-fitted logits, one more on every silver video (early stopping on 10% of its rows)."""
    sub = {g: blocks[g][targets.rows] for g in groups}
    oof = np.zeros(targets.soft.shape, dtype=np.float32)
    for fold in np.unique(folds):
        train = folds != fold
        pick = {g: b[train] for g, b in sub.items()}
        net, _ = mlp.train(pick, targets.soft[train], targets.mask[train], targets.heldout[train], config)
        oof[~train] = mlp.torch_logits(net, {g: b[~train] for g, b in sub.items()})
    net, result = mlp.train(sub, targets.soft, targets.mask, targets.heldout, config)
    return Fitted(tuple(groups), net, mlp.torch_logits(net, {g: blocks[g] for g in groups}), oof,
                  {"kind": "mlp", "train": {**config.to_dict(), "best_epoch": result.best_epoch, "epochs": result.epochs}})


def heldout_agreement(oof: np.ndarray, targets: SilverTargets) -> dict[str, float]:
    """Cross-fitted student logits vs the teacher on the silver set: ROC-AUC against its labels (mean over vibes),
    rank correlation with its scores."""
    mask = targets.mask
    per_vibe = [roc_auc_score(targets.teacher_labels[mask[:, j], j], oof[mask[:, j], j]) for j in range(oof.shape[1])
                if len(np.unique(targets.teacher_labels[mask[:, j], j])) == 2]
    return {
        "silver_videos": int(len(targets.rows)),
        "auc_vs_teacher_labels": float(np.mean(per_vibe)) if per_vibe else float("nan"),
        "spearman_vs_teacher_scores": float(spearmanr(oof[mask], targets.soft[mask]).statistic),
    }


# -- golden dev ----------------------------------------------------------------------------------------
def _pairs_auc(frame: pd.DataFrame) -> dict[str, float]:
    """Micro (pooled) and macro (mean per vibe) ROC-AUC of ``score`` against ``label``."""
    per_vibe = [roc_auc_score(g["label"], g["score"]) for _, g in frame.groupby("attribute") if g["label"].nunique() == 2]
    micro = roc_auc_score(frame["label"], frame["score"]) if frame["label"].nunique() == 2 else float("nan")
    return {"micro_auc": float(micro), "macro_auc": float(np.mean(per_vibe)) if per_vibe else float("nan"), "pairs": len(frame)}


def dev_logits(fitted: Fitted, targets: SilverTargets, dev: GoldenSet, catalog_ids: list[str]) -> tuple[list[str], np.ndarray]:
    """Golden dev videos' logits: cross-fitted for those in the silver set (the student trained on them), else the full model's."""
    position = {v: i for i, v in enumerate(catalog_ids)}
    ids = sorted(set(dev.pairs["video_id"]) & set(position))
    logits = fitted.catalog[[position[v] for v in ids]].copy()
    silver = {v: i for i, v in enumerate(targets.ids)}
    inside = [(k, silver[v]) for k, v in enumerate(ids) if v in silver]
    if inside:
        rows, oof_rows = map(list, zip(*inside))
        logits[rows] = fitted.oof[oof_rows]
    return ids, logits


def gate(dev: GoldenSet, student: pd.DataFrame, teacher: pd.DataFrame | None, max_loss: float) -> dict[str, Any]:
    """Student vs teacher on golden dev pairs, each out of fold (micro ROC-AUC decides).

    The student's dev scores are cross-fitted on the silver set (from a fit that never saw the video);
    ``teacher`` holds the teacher's dev scores: an LLM's own (it never saw a label), or, for a teacher that
    learned on dev (the evidence teacher), its out-of-fold scores.
    """
    pairs = dev.pairs[["video_id", "attribute", "label"]]
    result: dict[str, Any] = {"student": _pairs_auc(pairs.merge(student, on=["video_id", "attribute"])),
                              "max_auc_loss": max_loss}
    if teacher is not None:
        joined = pairs.merge(teacher[["video_id", "attribute", "score"]].dropna(), on=["video_id", "attribute"])
        if joined["label"].nunique() == 2:
            result["teacher"] = _pairs_auc(joined)
            result["auc_loss"] = result["teacher"]["micro_auc"] - result["student"]["micro_auc"]
    result["accepted"] = result.get("auc_loss", 0.0) <= max_loss
    return result


# -- the run -----------------------------------------------------------------------------------------
def available_groups(workspace: Workspace, tags: list[list[str]], collaborative: Artifact | None, frames: Any) -> tuple[str, ...]:
    """Every group the workspace can feed: text always, tags if the catalog has any, cf with a cf model,
    sources with declared tag sources, frames with a frame table."""
    have = {"text", *(["tags"] if any(tags) else []), *(["cf"] if collaborative is not None else []),
            *(["sources"] if workspace.config.tag_sources else []), *(["frames"] if frames else [])}
    return tuple(g for g in GROUPS if g in have)


def _space(workspace: Workspace, groups: Sequence[str], ids: list[str], text: np.ndarray, tags: list, encoder: str,
           collaborative: Artifact | None, frames: Any) -> FeatureSpace:
    sources = {}
    if "sources" in groups:
        for config in workspace.config.tag_sources:
            matrix, vocabulary = tag_matrix(workspace_tag_sources(workspace)[config.name], ids, min_videos=config.min_videos)
            if vocabulary:
                sources[config.name] = (ids, matrix, vocabulary)
    groups = [g for g in groups if g != "sources" or sources]
    model = load_collaborative(collaborative) if collaborative is not None and "cf" in groups else None
    return build_feature_space(groups, text_dim=text.shape[1], encoder_name=encoder, tag_vocabulary=sorted({t for r in tags for t in r}),
                               collaborative=model, sources=sources, frames=frames)


def _candidates(groups: tuple[str, ...], chosen: Sequence[str] | None) -> list[tuple[str, ...]]:
    """The groups asked for, or every available group and each set without one of them (text stays)."""
    if chosen:
        return [parse_groups(chosen)]
    return [groups, *[tuple(g for g in groups if g != drop) for drop in groups if drop != "text"]]


def run_distillation(
    workspace: Workspace,
    *,
    silver: Artifact,
    shards: Artifact,
    out: Artifact,
    stamp: Stamp,
    collaborative: Artifact | None = None,
    teacher: Artifact | None = None,
    heldout: pd.DataFrame | None = None,
    groups: Sequence[str] | None = None,
    student: str = "linear",
    objective: str = "precision:0.6",
    base_rate: str = "bounds",
    max_auc_loss: float = 0.02,
    router: bool = False,
    frames: str | Path | None = None,
    config: mlp.TrainConfig | None = None,
    n_boot: int = 500,
) -> dict:
    """Fit the student on the silver artifact over the catalog shards; write the student artifact unless the gate refuses it.

    ``heldout``: the teacher's out-of-fold golden dev scores when it learned on dev (``calibrate``).
    """
    if student not in STUDENTS:
        raise ConfigError(f"--student must be one of {STUDENTS}, got {student!r}")
    taxonomy = taxonomy_in_use(workspace)
    attributes = taxonomy.names
    silver_frame, silver_meta = load_silver(silver)
    ids, text, tags = read_embeddings(shards)
    dev = golden_split(workspace, "dev")
    every = available_groups(workspace, tags, collaborative, frames)
    space = _space(workspace, parse_groups(groups) if groups else every, ids, text, tags,
                   shards.manifest().meta["encoder"], collaborative, frames)
    blocks = space.blocks(ids, text, tags)
    targets = silver_targets(silver_frame, attributes, ids)
    fits, errors = _fit_candidates(blocks, targets, _candidates(space.groups, groups) if student == "linear" else [space.groups],
                                   student, config)
    main = fits[min(errors, key=errors.get)]
    declared = {a.name: a.base_rate for a in taxonomy}
    teacher_frame = read_annotations(teacher) if teacher is not None else None
    teacher_dev = heldout if heldout is not None else teacher_frame

    def judged(fit: Fitted) -> tuple[Any, dict, dict]:
        dev_ids, dev_scores = dev_logits(fit, targets, dev, ids)
        calibration, table = calibrate(dev_scores, dev_ids, dev, fit.catalog, attributes, objective,
                                       base_rate=base_rate, declared=declared, heldout=heldout)
        return calibration, table, gate(dev, _frame(calibration.apply(dev_scores), dev_ids, attributes), teacher_dev,
                                        max_auc_loss)

    calibration, table, verdict = judged(main)
    ablation = [{"groups": "+".join(v), "chosen": f is main, "heldout_mse": errors[v], **heldout_agreement(f.oof, targets),
                 "dev": (verdict if f is main else judged(f)[2])["student"]} for v, f in fits.items()]
    report: dict = {"agreement": heldout_agreement(main.oof, targets), "dev": verdict, "ablation": ablation, "router": [],
                    "calibration": table}
    if not verdict["accepted"]:
        raise ConfigError(
            f"distill refused the student: on golden dev it loses {verdict['auc_loss']:.3f} ROC-AUC to its teacher "
            f"({verdict['student']['micro_auc']:.3f} vs {verdict['teacher']['micro_auc']:.3f}; at most {max_auc_loss} allowed); "
            "the previous student stays the serving default (--max-auc-loss accepts a bigger loss)"
        )
    upstream = silver.lineage().get("inputs", {}).get("teacher", {})
    lineage = {
        "teacher": silver_meta.get("teacher", upstream.get("name", "")), "prompt_version": upstream.get("prompt_version", ""),
        "teacher_model": upstream.get("model", ""), "taxonomy_version": taxonomy.version, "golden_version": dev.version,
        "calibrated_on": "golden dev", "thresholds": f"{objective} at each vibe's catalog base rate ({base_rate}), labelling "
        "0.5-2x that rate", "silver_videos": int(len(targets.rows)), "feature_groups": list(main.groups),
        "features": space.lineage, "student": main.detail,
    }
    sub_space = FeatureSpace(**{**space.__dict__, "groups": main.groups})
    with tempfile.TemporaryDirectory(prefix="vibeset-student-") as tmp:
        onnx_file = mlp.export_onnx(main.net, sub_space.widths(), Path(tmp) / "student.onnx")
        sample = np.unique(np.linspace(0, len(ids) - 1, min(len(ids), 2000)).astype(int))
        check = _student(Path(tmp) / "check", onnx_file, sub_space, attributes, calibration, taxonomy.version, lineage)
        lineage["onnx_parity_max_abs"] = float(np.abs(check.logits({g: blocks[g][sample] for g in main.groups})
                                                       - main.catalog[sample]).max())
        if router:
            report.update(_router_report(workspace, check, blocks, teacher_frame, ids, n_boot))
        _write(out, stamp, report, onnx_file, sub_space, attributes, calibration, table, taxonomy.version, lineage,
               f"{objective} at each vibe's catalog base rate, labelling 0.5-2x that rate; base rate: {base_rate} "
               "(EM prior shift kept between a floor and the mean score) unless the taxonomy declares base_rate")
    return report


def _fit_candidates(blocks: dict[str, np.ndarray], targets: SilverTargets, variants: list[tuple[str, ...]], student: str,
                    config: mlp.TrainConfig | None) -> tuple[dict[tuple[str, ...], Fitted], dict[tuple[str, ...], float]]:
    """A student per group set, cross-fitted on the same folds, and each one's held-out error on the teacher's logits."""
    folds, logits = folds_of(targets.ids), teacher_logits(targets.soft, targets.mask)
    fits: dict[tuple[str, ...], Fitted] = {}
    for variant in variants:
        with status(f"fitting the {student} student on {'+'.join(variant)} ({len(targets.rows):,} silver videos)"):
            fits[variant] = (_fit_linear(blocks, targets, variant, folds) if student == "linear"
                             else _fit_mlp(blocks, targets, variant, folds, config or mlp.TrainConfig()))
    return fits, {v: float(np.mean((f.oof - logits) ** 2)) for v, f in fits.items()}


def _frame(scores: np.ndarray, video_ids: Sequence[str], attributes: Sequence[str]) -> pd.DataFrame:
    return pd.DataFrame({"video_id": np.repeat(np.asarray(video_ids, dtype=object), len(attributes)),
                         "attribute": np.tile(list(attributes), len(video_ids)), "score": scores.reshape(-1)})


def _student(directory: Path, onnx_file: Path, space: FeatureSpace, attributes: list[str], calibration, taxonomy_version: str,
             lineage: dict) -> Student:
    save_student(directory, onnx_file=onnx_file, space=space, attributes=attributes, calibration=calibration,
                 taxonomy_version=taxonomy_version, lineage=lineage, metrics={})
    return Student(directory)


def _write(out: Artifact, stamp: Stamp, report: dict, onnx_file: Path, space: FeatureSpace, attributes: list[str], calibration,
           table: dict, taxonomy_version: str, lineage: dict, method: str) -> None:
    """The student artifact: ONNX, state, features, ``report.json`` and ``calibration.json`` (per vibe: golden
    prevalence, base rate, share labelled, threshold)."""
    with out.replace(stamp) as staging:
        version = save_student(staging, onnx_file=onnx_file, space=space, attributes=attributes, calibration=calibration,
                               taxonomy_version=taxonomy_version, lineage=lineage,
                               metrics={"agreement": report["agreement"], "dev": report["dev"]})
        report["student"] = {"directory": str(out.path), "version": version, "lineage": lineage}
        (staging / "report.json").write_text(json.dumps(report, indent=2, default=float), encoding="utf-8")
        (staging / CALIBRATION_FILE).write_text(json.dumps({"attributes": table, "method": method}, indent=2, default=float),
                                           encoding="utf-8")
        stamp.lineage = {"student_version": version, **lineage}
        stamp.meta = {"version": version, "agreement": report["agreement"], "dev": report["dev"]}


def _router_report(workspace: Workspace, student: Student, blocks: dict[str, np.ndarray], teacher_frame: pd.DataFrame | None,
                   ids: list[str], n_boot: int) -> dict:
    """Teacher vs student vs crowd and the router's trade-off, on golden test (a recorded use of it)."""
    from ..golden import workspace_golden

    test = golden_split(workspace, "test", final=True, purpose="distill --router")
    golden = workspace_golden(workspace)
    position = {v: i for i, v in enumerate(ids)}
    golden_ids = sorted(set(golden.pairs["video_id"]) & set(position))
    rows = np.array([position[v] for v in golden_ids])
    scores = student.predict_proba({g: blocks[g][rows] for g in student.space.groups})
    frame = _frame(scores, golden_ids, student.attributes).assign(label=student.labels(scores).reshape(-1))
    tables = {"student": frame[frame["video_id"].isin(set(test.pairs["video_id"]))]}
    if teacher_frame is not None:
        tables["teacher"] = teacher_frame[teacher_frame["video_id"].isin(set(test.pairs["video_id"]))]
    report = evaluate_all(test, tables, crowd=True, n_boot=n_boot)
    report["golden"]["split"] = "test"
    thresholds = dict(zip(student.attributes, student.calibration.thresholds.tolist()))
    routed = router_report(golden, frame, teacher_frame, thresholds) if teacher_frame is not None else []
    return {"annotators": report["annotators"], "golden": report["golden"], "router": routed}
