"""Foundation verbs: init, golden, evaluate."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import pandas as pd
import typer
from rich.table import Table

from ..annotators import evaluate_specs
from ..artifacts import Stamp, artifacts_of
from ..catalog import load_catalog
from ..evaluation import write_metrics
from ..golden import agreement_report, workspace_golden
from ..metrics import fmt
from ..pipeline import run_stage
from ..runs import recorded
from ..workspace import init_workspace
from .app import (JsonOption, WorkspaceOption, app, bootstrap_option, check_split, console, fail, print_json,
                  split_option, stdout, workspace)


@app.command()
def init(
    directory: Optional[Path] = typer.Argument(None, help="Where to write the workspace (default: --workspace or .)."),
    force: bool = typer.Option(False, "--force", help="Overwrite the starter files that already exist."),
    ws_path: Optional[Path] = WorkspaceOption,
    as_json: bool = JsonOption,
) -> None:
    """Write a starter workspace: a commented vibeset.toml and taxonomy.yaml, and a small sample catalog,
    judgements and interactions that 'vibeset run' runs end to end. Replace the samples with your files."""
    if directory is not None and ws_path is not None and directory != ws_path:
        fail("give the directory once: as an argument or as --workspace")
    target = directory or ws_path or Path(".")
    written = init_workspace(target, force=force)
    if as_json:
        print_json({"workspace": str(target.resolve()), "files": [str(p.resolve()) for p in written]})
        return
    console.print(f"wrote {', '.join(p.name for p in written)} to {target}")
    console.print(f"next: vibeset run -w {target}   (then open {target}/out/report/report.html, or 'vibeset serve -w {target}')")
    console.print("your own data: replace the sample files and edit the column mappings; docs/workspace.md has every field")


@app.command()
def golden(
    survey: Optional[Path] = typer.Option(None, help="Show the golden set of another survey-format file (nothing is written)."),
    ws_path: Optional[Path] = WorkspaceOption,
    as_json: bool = JsonOption,
) -> None:
    """Build the golden set and report pairs, raters per pair, prevalence and Krippendorff's alpha."""
    ws = workspace(ws_path)
    if survey is not None:
        gold = workspace_golden(ws, survey)
        if gold.pairs.empty:
            fail(f"{survey}: no judged pair maps to a taxonomy attribute and a catalog video "
                 f"({gold.summary()['unmatched_judgements']:,} judgements with unmatched tags)")
        report = agreement_report(gold)
        summary = {**gold.summary(), "version": gold.version}
    else:
        run_stage(ws, "golden")
        artifact = artifacts_of(ws).get("golden")
        report = artifact.read("agreement.parquet", pd.read_parquet)
        summary = artifact.manifest().meta
    if as_json:
        print_json({"golden": summary, "attributes": report.to_dict("records")})
        return
    table = Table(
        title=f"golden set {summary['version']}: {summary['pairs']:,} pairs, {summary['videos']:,} videos, "
        f"{summary['judgements']:,} judgements, prevalence {summary['prevalence']:.2f} "
        f"({summary['skipped_videos']} judged videos not in the catalog)"
    )
    if summary.get("unmatched_judgements"):
        console.print(f"note: {summary['unmatched_judgements']:,} judgements had a tag that matches no vibe and were left "
                      f"out: {_tags(summary.get('unmatched_tags', {}))}; add them as aliases in the taxonomy to count them")
    for column in report.columns:
        table.add_column(column, justify="right" if column != "attribute" else "left")
    for record in report.itertuples(index=False):
        table.add_row(*[fmt(v) for v in record])
    stdout.print(table)


def _tags(counts: dict) -> str:
    shown = sorted(counts.items(), key=lambda kv: -kv[1])[:8]
    return ", ".join(f"'{tag}' ({n})" for tag, n in shown) + (", ..." if len(counts) > 8 else "")


MIN_N = 20  # per-vibe rows with fewer pairs show n but no scores: their intervals span most of [-1, 1]


