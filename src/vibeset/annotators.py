"""Annotator specs: the one grammar every verb uses to name an annotator, and the labels each gives.

    crowd               a single human rater (evaluation only)
    evidence            the evidence teacher: learned from golden dev over text, tags, behaviour, zero-shot and
                        LLM scores (its labels artifact; fitted on dev, in memory, when absent)
    zero-shot           the workspace's zero-shot annotator (its artifact; fitted on golden dev, in memory, when absent)
    zero-shot@VERSION   a refined zero-shot version, or a taxonomy version measured with zero-shot thresholds
    champion            the promoted version (``vibeset iterate promote``)
    student             the distilled student, applied to the videos
    annotations:DIR     the labels a run wrote (an annotations artifact, or any directory of Parquet parts)
    llm:BACKEND:MODEL   an LLM through the run engine (a teacher for ``silver`` and ``vibeset run``)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import pandas as pd

from .annotate.teacher import teacher_slug, zero_shot_teacher
from .annotate.versions import find_version, load_taxonomy_version, load_zero_shot_version
from .annotate.zeroshot import ZeroShotAnnotator
from .annotation import read_annotations
from .artifacts import MANIFEST, artifacts_of
from .catalog import Video
from .encoder import workspace_encoder
from .errors import ConfigError
from .golden import GoldenSet, workspace_golden
from .runs import champion, taxonomy_in_use
from .taxonomy import Taxonomy
from .workspace import Workspace

KINDS = ("crowd", "evidence", "zero-shot", "champion", "student", "annotations", "llm")
GRAMMAR = "crowd, evidence, zero-shot, zero-shot@VERSION, champion, student, annotations:DIR or llm:BACKEND:MODEL"


@dataclass(frozen=True)
class Spec:
    """A parsed annotator spec: its kind and argument (version, directory, or backend:model)."""

    text: str
    kind: str
    value: str = ""

    @property
    def slug(self) -> str:
        return teacher_slug(self.text)


def parse_spec(text: str, allowed: Sequence[str] = KINDS) -> Spec:
    """Parse ``text``; an unknown or malformed spec is an error listing the grammar."""
    if text.startswith("zero-shot@"):
        kind, value = "zero-shot", text[len("zero-shot@"):]
        valid = bool(value)
    elif ":" in text:
        kind, value = text.split(":", 1)
        valid = kind in ("annotations", "llm") and bool(value) and (kind != "llm" or ":" in value.strip(":"))
    else:
        kind, value = text, ""
        valid = kind in ("crowd", "evidence", "zero-shot", "champion", "student")
    if not valid or kind not in allowed:
        choices = GRAMMAR if tuple(allowed) == KINDS else ", ".join(allowed)
        raise ConfigError(f"unknown annotator {text!r}; expected {choices}")
    return Spec(text, kind, value)


def check_spec(workspace: Workspace, text: str, allowed: Sequence[str] = KINDS) -> Spec:
    """``parse_spec`` plus a look that what it names exists (before any golden split is read)."""
    spec = parse_spec(text, allowed)
    if spec.kind == "zero-shot" and spec.value:
        find_version(workspace, spec.value)
    elif spec.kind == "annotations" and not Path(spec.value).exists():
        raise ConfigError(f"{text}: no such annotations file or directory")
    elif spec.kind == "champion" and champion(workspace) is None:
        raise ConfigError("no champion promoted yet; run 'vibeset iterate promote VERSION'")
    return spec


@dataclass(frozen=True)
class Labels:
    """An annotator's labels of some videos, with what produced them."""

    spec: str
    frame: pd.DataFrame
    version: str
    model: str
    taxonomy_version: str


def _joined(frame: pd.DataFrame, column: str) -> str:
    return ",".join(sorted(set(frame[column].dropna().astype(str)) - {""}))


def zero_shot_for(workspace: Workspace, spec: Spec, dev: GoldenSet) -> tuple[ZeroShotAnnotator, Taxonomy]:
    """The zero-shot annotator and taxonomy a ``zero-shot[@V]`` spec names.

    ``V`` is a zero-shot version, or a taxonomy version: then thresholds are fitted on ``dev``
    for that taxonomy's definitions (how an edited definition is measured offline).
    """
    if not spec.value:
        taxonomy = taxonomy_in_use(workspace)
        artifact = artifacts_of(workspace).get("zero-shot")
        if artifact.exists():
            annotator = ZeroShotAnnotator.load(artifact, workspace_encoder(workspace))
            if annotator.taxonomy_version_ == taxonomy.version:
                return annotator, taxonomy
        return zero_shot_teacher(workspace, taxonomy, dev), taxonomy
    kind, version, path = find_version(workspace, spec.value)
    if kind == "zero-shot":
        annotator = load_zero_shot_version(workspace, version)
        return annotator, load_taxonomy_version(workspace, annotator.taxonomy_version_)
    taxonomy = load_taxonomy_version(workspace, path)
    dev_videos = list(workspace.catalog.subset(sorted(set(dev.pairs["video_id"]) & set(workspace.catalog.ids))))
    return ZeroShotAnnotator(workspace_encoder(workspace)).fit(dev_videos, taxonomy, dev), taxonomy


