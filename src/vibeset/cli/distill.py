"""Distillation verbs: silver, distill, label, and ``bench label``."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from ..artifacts import artifacts_of
from ..metrics import fmt
from ..pipeline import run_stage
from ..progress import progress_bar
from .app import JsonOption, WorkspaceOption, app, console, print_json, stdout, workspace
from .bench import bench_app
from .core import print_report


@app.command()
def silver(
    teacher: Optional[str] = typer.Option(None, help="evidence, zero-shot or llm:BACKEND:MODEL (default: [pipeline] teacher)."),
    sample: Optional[int] = typer.Option(None, "--sample", min=1, help="Videos in the stratified sample (default: [pipeline] silver_sample)."),
    seed: Optional[int] = typer.Option(None, help="Sampling seed."),
    ws_path: Optional[Path] = WorkspaceOption,
    as_json: bool = JsonOption,
) -> None:
    """The Silver Set: a stratified catalog sample with the teacher's labels (only videos it lacks are annotated)."""
    ws = workspace(ws_path)
    updates = {k: v for k, v in (("silver_sample", sample), ("seed", seed), ("teacher", teacher)) if v is not None}
    outcome, ctx = run_stage(ws, "silver", config=ws.config.pipeline.model_copy(update=updates))
    meta = ctx.artifacts.get("silver", ctx.teacher().name).manifest().meta
    if as_json:
        print_json({**outcome.to_dict(), "silver": meta})
    else:
        stdout.print(f"silver set: {outcome.summary} (run {outcome.run_id})", highlight=False, markup=False)


@app.command()
def distill(
    teacher: Optional[str] = typer.Option(None, help="Teacher whose Silver Set to learn from (default: [pipeline] teacher)."),
    groups: Optional[str] = typer.Option(None, help="Feature groups: text,tags,cf,sources[,frames] or 'all' (default: every "
                                         "available group, and each set without one, chosen on held-out silver)."),
    student: str = typer.Option("linear", help="linear (ridge on the teacher's logits) or mlp."),
    objective: Optional[str] = typer.Option(None, help="Catalog thresholds: precision:P at each vibe's base rate, mcc or f1."),
    max_auc_loss: Optional[float] = typer.Option(None, "--max-auc-loss", min=0.0,
                                                 help="Refuse a student that loses more golden-dev AUC to its teacher "
                                                 "(default: [pipeline] max_auc_loss)."),
    frames: Optional[Path] = typer.Option(None, help="Parquet of video_id + embedding from an image encoder (group 'frames')."),
    router: bool = typer.Option(False, help="Report teacher vs student vs crowd and the router trade-off on golden test (recorded)."),
    bootstrap: int = typer.Option(500, help="Bootstrap replicates for the 95% CIs (with --router)."),
    ws_path: Optional[Path] = WorkspaceOption,
    as_json: bool = JsonOption,
) -> None:
    """Fit the student on the Silver Set, calibrate it for the catalog, export ONNX: the student artifact.

    Decided on held-out silver and golden dev only; a student that loses too much to its teacher is refused."""
    from ..distill.features import parse_groups

    ws = workspace(ws_path)
    options = {"student": student, "router": router, "n_boot": bootstrap,
               **({"groups": parse_groups(groups)} if groups else {}), **({"frames": str(frames)} if frames else {}),
               **({"objective": objective} if objective else {}), **({"teacher": teacher} if teacher else {}),
               **({"max_auc_loss": max_auc_loss} if max_auc_loss is not None else {})}
    outcome, ctx = run_stage(ws, "distill", options=options)
    report = ctx.results["report"]
    if as_json:
        print_json(report)
        return
    _dev_tables(report)
    if "annotators" in report:
        g = report["golden"]
        print_report(report, f"teacher vs student vs crowd, golden test: {g['pairs']} pairs, {g['videos']} videos", per_attribute=False)
    if report.get("router"):
        table = Table(title="teacher-student router (golden test; band calibrated on dev)")
        for column in ("budget", "band", "pairs to teacher", "teacher calls", "micro F1", "micro MCC", "micro AUC", "macro AUC"):
            table.add_column(column, justify="right")
        for r in report["router"]:
            table.add_row(*(fmt(v) for v in (r["budget"], r["band_width"], r["teacher_pairs_share"], r["teacher_calls_share"],
                                               r["micro_f1"], r["micro_mcc"], r["micro_auc"], r["macro_auc"])))
        stdout.print(table)
    stdout.print(f"{outcome.summary}; saved to {report['student']['directory']} (run {outcome.run_id})", highlight=False, markup=False)


