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
from ..workspace import CONFIG_NAME, TEMPLATE
from .app import JsonOption, WorkspaceOption, app, console, fail, print_json, stdout, workspace


@app.command()
def init(
    directory: Path = typer.Argument(Path("."), help="Where to write vibeset.toml."),
    force: bool = typer.Option(False, help="Overwrite an existing vibeset.toml."),
    as_json: bool = JsonOption,
) -> None:
    """Write a commented workspace config naming your catalog, taxonomy, judgements and interactions."""
    target = directory / CONFIG_NAME
    if target.exists() and not force:
        fail(f"{target} exists; pass --force to overwrite")
    directory.mkdir(parents=True, exist_ok=True)
    target.write_text(TEMPLATE)
    if as_json:
        print_json({"config": str(target.resolve())})
    else:
        console.print(f"wrote {target}; edit the paths and column mappings, then run 'vibeset golden'")


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
    for column in report.columns:
        table.add_column(column, justify="right" if column != "attribute" else "left")
    for record in report.itertuples(index=False):
        table.add_row(*[fmt(v) for v in record])
    stdout.print(table)


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
    split: str = typer.Option("dev", help="Golden split to score: dev, test or all (test and all are recorded uses of test)."),
    bootstrap: int = typer.Option(500, help="Bootstrap replicates for the 95% CIs."),
    per_attribute: bool = typer.Option(True, help="Print per-attribute rows, not only micro/macro."),
    ws_path: Optional[Path] = WorkspaceOption,
    as_json: bool = JsonOption,
) -> None:
    """Score annotators against a golden set built from survey judgements; writes the metrics artifact.

    Thresholds and anything learned come only from the workspace's golden dev split, never
    from --survey.
    """
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
