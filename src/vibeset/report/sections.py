"""The report's sections, each built from artifacts that exist, or saying what is missing and why.

A section never raises for an absent stage: it carries ``missing`` (what is not there and the
command that produces it) so the report grows as the pipeline does.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
from sklearn.metrics import precision_recall_curve

from ..golden import GoldenSet, agreement_report
from ..artifacts import artifacts_of
from ..metrics import fmt
from ..retrieval.evaluation import read_evaluation
from ..runs import Run, get_run, list_runs
from ..workspace import Workspace
from .charts import Bar, bar_chart, line_chart

CURVE_POINTS = 80
MIN_N = 20  # per-vibe panels with fewer pairs are greyed: too few to read


@dataclass
class Figure:
    id: str
    svg: str
    caption: str
    muted: bool = False


@dataclass
class Browse:
    """A filterable table (CSS-only filters: the report runs no script)."""

    columns: list[str]
    rows: list[dict[str, Any]]  # {"cells": [...], "vibe": str, "classes": str}
    vibes: list[str]
    filters: list[tuple[str, str]]  # (row class, label)
    note: str = ""


@dataclass
class Table:
    columns: list[str]
    rows: list[list[str]]
    caption: str = ""
    collapsed: bool = False


@dataclass
class Section:
    id: str
    title: str
    intro: str = ""
    figures: list[Figure] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    missing: str | None = None
    small_multiples: bool = False
    browse: Browse | None = None
    lead: list[str] = field(default_factory=list)  # headline sentences shown first


@dataclass
class Evaluation:
    """An evaluation report (``evaluate_all`` shape), the golden split it scored and the labels behind it."""

    report: dict[str, Any]
    golden: GoldenSet
    tables: dict[str, pd.DataFrame]
    notes: list[str] = field(default_factory=list)


def _bar(block: Mapping[str, Any] | None, metric: str) -> Bar | None:
    if not block or block.get(metric) is None:
        return None
    low, high = (block.get("ci", {}).get(metric) or [None, None])[:2]
    return Bar(float(block[metric]), low, high)


# --- evaluation against the golden set -------------------------------------------------------


def palette(ev: Evaluation) -> dict[str, int]:
    """One colour per annotator across every evaluation chart."""
    return {name: i for i, name in enumerate(ev.report["annotators"])}


def evaluation_section(ev: Evaluation) -> Section:
    """Summary table (both views) and per-attribute F1 / MCC bars, head-to-head with the crowd."""
    golden = ev.report["golden"]
    section = Section(
        "evaluation",
        "Annotators vs the golden set",
        f"Golden {golden.get('split', 'all')} split {golden.get('version', '')}: {fmt(golden.get('pairs'))} pairs, "
        f"{fmt(golden.get('videos'))} videos, prevalence {fmt(golden.get('prevalence'))}. "
        "Head-to-head scores every annotator on exactly the crowd's ratings with a leave-one-out consensus "
        "reference, so crowd and annotators are comparable; whiskers are 95% bootstrap CIs (videos resampled).",
        notes=list(ev.notes),
    )
    annotators = ev.report["annotators"]
    rows = []
    for name, result in annotators.items():
        for view, block in (("all golden pairs", result), ("head-to-head", result.get("head_to_head"))):
            if not block:
                continue
            for level in ("micro", "macro"):
                values = block[level]
                rows.append(
                    [name, view, level, fmt(values.get("n")), fmt(values.get("precision")), fmt(values.get("recall")),
                     fmt(values.get("f1"), values["ci"].get("f1")), fmt(values.get("mcc"), values["ci"].get("mcc")),
                     fmt(values.get("roc_auc"), values["ci"].get("roc_auc"))]
                )
    section.tables.append(
        Table(["annotator", "view", "average", "n", "P", "R", "F1 [95% CI]", "MCC [95% CI]", "ROC-AUC [95% CI]"], rows)
    )
    views = {name: result.get("head_to_head") or result for name, result in annotators.items()}
    attributes = sorted({a for block in views.values() for a in block.get("per_attribute", {})})
    sizes = [max((block.get("per_attribute", {}).get(a, {}).get("n") or 0 for block in views.values()), default=0) for a in attributes]
    labels = [*(f"{a} (n={n})" for a, n in zip(attributes, sizes)), "MACRO"]
    muted = [n < MIN_N for n in sizes] + [False]
    if any(muted):
        section.notes.append(f"Grey rows have fewer than {MIN_N} head-to-head pairs: their intervals are too wide to read.")
    for metric, domain in (("f1", (0.0, 1.0)), ("mcc", (-1.0, 1.0))):
        series = {
            name: [_bar(block.get("per_attribute", {}).get(a), metric) for a in attributes] for name, block in views.items()
        }
        for name, block in views.items():
            series[name].append(_bar(block.get("macro"), metric))
        section.figures.append(
            Figure(
                f"fig-{metric}-per-attribute",
                bar_chart(labels, series, title=f"{metric.upper()} per attribute, head-to-head",
                          axis=metric.upper(), domain=domain, palette=palette(ev), muted=muted),
                f"{metric.upper()} per attribute (and macro average), crowd vs each annotator, head-to-head, with 95% CIs.",
            )
        )
    return section


def _curve(scored: pd.DataFrame) -> tuple[list[float], list[float]] | None:
    if scored.empty or scored["y_true"].nunique() < 2:
        return None
    precision, recall, _ = precision_recall_curve(scored["y_true"].to_numpy(bool), scored["score"].to_numpy(float))
    keep = np.unique(np.linspace(0, len(recall) - 1, min(CURVE_POINTS, len(recall))).round().astype(int))
    return recall[keep].tolist(), precision[keep].tolist()


def pr_section(ev: Evaluation) -> Section:
    """Precision-recall curves of every annotator with scores; the crowd as an operating point."""
    section = Section(
        "pr-curves",
        "Precision-recall curves",
        "Curves sweep each annotator's score threshold over the golden pairs; the crowd (a single rater against "
        "the others, head-to-head) has no score, so it is one operating point. The dashed line is the prevalence.",
    )
    reference = ev.golden.pairs[["video_id", "attribute", "label"]].rename(columns={"label": "y_true"})
    scored = {}
    for name, frame in ev.tables.items():
        joined = reference.merge(frame[["video_id", "attribute", "score"]], on=["video_id", "attribute"]).dropna()
        if joined.empty:
            section.notes.append(f"{name}: no scores on these golden pairs; shown in the tables only")
        else:
            scored[name] = joined
    crowd = ev.report["annotators"].get("crowd")
    if not scored and crowd is None:
        section.missing = "no annotator with scores on the golden pairs; run 'vibeset evaluate' with --annotator zero-shot or an LLM run"
        return section

    def chart(subset: dict[str, pd.DataFrame], point: Mapping[str, Any] | None, title: str, prevalence: float, small: bool) -> str:
        lines = {name: c for name, frame in subset.items() if (c := _curve(frame)) is not None}
        points = {}
        if point and point.get("n"):
            points["crowd"] = (point["recall"], point["precision"])
        return line_chart(
            lines, points=points, title=title, x_axis="recall", y_axis="precision", baseline=prevalence,
            size=(220, 190) if small else (440, 340), legend=not small, palette=palette(ev),
        )

    section.figures.append(
        Figure("fig-pr-micro", chart(scored, crowd and crowd["micro"], "Precision-recall, all attributes pooled",
                                     float(reference["y_true"].mean()), False),
               "All attributes pooled (micro). Legend order: " + ", ".join([*scored, *(["crowd"] if crowd else [])]) + ".")
    )
    for attribute in sorted(reference["attribute"].unique()):
        subset = {name: frame[frame["attribute"] == attribute] for name, frame in scored.items()}
        point = crowd["per_attribute"].get(attribute) if crowd else None
        pairs = reference[reference["attribute"] == attribute]
        section.figures.append(
            Figure(f"fig-pr-{attribute}", chart(subset, point, f"Precision-recall: {attribute}", float(pairs["y_true"].mean()), True),
                   f"{attribute} (n={len(pairs)})", muted=len(pairs) < MIN_N)
        )
    section.small_multiples = True
    return section


# --- rater agreement -------------------------------------------------------------------------


def agreement_section(golden: GoldenSet) -> Section:
    """Krippendorff's alpha (interval) per attribute over every golden judgement."""
    report = agreement_report(golden).sort_values("alpha", ascending=False, na_position="last")
    section = Section(
        "agreement",
        "Rater agreement",
        "Krippendorff's alpha (interval level) over the raters' 1-5 ratings of videos with at least two raters, all "
        "golden splits. Alpha near 0 means raters agree no better than chance: a vibe whose humans disagree caps "
        "what any annotator can reach.",
    )
    series = {"alpha": [Bar(float(a)) if math.isfinite(a) else None for a in report["alpha"]]}
    section.figures.append(
        Figure("fig-agreement", bar_chart(list(report["attribute"]), series, title="Krippendorff's alpha per attribute",
                                          axis="alpha", domain=(min(-0.2, float(report["alpha"].min(skipna=True) or 0)), 1.0)),
               "Krippendorff's alpha per attribute (higher is better; blank: too few multi-rater videos).")
    )
    section.tables.append(
        Table(["attribute", "pairs", "multi-rater pairs", "raters per pair", "prevalence", "alpha"],
              [[r.attribute, fmt(r.pairs), fmt(r.multi_rater_pairs), fmt(r.raters_per_pair, digits=2), fmt(r.prevalence), fmt(r.alpha)]
               for r in report.itertuples(index=False)])
    )
    return section


