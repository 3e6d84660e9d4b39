"""``vibeset run`` (the declared pipeline, make-like) and the verbs of stages that have no other home."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..evaluation import verdict
from ..pipeline import NAMES, Outcome, run_pipeline, run_stage
from ..runs import taxonomy_in_use
from .app import JsonOption, WorkspaceOption, app, console, print_json, stdout, workspace


def _line(outcome: Outcome) -> str:
    if outcome.status == "up to date":
        return f"  {outcome.stage:<15} up to date"
    return f"  {outcome.stage:<15} ran in {outcome.seconds:5.1f} s  {outcome.summary}"


@app.command("run")
def run(
    start: Optional[str] = typer.Option(None, "--from", help=f"Start at this stage ({', '.join(NAMES)})."),
    only: list[str] = typer.Option([], "--only", help="Run only this stage (repeatable)."),
    force: bool = typer.Option(False, "--force", help="Run the stages even when they are up to date."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Also print the evaluation tables."),
    ws_path: Optional[Path] = WorkspaceOption,
    as_json: bool = JsonOption,
) -> None:
    """Run the pipeline: golden -> embed -> cf -> teacher -> silver -> distill -> label -> index -> evaluate ->
    eval-retrieval -> report. Stages whose inputs did not change are skipped; ends with a verdict."""
    ws = workspace(ws_path)
    if not as_json:
        taxonomy = taxonomy_in_use(ws)
        whose = "the workspace's" if taxonomy.version == ws.taxonomy.version else "promoted"
        stdout.print(f"vibeset run: {ws.config_file}: teacher {ws.config.pipeline.teacher}, taxonomy {taxonomy.version} "
                     f"({whose}), artifacts {ws.artifacts}", highlight=False, markup=False)
    outcomes, run_id = run_pipeline(ws, start=start, only=only, force=force,
                                    report=None if as_json else lambda o: stdout.print(_line(o), highlight=False, markup=False))
    lines = verdict(ws)
    if as_json:
        print_json({"run_id": run_id, "stages": [o.to_dict() for o in outcomes], "verdict": lines})
        return
    ran = [o.stage for o in outcomes if o.status == "ran"]
    stdout.print(f"run {run_id}: " + (f"ran {len(ran)} stage(s)" if ran else "nothing to do: every stage is up to date"),
                 highlight=False, markup=False)
    if verbose:
        from ..evaluation import read_metrics
        from ..artifacts import artifacts_of
        from .core import print_report

        metrics = artifacts_of(ws).get("metrics")
        if metrics.exists():
            print_report(read_metrics(metrics), "golden test split", per_attribute=True)
    stdout.print("verdict:", highlight=False, markup=False)
    for line in lines:
        stdout.print(f"  {line}", highlight=False, markup=False, soft_wrap=True)


def _stage_verb(ws_path: Optional[Path], name: str, as_json: bool) -> None:
    outcome, _ = run_stage(workspace(ws_path), name)
    if as_json:
        print_json(outcome.to_dict())
    else:
        console.print(f"{name}: {outcome.summary} (run {outcome.run_id})", highlight=False, markup=False)


@app.command()
def embed(ws_path: Optional[Path] = WorkspaceOption, as_json: bool = JsonOption) -> None:
    """Encode the catalog into shards (id, text, tags, text embedding) that training and labelling read."""
    _stage_verb(ws_path, "embed", as_json)


@app.command()
def cf(ws_path: Optional[Path] = WorkspaceOption, as_json: bool = JsonOption) -> None:
    """Fit collaborative user and item factors on the interactions (cold videos projected from their text)."""
    _stage_verb(ws_path, "cf", as_json)
