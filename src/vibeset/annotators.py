"""Resolve annotator specs named on the command line into annotation tables.

Specs: ``zero-shot`` (the workspace's fitted encoder baseline, fitted on the golden dev
split when missing), ``annotations:DIR`` (labels any run wrote), and ``student``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import pandas as pd

from .annotate.zeroshot import ZeroShotAnnotator
from .annotation import read_annotations
from .catalog import Video
from .encoder import workspace_encoder
from .errors import ConfigError, NotFittedError
from .golden import workspace_golden
from .workspace import Workspace


def zero_shot_dir(workspace: Workspace) -> Path:
    return workspace.artifacts / "models" / "zero-shot"


def load_or_fit_zero_shot(workspace: Workspace, *, refit: bool = False) -> ZeroShotAnnotator:
    """The workspace's zero-shot annotator; fitted on the bundled golden dev split if missing or stale."""
    encoder = workspace_encoder(workspace)
    taxonomy = workspace.taxonomy
    if not refit:
        try:
            annotator = ZeroShotAnnotator.load(zero_shot_dir(workspace), encoder)
            annotator._check_fitted(taxonomy)
            return annotator
        except NotFittedError:
            pass
    dev = workspace_golden(workspace).split("dev")
    videos = workspace.catalog.subset(sorted(dev.pairs["video_id"].unique()))
    annotator = ZeroShotAnnotator(encoder).fit(list(videos), taxonomy, dev)
    annotator.save(zero_shot_dir(workspace))
    return annotator


def resolve(spec: str, workspace: Workspace, videos: Sequence[Video]) -> pd.DataFrame:
    """Annotations of ``videos`` by the annotator ``spec`` names."""
    if spec.startswith("annotations:"):
        frame = read_annotations(spec.split(":", 1)[1])
        return frame[frame["video_id"].isin({video.video_id for video in videos})]
    if spec == "zero-shot":
        return load_or_fit_zero_shot(workspace).annotate(videos, workspace.taxonomy)
    if spec == "student":
        from .distill.student import load_student

        return load_student(workspace).annotate(videos, workspace.taxonomy)
    raise ConfigError(f"unknown annotator {spec!r}; expected crowd, zero-shot, student or annotations:DIR")