def evidence_labels(workspace: Workspace, taxonomy: Taxonomy, dev: GoldenSet) -> pd.DataFrame:
    """The evidence teacher's labels of the catalog: its artifact when it fits ``taxonomy`` and ``dev``, else a fit
    in memory over the pipeline's shards and collaborative model (``vibeset run --only teacher`` saves one)."""
    from .annotate.evidence import EvidenceTeacher, workspace_evidence

    artifacts = artifacts_of(workspace)
    labels = artifacts.annotations("evidence")
    if labels.exists():
        lineage = labels.manifest().lineage
        if lineage.get("taxonomy_version") == taxonomy.version and lineage.get("golden_version") == dev.version:
            return read_annotations(labels)
    shards, cf = artifacts.get("shards"), artifacts.get("cf")
    evidence = workspace_evidence(workspace, taxonomy, shards=shards, collaborative=cf if cf.exists() else None)
    teacher = EvidenceTeacher(objective=workspace.config.pipeline.distill_objective,
                              base_rate=workspace.config.pipeline.base_rate).fit(evidence, dev, taxonomy)
    return teacher.annotate(evidence, taxonomy)


def read_labels(workspace: Workspace, directory: str | Path) -> pd.DataFrame:
    """Labels in ``directory``: through its manifest when it is an artifact, else its Parquet parts."""
    path = Path(directory)
    if path.is_dir() and (path / MANIFEST).exists():
        return read_annotations(artifacts_of(workspace).at(path))
    return read_annotations(path)


def labels(workspace: Workspace, text: str, videos: Sequence[Video], dev: GoldenSet) -> Labels:
    """Annotations of ``videos`` by the annotator ``text`` names; ``dev`` fits thresholds where needed."""
    spec = check_spec(workspace, text, [k for k in KINDS if k not in ("crowd", "llm")])
    if spec.kind == "champion":
        spec = parse_spec(f"zero-shot@{champion(workspace).version}")
    if spec.kind == "zero-shot":
        annotator, taxonomy = zero_shot_for(workspace, spec, dev)
        frame = annotator.annotate(list(videos), taxonomy)
        return Labels(text, frame, annotator.version, annotator.encoder.name, taxonomy.version)
    if spec.kind == "evidence":
        frame = evidence_labels(workspace, taxonomy_in_use(workspace), dev)
        frame = frame[frame["video_id"].isin({video.video_id for video in videos})]
        return Labels(text, frame, _joined(frame, "prompt_version"), _joined(frame, "model"), _joined(frame, "taxonomy_version"))
    if spec.kind == "student":
        from .distill.student import load_student

        student = load_student(workspace)
        frame = student.annotate(list(videos), taxonomy_in_use(workspace))
    else:
        frame = read_labels(workspace, spec.value)
        frame = frame[frame["video_id"].isin({video.video_id for video in videos})]
    return Labels(text, frame, _joined(frame, "prompt_version"), _joined(frame, "model"), _joined(frame, "taxonomy_version"))


def evaluate_specs(
    workspace: Workspace,
    specs: Sequence[str],
    *,
    split: str = "dev",
    survey: str | Path | None = None,
    n_boot: int = 500,
) -> dict:
    """Score annotators (and ``crowd``) on a golden split, or on another survey file under the workspace's rules.

    Thresholds and anything learned come only from the workspace's golden dev split. The test split
    is read through the guard (recorded before any label is scored).
    """
    from .evaluation import evaluate_all
    from .runs import golden_split, uses_of_test_split

    if split not in ("all", "dev", "test"):
        raise ConfigError(f"--split must be all, dev or test, not {split!r}")
    for text in specs:
        if text != "crowd":
            check_spec(workspace, text)  # a typo must not spend a look at the test split
    full = workspace_golden(workspace, survey)
    dev = workspace_golden(workspace).split("dev") if survey else full.split("dev")
    if survey is None and split != "dev":
        golden_split(workspace, "test", final=True, purpose=f"vibeset evaluate --split {split}")
    gold = full if split == "all" else full.split(split)
    if gold.pairs.empty:
        raise ConfigError("the golden set is empty: no judged pair maps to a taxonomy attribute and a catalog video")
    videos = list(workspace.catalog.subset(sorted(gold.pairs["video_id"].unique())))
    tables = {text: labels(workspace, text, videos, dev).frame for text in specs if text != "crowd"}
    report = evaluate_all(gold, tables, crowd="crowd" in specs, n_boot=n_boot)
    report["golden"]["split"] = split
    report["golden"]["test_split_uses"] = uses_of_test_split(workspace) if survey is None else None
    report["taxonomy_version"] = taxonomy_in_use(workspace).version
    return report