# --- runs: cost and throughput ---------------------------------------------------------------


def registry_runs(workspace: Workspace, ids: Sequence[str] = ()) -> list[Run]:
    """Runs recorded in the registry (the named ones, else all); none when no registry exists yet."""
    if not artifacts_of(workspace).place("runs").exists():
        return []
    return [get_run(workspace, run_id) for run_id in ids] if ids else list_runs(workspace, limit=None)


def manifest_runs(directories: Iterable[Path]) -> list[dict[str, Any]]:
    """Every run summary of the LLM job directories that have a ``manifest.json``."""
    rows = []
    for directory in directories:
        path = directory / "manifest.json"
        if not path.is_file():
            continue
        try:
            manifest = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            continue
        job = manifest.get("job", {})
        for run in manifest.get("runs", []):
            rows.append({"directory": directory.name, "job_model": job.get("model", ""), **run})
    return rows


def _headline(metrics: Mapping[str, Any]) -> tuple[float | None, list[float] | None]:
    """Macro F1 and its CI from an evaluation block or an iterate round's metrics."""
    macro = metrics.get("macro")
    if isinstance(macro, Mapping) and "f1" in macro:
        return macro["f1"], (macro.get("ci") or {}).get("f1")
    if "macro_f1" in metrics:
        return metrics["macro_f1"], metrics.get("macro_f1_ci")
    return None, None


