"""``vibeset report``: one self-contained HTML file with the evaluation plots and every stage's results."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..pipeline import run_stage
from .app import JsonOption, WorkspaceOption, app, console, print_json, stdout, workspace


@app.command()
def report(
    runs: Optional[list[str]] = typer.Argument(
        None, help="Runs to show: registry run ids, or annotation job directories (also evaluated). Default: all."
    ),
    metrics: Optional[Path] = typer.Option(None, help="An evaluation JSON (default: the workspace's metrics artifact)."),
    bootstrap: int = typer.Option(500, "--bootstrap", min=0, help="Bootstrap replicates for annotators the metrics lack."),
    markdown: bool = typer.Option(False, "--markdown", help="Print the README's results section from the artifacts (writes nothing)."),
    ws_path: Optional[Path] = WorkspaceOption,
    as_json: bool = JsonOption,
) -> None:
    """Write the HTML report (ARTIFACTS/report/report.html): F1/MCC with CIs, precision-recall curves, rater
    agreement, run cost and throughput, prompt versions, student vs teacher and retrieval when those stages ran."""
    ws = workspace(ws_path)
    if markdown:
        from ..report.markdown import results_markdown

        text = results_markdown(ws)
        if as_json:
            print_json({"markdown": text})
        else:
            stdout.print(text, end="", soft_wrap=True)
        return
    options = {"runs": list(runs or []), "n_boot": bootstrap, **({"metrics": metrics} if metrics else {})}
    outcome, ctx = run_stage(ws, "report", options=options)
    sections = ctx.results["sections"]
    path = ctx.artifacts.get("report").path / "report.html"
    summary = {
        "out": str(path),
        "bytes": path.stat().st_size,
        "sections": [s.id for s in sections],
        "figures": sum(len(s.figures) for s in sections),
        "missing": {s.id: s.missing for s in sections if s.missing},
        "run_id": outcome.run_id,
    }
    if as_json:
        print_json(summary)
        return
    console.print(f"wrote {path} ({summary['bytes'] / 1024:.0f} KiB, {summary['figures']} figures)", highlight=False, markup=False)
    for section, reason in summary["missing"].items():
        console.print(f"  {section}: {reason}", highlight=False, soft_wrap=True, markup=False)
