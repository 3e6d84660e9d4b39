"""Foundation verbs: init, golden, evaluate."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from ..catalog import load_catalog
from ..evaluation import evaluate_all
from ..golden import agreement_report, workspace_golden
from ..iterate.guard import record_test_use, uses_of_test_split
from ..iterate.versions import check_spec, labels
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
    survey: Optional[Path] = typer.Option(None, help="Survey-format judgements (default: the workspace's)."),
    ws_path: Optional[Path] = WorkspaceOption,
    as_json: bool = JsonOption,
) -> None:
    """Build the golden set and report pairs, raters per pair, prevalence and Krippendorff's alpha."""
    ws = workspace(ws_path)
    gold = workspace_golden(ws, survey)
    report = agreement_report(gold)
    if as_json:
        print_json({"golden": {**gold.summary(), "version": gold.version}, "attributes": report.to_dict("records")})
        return
    summary = gold.summary()
    table = Table(
        title=f"golden set {gold.version}: {summary['pairs']:,} pairs, {summary['videos']:,} videos, "
        f"{summary['judgements']:,} judgements, prevalence {summary['prevalence']:.2f} "
        f"({summary['skipped_videos']} judged videos not in the catalog)"
    )
    for column in report.columns:
        table.add_column(column, justify="right" if column != "attribute" else "left")
    for record in report.itertuples(index=False):
        table.add_row(*[f"{v:.3f}" if isinstance(v, float) else str(v) for v in record])
    stdout.print(table)


def _fmt(value: float | None, ci: list[float] | None = None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    text = f"{value:.3f}"
    if ci and all(math.isfinite(x) for x in ci):
        text += f" [{ci[0]:.2f},{ci[1]:.2f}]"
    return text


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
                    _fmt(values.get("prevalence")),
                    _fmt(values["precision"]),
                    _fmt(values["recall"]),
                    _fmt(values["f1"], values["ci"]["f1"]),
                    _fmt(values["mcc"], values["ci"]["mcc"]),
                    _fmt(values.get("roc_auc"), values["ci"].get("roc_auc")),
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
    split: str = typer.Option("all", help="Golden split to score: all, dev or test."),
    out: Optional[Path] = typer.Option(None, help="Also write the JSON report here (e.g. out/metrics.json)."),
    bootstrap: int = typer.Option(500, help="Bootstrap replicates for the 95% CIs."),
    per_attribute: bool = typer.Option(True, help="Print per-attribute rows, not only micro/macro."),
    ws_path: Optional[Path] = WorkspaceOption,
    as_json: bool = JsonOption,
) -> None:
    """Score annotators against a golden set built from survey judgements.

    Thresholds and anything learned come only from the workspace's golden dev split, never
    from --survey.
    """
    if split not in ("all", "dev", "test"):
        fail(f"--split must be all, dev or test, not {split!r}")
    ws = workspace(ws_path)
    if catalog is not None:
        ws.__dict__["catalog"] = load_catalog(catalog, ws.config.catalog.columns)
    full = workspace_golden(ws, survey)
    gold = full.split(None if split == "all" else split)
    if gold.pairs.empty:
        fail("the golden set is empty: no judged pair maps to a taxonomy attribute and a catalog video")
    for name in annotator:
        if name != "crowd":
            check_spec(ws, name)  # a typo must not spend a look at the test split
    if survey is None and split != "dev":
        record_test_use(ws, full.version, f"vibeset evaluate --split {split}")
    videos = list(ws.catalog.subset(sorted(gold.pairs["video_id"].unique())))
    dev = full.split("dev") if survey is None else workspace_golden(ws).split("dev")
    tables = {name: labels(ws, name, videos, dev).frame for name in annotator if name != "crowd"}
    report = evaluate_all(gold, tables, crowd="crowd" in annotator, n_boot=bootstrap)
    report["golden"]["split"] = split
    report["golden"]["test_split_uses"] = uses_of_test_split(ws, full.version) if survey is None else None
    report["taxonomy_version"] = ws.taxonomy.version
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2))
    if as_json:
        print_json(report)
    else:
        g = report["golden"]
        print_report(
            report,
            f"golden {split} split: {g['pairs']} pairs, {g['videos']} videos, prevalence {g['prevalence']:.2f}",
            per_attribute,
        )
