"""Distillation verbs: silver, distill, label, and ``bench label``."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from .app import JsonOption, WorkspaceOption, app, console, print_json, stdout, workspace
from .bench import bench_app
from .core import print_report


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn(),
        console=console, transient=True,
    )


@app.command()
def silver(
    teacher: str = typer.Option("zero-shot", help="zero-shot, annotations:DIR, student, or llm:BACKEND:MODEL (LLM run engine)."),
    sample: int = typer.Option(6000, "--sample", min=1, help="Videos in the stratified sample."),
    seed: int = typer.Option(0, help="Sampling seed."),
    include_golden_test: bool = typer.Option(False, help="Allow golden test videos in the sample (they are left out by default)."),
    base_url: Optional[str] = typer.Option(None, help="OpenAI-compatible endpoint for an llm: teacher."),
    ws_path: Optional[Path] = WorkspaceOption,
    as_json: bool = JsonOption,
) -> None:
    """Label a stratified catalog sample (by genre and ratings popularity) with the teacher; resumable."""
    from ..distill.silver import build_silver, load_silver

    ws = workspace(ws_path)
    with _progress() as bar:
        task = bar.add_task(f"silver ({teacher})", total=None)
        out = build_silver(
            ws, teacher, sample, seed=seed, exclude_golden_test=not include_golden_test, base_url=base_url,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )
    frame, manifest = load_silver(out)
    result = {
        "silver": str(out),
        "teacher": teacher,
        "videos": int(frame["video_id"].nunique()),
        "annotations": int(len(frame)),
        "positive_share": float(frame["label"].mean()),
        "strata": len(manifest["strata"]),
        "sample_version": manifest["sample_version"],
    }
    if as_json:
        print_json(result)
    else:
        stdout.print(f"silver set {out}: {result['videos']} videos x {ws.taxonomy.__len__()} attributes from {teacher}, "
                     f"{result['strata']} strata, {result['positive_share']:.1%} positive")


def _row(values: list) -> list[str]:
    return [f"{v:.3f}" if isinstance(v, float) and math.isfinite(v) else ("-" if isinstance(v, float) else str(v)) for v in values]


@app.command()
def distill(
    silver_dir: Optional[Path] = typer.Option(None, "--silver", help="Silver directory (default: the one for --teacher)."),
    teacher: str = typer.Option("zero-shot", help="Teacher whose silver set to use when --silver is not given."),
    groups: str = typer.Option("text,tags,cf", help="Feature groups: text,tags,cf[,frames] or 'all'."),
    objective: str = typer.Option("mcc", help="Per-attribute thresholds on golden dev: f1, mcc or precision:P."),
    frames: Optional[Path] = typer.Option(None, help="Parquet of video_id + embedding from an image encoder (group 'frames')."),
    ablation: bool = typer.Option(True, help="Also train text / +tags / +cf students and compare them."),
    router: bool = typer.Option(True, help="Report the teacher-student router trade-off."),
    bootstrap: int = typer.Option(500, help="Bootstrap replicates for the 95% CIs."),
    out: Optional[Path] = typer.Option(None, help="Student directory (default: ARTIFACTS/models/student)."),
    report_path: Optional[Path] = typer.Option(None, "--report", help="Where to write the JSON report (default: ARTIFACTS/distill/report.json)."),
    ws_path: Optional[Path] = WorkspaceOption,
    as_json: bool = JsonOption,
) -> None:
    """Train the student on the Silver Set, calibrate on golden dev, export ONNX, and score it on golden test."""
    import json

    from ..distill.distillation import run_distillation
    from ..distill.features import parse_groups
    from ..distill.silver import silver_dir as default_silver

    ws = workspace(ws_path)
    with console.status("distilling") as status:
        report = run_distillation(
            ws, silver_dir or default_silver(ws, teacher), groups=parse_groups(groups), objective=objective,
            ablation=ablation, router=router, frames=frames, n_boot=bootstrap, out=out,
            progress=lambda message: status.update(f"distill: {message}"),
        )
    report_path = report_path or ws.artifact("distill", "report.json")
    report_path.parent.mkdir(parents=True, exist_ok=True)
    report_path.write_text(json.dumps(report, indent=2, default=float))
    if as_json:
        print_json(report)
        return
    g = report["golden"]
    print_report(report, f"teacher vs student vs crowd, golden test: {g['pairs']} pairs, {g['videos']} videos", per_attribute=False)
    a = report["agreement"]
    stdout.print(
        f"student vs teacher on {a['heldout_videos']} held-out silver videos: label agreement {a['label_agreement']:.3f}, "
        f"AUC vs teacher labels {a['auc_vs_teacher_labels']:.3f}, Spearman vs teacher scores {a['spearman_vs_teacher_scores']:.3f}"
    )
    if report["ablation"]:
        table = Table(title="feature-group ablation (golden test)")
        for column in ("groups", "micro AUC", "macro AUC", "micro F1", "micro MCC", "dAUC vs teacher", "agree w/ teacher"):
            table.add_column(column, justify="left" if column == "groups" else "right")
        for r in report["ablation"]:
            table.add_row(*_row([r["groups"], r["micro_roc_auc"], r["macro_roc_auc"], r["micro_f1"], r["micro_mcc"],
                                 r["delta_micro_auc_vs_teacher"], r["teacher_label_agreement"]]))
        stdout.print(table)
    if report.get("router"):
        table = Table(title="teacher-student router (golden test; band calibrated on dev)")
        for column in ("budget", "band", "pairs to teacher", "teacher calls", "micro F1", "micro MCC", "micro AUC", "macro AUC"):
            table.add_column(column, justify="right")
        for r in report["router"]:
            table.add_row(*_row([r["budget"], r["band_width"], r["teacher_pairs_share"], r["teacher_calls_share"],
                                 r["micro_f1"], r["micro_mcc"], r["micro_auc"], r["macro_auc"]]))
        stdout.print(table)
    stdout.print(f"student {report['student']['version']} saved to {report['student']['directory']}")


@app.command()
def label(
    model: Path = typer.Option(..., "--model", help="Student directory (e.g. out/models/student)."),
    videos: list[str] = typer.Option(..., "--videos", help="Parquet glob(s): video_id + embedding, or text columns (repeatable)."),
    out: Path = typer.Option(..., "--out", help="Output directory: one annotations shard per input shard."),
    engine: str = typer.Option("local", help="local (process per core) or ray (Ray Data actor pool)."),
    workers: Optional[int] = typer.Option(None, help="Processes (local) or actors (ray); default: one per core (local: one multi-threaded process for small jobs)."),
    batch_rows: int = typer.Option(8192, help="Rows per batch (bounds memory per worker)."),
    wave: int = typer.Option(8, help="Ray: shards per Ray Data job (the resume granularity)."),
    replace: bool = typer.Option(False, "--replace", help="Relabel an --out that holds another student's labels."),
    as_json: bool = JsonOption,
) -> None:
    """Label Parquet shards with a student; resumable by shard, same output on both engines."""
    from ..distill.label import label as run_label

    with _progress() as bar:
        task = bar.add_task(f"label ({engine})", total=None)
        summary = run_label(
            model, videos, out, engine=engine, workers=workers, batch_rows=batch_rows, wave=wave, replace=replace,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )
    if as_json:
        print_json(summary)
    else:
        stdout.print(
            f"labelled {summary['videos']:,} videos ({summary['annotations']:,} annotations) in {summary['shards_labelled']} shards "
            f"({summary['shards_skipped']} already done) with {engine}: {summary['videos_per_s']:,.0f} videos/s -> {out}"
        )


@bench_app.command("label")
def bench_label(
    rows: int = typer.Option(200_000, help="Stored-embedding rows for throughput (a)."),
    texts: int = typer.Option(1024, help="Real overviews for end-to-end throughput (b) and the baseline."),
    scale_rows: int = typer.Option(0, help="Rows for the peak-memory test (e.g. 1000000; 0 skips it)."),
    ray: bool = typer.Option(True, help="Also measure the Ray engine."),
    ws_path: Optional[Path] = WorkspaceOption,
    as_json: bool = JsonOption,
) -> None:
    """Labelling throughput: stored embeddings, end to end, raw encoder, and the SetFit-style baseline."""
    from ..distill.bench import run_label_bench

    ws = workspace(ws_path)
    with console.status("benchmarking") as status:
        result = run_label_bench(ws, rows=rows, texts=texts, scale_rows=scale_rows, ray=ray,
                                 progress=lambda message: status.update(f"bench label: {message}"))
    if as_json:
        print_json(result)
        return
    table = Table(title="labelling benchmark (this machine)")
    table.add_column("measure")
    table.add_column("value", justify="right")
    for key, value in result.items():
        table.add_row(key, f"{value:,.3f}" if isinstance(value, float) else str(value))
    stdout.print(table)
