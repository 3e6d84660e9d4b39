"""Building a workspace's attribute index: CF embeddings from its interactions, postings from annotations."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import pandas as pd

from ..annotation import check_annotations, read_annotations
from ..encoder import Encoder, workspace_encoder
from ..errors import DataError
from ..workspace import Workspace
from .collaborative import CollaborativeModel
from .index import AttributeIndex, build_index
from .interactions import workspace_interactions


def default_annotations(workspace: Workspace) -> Path:
    """The student's labels when they exist, else the zero-shot annotator's."""
    for name in ("student", "zero-shot"):
        path = workspace.artifacts / "annotations" / name
        if path.exists() and any(path.glob("*.parquet")):
            return path
    raise DataError(
        f"no annotations under {workspace.artifacts / 'annotations'} (student or zero-shot); "
        "annotate first or pass --annotations DIR"
    )


def index_root(workspace: Workspace) -> Path:
    return workspace.artifacts / "index"


def fit_collaborative(
    workspace: Workspace,
    interactions: pd.DataFrame,
    *,
    encoder: Encoder | None = None,
    model: CollaborativeModel | None = None,
    progress: Callable[[int], None] | None = None,
) -> CollaborativeModel:
    """Fit CF on ``interactions`` for every catalog video; cold videos via their MiniLM text embedding."""
    catalog = workspace.catalog
    encoder = encoder or workspace_encoder(workspace)
    content = encoder.encode(catalog.texts(), progress)
    return (model or CollaborativeModel()).fit(interactions, catalog.ids, content)


def build_workspace_index(
    workspace: Workspace,
    annotations_dir: str | Path | None = None,
    *,
    model: CollaborativeModel | None = None,
    progress: Callable[[int], None] | None = None,
) -> AttributeIndex:
    """The index of a workspace (not saved): all interactions, all catalog videos, the given labels."""
    source = Path(annotations_dir) if annotations_dir else default_annotations(workspace)
    annotations = check_annotations(read_annotations(source), workspace.taxonomy, str(source))
    interactions = workspace_interactions(workspace)
    fitted = fit_collaborative(workspace, interactions, model=model, progress=progress)
    catalog = workspace.catalog
    return build_index(
        item_ids=fitted.item_ids_,
        titles=list(catalog.frame["title"]),
        item_factors=fitted.item_factors_,
        user_ids=fitted.user_ids_,
        user_factors=fitted.user_factors_,
        interactions=interactions,
        annotations=annotations,
        taxonomy=workspace.taxonomy,
        popularity=fitted.popularity_,
        manifest={
            "annotations": str(source),
            "collaborative": {**fitted.params(), "cold_items": int(fitted.cold_.sum()), "projection_r2": None if fitted.projection_r2_ != fitted.projection_r2_ else fitted.projection_r2_},
            "interactions": len(interactions),
        },
    )
