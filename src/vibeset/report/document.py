"""The self-contained HTML report: gather the evaluation and every stage's artifacts, render one file.

The file opens with no network: CSS is inlined from the web UI's stylesheet, plots are inline
SVG, and nothing references an external URL.
"""

from __future__ import annotations

import json
import time
from importlib import resources
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any, Callable, Sequence

import pandas as pd
from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

from ..annotators import resolve
from ..errors import DataError, VibesetError
from ..evaluation import evaluate_all, evaluate_annotator
from ..files import atomic_write_text
from ..golden import workspace_golden
from ..workspace import Workspace
from .sections import (
    Evaluation,
    Section,
    agreement_section,
    distill_section,
    evaluation_section,
    manifest_runs,
    pr_section,
    registry_runs,
    retrieval_section,
    runs_section,
    versions_section,
)

DEFAULT_ANNOTATORS = ("zero-shot",)
Progress = Callable[[str], None]


def templates() -> Environment:
    """The Jinja environment of the report and the web UI (autoescape on for every template)."""
    return Environment(loader=PackageLoader("vibeset", "web/templates"), autoescape=select_autoescape(["html"]))


def stylesheet() -> str:
    return resources.files("vibeset").joinpath("web/static/style.css").read_text(encoding="utf-8")


def split_runs(workspace: Workspace, runs: Sequence[str]) -> tuple[list[Path], list[str]]:
    """RUN arguments: an existing directory is an annotation job's output; anything else a registry run id."""
    directories, ids = [], []
    for run in runs:
        path = Path(run)
        if path.is_dir():
            directories.append(path)
        else:
            ids.append(run)
    return directories, ids


def load_evaluation(
    workspace: Workspace,
    metrics: Path | None,
    extra: Sequence[str] = (),
    *,
    n_boot: int = 500,
    progress: Progress | None = None,
) -> Evaluation:
    """The evaluation in ``metrics`` (as ``vibeset evaluate --out`` wrote it), extended with ``extra`` annotators.

    Without a metrics file, crowd and the zero-shot baseline are evaluated on the golden test
    split. Annotation tables are re-read for the precision-recall curves either way.
    """
    say = progress or (lambda message: None)
    notes: list[str] = []
    report: dict[str, Any] | None = None
    if metrics is not None and metrics.is_file():
        try:
            report = json.loads(metrics.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise DataError(f"{metrics}: not an evaluation JSON ({err}); re-run 'vibeset evaluate --out {metrics}'") from err
        if "annotators" not in report or "golden" not in report:
            raise DataError(f"{metrics}: expected keys 'golden' and 'annotators' (the output of 'vibeset evaluate --out')")
    split = (report or {}).get("golden", {}).get("split", "test")
    say(f"golden set ({split} split)")
    golden = workspace_golden(workspace).split(None if split == "all" else split)
    if report is None:
        notes.append(f"evaluated here on the golden {split} split (no metrics file; 'vibeset evaluate --out out/metrics.json' writes one)")
        report = {"golden": {}, "annotators": {}}
    elif report["golden"].get("version") != golden.version:
        notes.append(
            f"{metrics.name if metrics else 'metrics'} was computed on golden version {report['golden'].get('version')}; "
            f"the golden set is now {golden.version} (new judgements?): re-run 'vibeset evaluate'"
        )
    specs = [name for name in report["annotators"] if name != "crowd"]
    wanted = [*specs, *(s for s in extra if s not in specs)] or list(DEFAULT_ANNOTATORS)
    videos = list(workspace.catalog.subset(sorted(set(golden.pairs["video_id"]) & set(workspace.catalog.ids))))
    tables: dict[str, pd.DataFrame] = {}
    for spec in wanted:
        say(f"labels of {spec}")
        try:
            tables[spec] = resolve(spec, workspace, videos)
        except VibesetError as err:
            notes.append(f"{spec}: cannot read its labels ({err})")
    fresh = {name: frame for name, frame in tables.items() if name not in report["annotators"]}
    if not report["annotators"]:
        say("evaluating (bootstrap CIs)")
        report = evaluate_all(golden, fresh, n_boot=n_boot)
        report["golden"]["split"] = split
    else:
        for name, frame in fresh.items():
            say(f"evaluating {name} (bootstrap CIs)")
            report["annotators"][name] = evaluate_annotator(golden, frame, n_boot=n_boot)
    return Evaluation(report, golden, tables, notes)


def build_sections(
    workspace: Workspace,
    runs: Sequence[str] = (),
    *,
    metrics: Path | None = None,
    n_boot: int = 500,
    progress: Progress | None = None,
) -> list[Section]:
    """Every section of the report for ``workspace``; ``runs`` narrows the runs shown and adds annotators."""
    directories, ids = split_runs(workspace, runs)
    evaluation = load_evaluation(
        workspace, metrics, [f"annotations:{d}" for d in directories], n_boot=n_boot, progress=progress
    )
    registry = registry_runs(workspace, ids)
    annotations = workspace.artifacts / "annotations"
    jobs_dirs = directories or (sorted(p for p in annotations.iterdir() if p.is_dir()) if annotations.is_dir() else [])
    if progress:
        progress("rater agreement, runs, stages")
    return [
        evaluation_section(evaluation),
        pr_section(evaluation),
        agreement_section(workspace_golden(workspace)),
        runs_section(registry, manifest_runs(jobs_dirs)),
        versions_section(registry if not ids else registry_runs(workspace)),
        distill_section(workspace),
        retrieval_section(workspace),
    ]


def render(workspace: Workspace, sections: Sequence[Section]) -> str:
    """One HTML document; SVG strings are trusted (built with escaping in ``charts``)."""
    for section in sections:
        for figure in section.figures:
            figure.svg = Markup(figure.svg)  # type: ignore[assignment]
    return templates().get_template("report.html").render(
        sections=sections,
        css=Markup(stylesheet()),
        taxonomy=workspace.taxonomy,
        created=time.strftime("%Y-%m-%d %H:%M %Z"),
        version=package_version("vibeset"),
        workspace=str(workspace.root),
    )


def write_report(
    workspace: Workspace,
    out: Path,
    runs: Sequence[str] = (),
    *,
    metrics: Path | None = None,
    n_boot: int = 500,
    progress: Progress | None = None,
) -> tuple[Path, list[Section]]:
    """Build and write the report atomically; returns its path and sections."""
    sections = build_sections(workspace, runs, metrics=metrics, n_boot=n_boot, progress=progress)
    html = render(workspace, sections)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, html)
    return out, sections