def print_report(report: dict, title: str, per_attribute: bool = True) -> None:
    """Rich tables: per attribute (optional) and overall, each annotator side by side."""
    for view, label in (("all", "all golden pairs"), ("head_to_head", "head-to-head on the crowd's ratings")):
        per_attribute = per_attribute and view == "all"
        table = Table(title=f"{title} - {label}", show_lines=False)
        for column in ("attribute", "annotator", "n", "prev", "P", "R", "F1 [95% CI]", "MCC [95% CI]", "AUC [95% CI]"):
            table.add_column(column, justify="left" if column in ("attribute", "annotator") else "right")
        names = list(report["annotators"])
        first = report["annotators"][names[0]]
        attributes = list((first if view == "all" else first["head_to_head"])["per_attribute"]) if per_attribute else []
        for attribute in [*attributes, "micro", "macro"]:
            for name in names:
                result = report["annotators"][name]
                block = result if view == "all" else result.get("head_to_head")
                if not block:
                    continue
                values = block[attribute] if attribute in ("micro", "macro") else block["per_attribute"].get(attribute)
                if values is None:
                    continue
                if attribute not in ("micro", "macro") and (values.get("n") or 0) < MIN_N:
                    table.add_row(attribute, name, str(values["n"]), fmt(values.get("prevalence")), *["-"] * 4,
                                  f"(n < {MIN_N})")
                    continue
                table.add_row(
                    attribute.upper() if attribute in ("micro", "macro") else attribute,
                    name,
                    str(values["n"]),
                    fmt(values.get("prevalence")),
                    fmt(values["precision"]),
                    fmt(values["recall"]),
                    fmt(values["f1"], values["ci"]["f1"]),
                    fmt(values["mcc"], values["ci"]["mcc"]),
                    fmt(values.get("roc_auc"), values["ci"].get("roc_auc")),
                )
            if attribute != "macro":
                table.add_section()
        stdout.print(table)


@app.command()
def evaluate(
    annotator: list[str] = typer.Option(
        ["crowd", "zero-shot"], "--annotator", "-a",
        help="crowd, zero-shot, zero-shot@VERSION, champion, student, or annotations:DIR (repeatable).",
    ),
    survey: Optional[Path] = typer.Option(None, help="Survey-format judgements to evaluate on (default: the workspace's)."),
    catalog: Optional[Path] = typer.Option(None, help="Catalog file, read with the workspace's column mapping."),
    split: str = split_option("dev", ("dev", "test", "all"), "Golden split to score (test and all are recorded uses of test)."),
    bootstrap: int = bootstrap_option(500),
    per_attribute: bool = typer.Option(True, help="Print per-attribute rows, not only micro/macro."),
    ws_path: Optional[Path] = WorkspaceOption,
    as_json: bool = JsonOption,
) -> None:
    """Score annotators against a golden set built from survey judgements; writes the metrics artifact.

    Thresholds and anything learned come only from the workspace's golden dev split, never
    from --survey.
    """
    split = check_split(split, ("dev", "test", "all"))
    ws = workspace(ws_path)
    if catalog is not None:
        ws.__dict__["catalog"] = load_catalog(catalog, ws.config.catalog.columns)
    with recorded(ws, "evaluate", {"annotators": annotator, "split": split, "survey": survey, "bootstrap": bootstrap}) as run:
        report = evaluate_specs(ws, annotator, split=split, survey=survey, n_boot=bootstrap)
        if survey is None and catalog is None:
            write_metrics(report, artifacts_of(ws).get("metrics"), Stamp(run.run_id, stage="evaluate"))
        run.metrics = {name: {k: block[k] for k in ("micro", "macro")} for name, block in report["annotators"].items()}
    if as_json:
        print_json(report)
    else:
        g = report["golden"]
        print_report(
            report,
            f"golden {split} split: {g['pairs']} pairs, {g['videos']} videos, prevalence {g['prevalence']:.2f}",
            per_attribute,
        )