def runs_section(runs: Sequence[Run], jobs: Sequence[dict[str, Any]]) -> Section:
    """Cost and throughput of LLM annotation jobs and every registry run."""
    section = Section(
        "runs",
        "Runs: cost and throughput",
        "LLM annotation jobs from their manifests (videos per second, dollars per 1,000 videos) and every run "
        "recorded in the registry (out/runs.sqlite).",
    )
    if not runs and not jobs:
        section.missing = (
            "no runs recorded yet: LLM jobs write OUT/manifest.json ('vibeset annotate --backend openai --split golden-test "
            "--out out/annotations/NAME'); iterate, distill and promote runs go to out/runs.sqlite"
        )
        return section
    if jobs:
        labels, throughput, cost = [], [], []
        rows = []
        for job in jobs:
            worked = (job.get("annotated") or 0) + (job.get("failed") or 0)
            elapsed = job.get("elapsed_s") or 0.0
            rate = worked / elapsed if elapsed > 0 else None
            per_k = job["cost_usd"] / job["annotated"] * 1000 if job.get("cost_usd") is not None and job.get("annotated") else None
            label = f"{job['directory']} {job.get('run_id', '')}"
            labels.append(label)
            throughput.append(Bar(rate) if rate is not None else None)
            cost.append(Bar(per_k) if per_k is not None else None)
            rows.append(
                [job["directory"], job.get("run_id", ""), job.get("model") or job.get("job_model", ""), job.get("status", ""),
                 fmt(job.get("annotated")), fmt(job.get("failed")), fmt(job.get("calls")), fmt(job.get("cache_hits")),
                 fmt((job.get("input_tokens") or 0) + (job.get("output_tokens") or 0)),
                 "–" if job.get("cost_usd") is None else f"${job['cost_usd']:.4f}", fmt(elapsed, digits=1), fmt(rate, digits=2),
                 "–" if per_k is None else f"${per_k:.3f}"]
            )
        section.figures.append(
            Figure("fig-throughput", bar_chart(labels, {"videos/s": throughput}, title="Throughput per LLM run", axis="videos per second"),
                   "Throughput of each LLM annotation run (annotated + failed videos per wall-clock second).")
        )
        if any(bar is not None for bar in cost):
            section.figures.append(
                Figure("fig-cost", bar_chart(labels, {"$ per 1k videos": cost}, title="Cost per 1,000 videos", axis="USD per 1,000 videos"),
                       "Cost of each LLM run per 1,000 annotated videos (from token counts and the configured prices).")
            )
        section.tables.append(
            Table(["job", "run", "model", "status", "annotated", "failed", "calls", "cache hits", "tokens", "cost",
                   "seconds", "videos/s", "$ / 1k videos"], rows, "LLM annotation jobs")
        )
    if runs:
        section.tables.append(
            Table(
                ["run", "kind", "created", "status", "model", "prompt / version", "cost", "seconds", "macro F1", "note"],
                [[r.run_id, r.kind, time.strftime("%Y-%m-%d %H:%M", time.localtime(r.created_at)), r.status, r.lineage.model,
                  r.lineage.prompt_version, "–" if r.cost_usd is None else f"${r.cost_usd:.4f}", fmt(r.duration_s, digits=1),
                  fmt(*_headline(r.metrics)), r.note] for r in runs],
                "Run registry",
            )
        )
    return section