def _dev_tables(report: dict) -> None:
    """Feature groups on held-out silver and golden dev, and the catalog calibration per vibe."""
    table = Table(title="student feature groups (cross-fitted on the Silver Set; golden dev)")
    for column in ("groups", "chosen", "held-out MSE", "AUC vs teacher labels", "Spearman vs teacher", "dev micro AUC", "dev macro AUC"):
        table.add_column(column, justify="left" if column == "groups" else "right")
    for r in report["ablation"]:
        table.add_row(*(fmt(v) for v in (r["groups"], r.get("chosen", False), r["heldout_mse"], r["auc_vs_teacher_labels"],
                                           r["spearman_vs_teacher_scores"], r["dev"]["micro_auc"], r["dev"]["macro_auc"])))
    stdout.print(table)
    dev = report["dev"]
    if "teacher" in dev:
        stdout.print(f"golden dev AUC: student {fmt(dev['student']['micro_auc'])} vs teacher {fmt(dev['teacher']['micro_auc'])} "
                     f"(loss {fmt(dev['auc_loss'])}, at most {fmt(dev['max_auc_loss'])} allowed)", highlight=False, markup=False)
    table = Table(title="catalog calibration per vibe")
    for column in ("vibe", "golden prevalence", "base rate", "from", "share labelled", "threshold", "precision target met"):
        table.add_column(column, justify="left" if column in ("vibe", "from") else "right")
    for name, r in report["calibration"].items():
        table.add_row(name, *(fmt(v) for v in (r["golden_prevalence"], r["base_rate"], r["base_rate_from"], r["share_labelled"],
                                               r["threshold"], r["reached"])))
    stdout.print(table)


@app.command()
def label(
    model: Optional[Path] = typer.Option(None, "--model", help="Student directory (default: the workspace's student)."),
    videos: Optional[list[str]] = typer.Option(None, "--videos", help="Parquet glob(s): video_id + embedding, or text columns (default: the catalog shards)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Output directory (default: ARTIFACTS/annotations/student)."),
    engine: str = typer.Option("local", help="local (process per core) or ray (Ray Data actor pool)."),
    workers: Optional[int] = typer.Option(None, help="Processes (local) or actors (ray); default: one per core (local: one multi-threaded process for small jobs)."),
    batch_rows: int = typer.Option(8192, help="Rows per batch (bounds memory per worker)."),
    wave: int = typer.Option(8, help="Ray: shards per Ray Data job (the resume granularity)."),
    replace: bool = typer.Option(False, "--replace", help="Relabel an --out that holds another student's labels."),
    ws_path: Optional[Path] = WorkspaceOption,
    as_json: bool = JsonOption,
) -> None:
    """Label Parquet shards with a student; resumable by shard, same output on both engines."""
    ws = workspace(ws_path)
    with progress_bar(None, f"label ({engine})") as advance:
        done = [0]

        def progress(rows: int, total: int) -> None:
            advance(rows - done[0])
            done[0] = rows

        options = {"engine": engine, "workers": workers, "batch_rows": batch_rows, "wave": wave, "replace": replace,
                   **({"model": str(model)} if model else {}), **({"videos": list(videos)} if videos else {}),
                   **({"labels": artifacts_of(ws).at(out)} if out else {})}
        outcome, ctx = run_stage(ws, "label", options=options, progress=progress)
    summary = ctx.results["summary"]
    if as_json:
        print_json(summary)
    else:
        console.print(f"labelled {outcome.summary} -> {summary['out']} (run {outcome.run_id})", highlight=False, markup=False)


@bench_app.command("label")
def bench_label(
    rows: int = typer.Option(200_000, help="Stored-embedding rows for throughput (a)."),
    texts: int = typer.Option(1024, help="Real overviews for end-to-end throughput (b) and the baseline."),
    repeats: int = typer.Option(3, min=1, help="Runs of each measure, taken in turn; medians are reported."),
    scale_rows: int = typer.Option(0, help="Rows for the peak-memory test (e.g. 1000000; 0 skips it)."),
    ray: bool = typer.Option(True, help="Also measure the Ray engine."),
    ws_path: Optional[Path] = WorkspaceOption,
    as_json: bool = JsonOption,
) -> None:
    """Labelling throughput: stored embeddings, end to end, raw encoder, and the SetFit-style baseline."""
    from ..progress import status
    from ..scale.bench import run_label_bench

    ws = workspace(ws_path)
    with status("benchmarking") as update:
        result = run_label_bench(ws, rows=rows, texts=texts, repeats=repeats, scale_rows=scale_rows, ray=ray,
                                 progress=lambda message: update(f"bench label: {message}"))
    if as_json:
        print_json(result)
        return
    table = Table(title="labelling benchmark (this machine)")
    table.add_column("measure")
    table.add_column("value", justify="right")
    for key, value in result.items():
        if key == "runs":
            continue
        for name, item in (value.items() if isinstance(value, dict) else [("", value)]):
            table.add_row(f"{key} {name}".strip(), fmt(item))
    stdout.print(table)
