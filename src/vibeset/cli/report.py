"""``vibeset report``: one self-contained HTML file with the evaluation plots and every stage's results."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .app import JsonOption, WorkspaceOption, app, console, print_json, workspace


@app.command()
def report(
    runs: Optional[list[str]] = typer.Argument(
        None, help="Runs to show: registry run ids, or annotation job directories (also evaluated). Default: all."
    ),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="HTML file to write (default: ARTIFACTS/report.html)."),
    metrics: Optional[Path] = typer.Option(
        None, help="Evaluation JSON from 'vibeset evaluate --out' (default: ARTIFACTS/metrics.json when it exists)."
    ),
    bootstrap: int = typer.Option(500, help="Bootstrap replicates for annotators the metrics file lacks."),
    ws_path: Optional[Path] = WorkspaceOption,
    as_json: bool = JsonOption,
) -> None:
    """Write the HTML report: F1/MCC with CIs, precision-recall curves, rater agreement, run cost and
    throughput, and prompt versions, student vs teacher and retrieval when those stages have run."""
    from ..report import write_report

    ws = workspace(ws_path)
    target = out or ws.artifacts / "report.html"
    with console.status("building the report") as status:
        path, sections = write_report(
            ws,
            target,
            runs or [],
            metrics=metrics or ws.artifacts / "metrics.json",
            n_boot=bootstrap,
            progress=lambda message: status.update(f"report: {message}"),
        )
    summary = {
        "out": str(path),
        "bytes": path.stat().st_size,
        "sections": [s.id for s in sections],
        "figures": sum(len(s.figures) for s in sections),
        "missing": {s.id: s.missing for s in sections if s.missing},
    }
    if as_json:
        print_json(summary)
        return
    console.print(f"wrote {path} ({summary['bytes'] / 1024:.0f} KiB, {summary['figures']} figures)", highlight=False)
    for section, reason in summary["missing"].items():
        console.print(f"  {section}: {reason}", highlight=False, soft_wrap=True)