def versions_section(runs: Sequence[Run]) -> Section:
    """Macro F1 per prompt / annotator version, from the registry runs that carry an evaluation."""
    section = Section(
        "prompt-versions",
        "Prompt-version comparisons",
        "Macro F1 of each prompt (or annotator) version on the golden split its run scored, latest run per "
        "version and split; whiskers are 95% bootstrap CIs where the run recorded them.",
    )
    latest: dict[tuple[str, str], Run] = {}
    for run in sorted(runs, key=lambda r: r.created_at):
        value, _ = _headline(run.metrics)
        if value is not None and run.lineage.prompt_version:
            latest[(run.lineage.prompt_version, run.lineage.golden_split or "?")] = run
    if len(latest) < 2:
        section.missing = (
            f"{len(latest)} evaluated prompt version(s) in the registry; a comparison needs two "
            "(run 'vibeset iterate' to refine a definition, which records each version's dev F1)"
        )
        return section
    labels, bars = [], []
    for (version, split), run in latest.items():
        value, ci = _headline(run.metrics)
        labels.append(f"{version} ({split})")
        bars.append(Bar(float(value), *(ci or [None, None])[:2]))  # type: ignore[arg-type]
    section.figures.append(
        Figure("fig-prompt-versions", bar_chart(labels, {"macro F1": bars}, title="Macro F1 per prompt version", axis="macro F1", domain=(0.0, 1.0)),
               "Macro F1 per prompt version (latest run of each), oldest first.")
    )
    section.tables.append(
        Table(["version", "split", "run", "kind", "created", "macro F1 [95% CI]", "note"],
              [[v, s, r.run_id, r.kind, time.strftime("%Y-%m-%d %H:%M", time.localtime(r.created_at)), fmt(*_headline(r.metrics)), r.note]
               for (v, s), r in latest.items()])
    )
    return section


# --- distillation and retrieval (optional stages) ---------------------------------------------


