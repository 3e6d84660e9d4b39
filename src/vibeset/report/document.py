"""The self-contained HTML report: gather the evaluation and every stage's artifacts, render one file.

The file opens with no network: CSS is inlined from the web UI's stylesheet, plots are inline
SVG, and nothing references an external URL.
"""

from __future__ import annotations

import time
from importlib import resources
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import pandas as pd
from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

from ..annotators import labels, read_labels
from ..artifacts import Stamp, artifacts_of
from ..errors import VibesetError
from ..evaluation import evaluate_annotator, evaluate_crowd, read_metrics
from ..golden import workspace_golden
from ..runs import golden_split
from ..workspace import Workspace
from .browse import browse_section, confusion_section
from .verdict import shares_section, verdict_section
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

REPORT_FILE = "report.html"
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


def _metrics(workspace: Workspace, metrics: Path | None) -> dict[str, Any] | None:
    """The evaluation report: a file the user named, else the workspace's metrics artifact (None when absent)."""
    if metrics is not None:
        return read_metrics(artifacts_of(workspace).at(metrics.parent if metrics.suffix == ".json" else metrics, "metrics"))
    artifact = artifacts_of(workspace).get("metrics")
    return read_metrics(artifact) if artifact.exists() else None


def load_evaluation(
    workspace: Workspace,
    metrics: Path | None,
    extra: Sequence[str] = (),
    *,
    n_boot: int = 500,
    progress: Progress | None = None,
) -> Evaluation:
    """The evaluation of the metrics artifact (``vibeset evaluate``), extended with ``extra`` annotators.

    Annotation tables are re-read for the precision-recall curves; annotators the metrics lack are
    scored here on the same split (a recorded use when it is the test split). Nothing is fitted or saved.
    """
    say = progress or (lambda message: None)
    notes: list[str] = []
    report = _metrics(workspace, metrics)
    split = (report or {}).get("golden", {}).get("split", "test")
    say(f"golden set ({split} split)")
    if report is None:
        notes.append(f"no evaluation yet; '{artifacts_of(workspace).get('metrics').rebuild}' writes one")
        report = {"golden": {"split": split}, "annotators": {}}
    golden = workspace_golden(workspace)
    if report["golden"].get("version") not in (None, golden.version):
        notes.append(
            f"the evaluation was computed on golden version {report['golden'].get('version')}; the golden set is now "
            f"{golden.version} (new judgements?): re-run 'vibeset evaluate'"
        )
    fresh = [s for s in extra if s not in report["annotators"]]
    if fresh and split == "test":
        golden = golden_split(workspace, "test", final=True, purpose="report: annotators the metrics lack")
    else:
        golden = golden.split(None if split == "all" else split)
    dev = workspace_golden(workspace).split("dev")
    videos = list(workspace.catalog.subset(sorted(set(golden.pairs["video_id"]) & set(workspace.catalog.ids))))
    tables: dict[str, pd.DataFrame] = {}
    for name, block in report["annotators"].items():
        if name == "crowd":
            continue
        say(f"labels of {name}")
        try:
            tables[name] = _labels_of(workspace, name, block, videos, dev)
        except VibesetError as err:
            notes.append(f"{name}: cannot read its labels ({err})")
    if fresh and "crowd" not in report["annotators"]:
        report["annotators"]["crowd"] = evaluate_crowd(golden, n_boot=n_boot)  # the single-rater baseline
    for spec in fresh:
        say(f"evaluating {spec} (bootstrap CIs)")
        tables[spec] = labels(workspace, spec, videos, dev).frame
        report["annotators"][spec] = evaluate_annotator(golden, tables[spec], n_boot=n_boot)
    return Evaluation(report, golden, tables, notes)


def _labels_of(workspace: Workspace, name: str, block: Mapping[str, Any], videos: Sequence[Any], dev: Any) -> pd.DataFrame:
    if block.get("labels"):
        frame = read_labels(workspace, block["labels"])
        return frame[frame["video_id"].isin({v.video_id for v in videos})]
    return labels(workspace, name, videos, dev).frame


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
    catalog = artifacts_of(workspace)
    jobs_dirs = directories or [catalog.annotations(name).path for name in catalog.annotation_names()]
    if progress:
        progress("rater agreement, runs, stages")
    return [
        verdict_section(evaluation),
        evaluation_section(evaluation),
        shares_section(workspace),
        confusion_section(evaluation),
        pr_section(evaluation),
        agreement_section(workspace_golden(workspace)),
        browse_section(evaluation, workspace),
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
    stamp: Stamp,
    runs: Sequence[str] = (),
    *,
    metrics: Path | None = None,
    n_boot: int = 500,
    progress: Progress | None = None,
) -> tuple[Path, list[Section]]:
    """Build the report and write it as the report artifact; returns the HTML file and the sections."""
    sections = build_sections(workspace, runs, metrics=metrics, n_boot=n_boot, progress=progress)
    html = render(workspace, sections)
    artifact = artifacts_of(workspace).get("report")
    stamp.meta = {"sections": [s.id for s in sections], "figures": sum(len(s.figures) for s in sections)}
    with artifact.replace(stamp) as staging:
        (staging / REPORT_FILE).write_text(html, encoding="utf-8")
    return artifact.path / REPORT_FILE, sections