def distill_section(workspace: Workspace) -> Section:
    """Student vs teacher on the golden test split, the feature ablation and the router trade-off."""
    section = Section(
        "distillation",
        "Student vs teacher",
        "The distilled student against its teacher on the golden test split, and what routing the least certain "
        "pairs to the teacher buys.",
    )
    student = artifacts_of(workspace).get("student")
    if not student.exists():
        section.missing = f"no student yet: '{student.rebuild}' trains one"
        return section
    report = student.read_json("report.json")
    state = student.read_json("student.json")
    if report and "annotators" in report:
        names = [n for n in ("teacher", "student") if n in report["annotators"]]
        blocks = {n: report["annotators"][n] for n in names}
        metrics = ["f1", "mcc", "roc_auc"]
        series = {n: [_bar(blocks[n][level], m) for level in ("micro", "macro") for m in metrics] for n in names}
        section.figures.append(
            Figure("fig-student-teacher", bar_chart([f"{level} {m}" for level in ("micro", "macro") for m in metrics], series,
                                                    title="Student vs teacher", axis="score", domain=(-0.2, 1.0)),
                   "Student vs teacher on golden test pairs, with 95% CIs.")
        )
    elif state:
        metrics = state.get("metrics", {})
        keys = [k for k in ("micro_f1", "micro_mcc", "micro_roc_auc", "macro_f1", "macro_mcc", "macro_roc_auc")
                if any(k in metrics.get(b, {}) for b in ("teacher_test", "test"))]
        series = {
            name: [Bar(float(metrics[block][k])) if metrics.get(block, {}).get(k) is not None else None for k in keys]
            for name, block in (("teacher", "teacher_test"), ("student", "test"))
        }
        section.figures.append(
            Figure("fig-student-teacher", bar_chart([k.replace("_", " ") for k in keys], series, title="Student vs teacher",
                                                    axis="score", domain=(-0.2, 1.0)),
                   "Student vs teacher on golden test pairs (from the student's saved metrics).")
        )
        if metrics.get("agreement"):
            section.tables.append(Table(["measure", "value"], [[k.replace("_", " "), fmt(v)] for k, v in metrics["agreement"].items()],
                                        "Student vs teacher on held-out silver videos"))
    if report and report.get("router"):
        rows = report["router"]
        section.figures.append(
            Figure("fig-router", line_chart({"micro F1": ([r["teacher_calls_share"] for r in rows], [r["micro_f1"] for r in rows])},
                                            title="Router trade-off", x_axis="share of videos sent to the teacher", y_axis="micro F1"),
                   "Quality vs teacher calls: 0 = student alone, 1 = teacher alone.")
        )
    if report and report.get("ablation"):
        section.tables.append(
            Table(["features", "micro AUC", "macro AUC", "micro F1", "macro F1", "Δ micro AUC vs teacher"],
                  [[a.get("groups", ""), fmt(a.get("micro_roc_auc")), fmt(a.get("macro_roc_auc")), fmt(a.get("micro_f1")),
                    fmt(a.get("macro_f1")), fmt(a.get("delta_micro_auc_vs_teacher"))] for a in report["ablation"]],
                  "Feature ablation")
        )
    return section


def retrieval_section(workspace: Workspace) -> Section:
    """Each ranker restricted and not, and popularity, under both protocols and both splits; the A/B replay."""
    section = Section(
        "retrieval",
        "Retrieval evaluation",
        "Held-out positives of each user (leave-last-N) and of a temporal split. A query's vibe is predicted from the "
        "user's training history, or taken from the golden labels of a held-out video, never from the labels being "
        "evaluated. 95% CIs resample users.",
    )
    artifact = artifacts_of(workspace).get("retrieval-evaluation")
    if not artifact.exists():
        section.missing = f"no retrieval evaluation yet; produce it with '{artifact.rebuild}'"
        return section
    report = read_evaluation(artifact)
    systems = report["systems"]
    metrics = list(next(iter(systems.values())))
    series = {
        system: [Bar(v["value"], *(v.get("ci") or [None, None])[:2]) if (v := values.get(m)) else None for m in metrics]
        for system, values in systems.items()
    }
    section.figures.append(
        Figure("fig-retrieval", bar_chart(metrics, series, title="Restricted retrieval", axis="value", domain=(0.0, 1.0)),
               f"K={report.get('k')}: {fmt(report.get('queries'))} (user, attribute) queries from {fmt(report.get('users'))} users.")
    )
    k = report.get("k", 10)
    for split_name, split in report.get("splits", {}).items():
        rows = [[protocol, f"{fmt(block['queries'])} ({fmt(block['users'])})", system,
                 *(fmt(values[m]["value"], values[m].get("ci")) for m in (f"recall@{k}", f"ndcg@{k}", "coverage"))]
                for protocol, block in split["protocols"].items() for system, values in block["systems"].items()]
        section.tables.append(Table(["intents", "queries (users)", "system", f"recall@{k}", f"NDCG@{k}", "coverage"], rows,
                                    f"{split_name} split: {fmt(split['users'])} users, {fmt(split['events'])} held-out positives"))
    ab = report.get("ab", {})
    if ab and "skipped" not in ab:
        section.tables.append(
            Table(["metric", "A", "B", "lift [95% CI]"],
                  [[m, fmt(v["a"]), fmt(v["b"]), fmt(v["lift"], v.get("ci"))] for m, v in ab.items() if isinstance(v, dict)],
                  f"A/B replay: {ab.get('a')} vs {ab.get('b')}")
        )
    elif ab.get("skipped"):
        section.notes.append(ab["skipped"])
    return section
