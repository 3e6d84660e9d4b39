"""Building a workspace's attribute index from artifacts: labels, collaborative factors and the catalog.

The index version's manifest carries the lineage chain of its labels (label run -> student ->
silver run -> teacher -> golden), read from the labels' own manifest, so every served answer can
say where its labels came from.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..annotation import check_annotations, read_annotations
from ..artifacts import Artifact, Stamp
from ..interactions import workspace_interactions
from ..runs import taxonomy_in_use
from ..workspace import Workspace
from .collaborative import load_collaborative
from .index import ALS, AttributeIndex, build_index, unit_scale
from .sequential import SASREC, load_sequential, sequential_vectors


def _find(lineage: dict[str, Any], kind: str) -> dict[str, Any]:
    """The first artifact of ``kind`` in a nested lineage (depth first through its inputs)."""
    if lineage.get("kind") == kind:
        return lineage
    for upstream in lineage.get("inputs", {}).values():
        found = _find(upstream, kind)
        if found:
            return found
    return {}


def lineage_chain(labels: dict[str, Any]) -> dict[str, Any]:
    """label run -> student version -> silver run -> teacher (model, prompt, taxonomy) -> golden version."""
    student = _find(labels, "student")
    silver = _find(labels, "silver")
    teacher = silver.get("inputs", {}).get("teacher", {}) if silver else labels
    golden = _find(labels, "golden")
    return {
        "label_run": labels.get("run_id", ""),
        "labels": labels.get("name", ""),
        "student_version": student.get("student_version", ""),
        "silver_run": silver.get("run_id", ""),
        "teacher": {key: teacher.get(key, "") for key in ("model", "prompt_version", "taxonomy_version")},
        "golden_version": golden.get("golden_version", "") or teacher.get("golden_version", ""),
    }


def build_workspace_index(
    workspace: Workspace, labels: Artifact, collaborative: Artifact, ranker: Artifact | None = None
) -> AttributeIndex:
    """The index of a workspace (not saved): collaborative factors of every catalog video, ``labels``' postings,
    and, given the ``ranker`` artifact, the sequential model's vectors and the defaults chosen offline."""
    taxonomy = taxonomy_in_use(workspace)
    annotations = check_annotations(read_annotations(labels), taxonomy, str(labels.path))
    interactions = workspace_interactions(workspace)
    fitted = load_collaborative(collaborative)
    catalog = workspace.catalog
    if fitted.item_ids_ != catalog.ids:
        raise collaborative.error(collaborative.path, "was fitted for another catalog")
    source = labels.lineage()
    rankers, defaults = {}, {"ranker": ALS, "blend": 0.0, "chosen_by": "no ranker artifact: ALS without blend"}
    if ranker is not None:
        model = load_sequential(ranker)
        rankers[SASREC] = sequential_vectors(model, interactions, fitted.user_ids_, fitted.item_ids_)
        chosen = ranker.complete_manifest().meta.get("selection", {}).get("chosen", {})
        defaults = {"ranker": chosen.get("ranker", ALS), "blend": float(chosen.get("blend", 0.0)),
                    "chosen_by": f"validation NDCG in ranker run {ranker.complete_manifest().run_id}"}
    return build_index(
        item_ids=fitted.item_ids_,
        titles=list(catalog.frame["title"]),
        item_factors=fitted.item_factors_,
        user_ids=fitted.user_ids_,
        user_factors=unit_scale(fitted.item_factors_, fitted.user_factors_),
        interactions=interactions,
        annotations=annotations,
        taxonomy=taxonomy,
        popularity=fitted.popularity_,
        manifest={
            "annotations": str(labels.path),
            "lineage": lineage_chain(source),
            "collaborative": {**fitted.params(), "cold_items": int(fitted.cold_.sum())},
            "interactions": len(interactions),
            "domain": workspace.config.domain,
            "defaults": defaults,
        },
        rankers=rankers,
    )


def save_index(index: AttributeIndex, artifact: Artifact, stamp: Stamp, *, keep: int = 3) -> Path:
    """Write a new index version, make it current, and stamp the index artifact with its lineage."""
    with artifact.update(stamp) as root:
        path = index.save(root, keep=keep)
        stamp.lineage = {"index_version": index.version, **(stamp.lineage or {})}
        stamp.meta = {"version": index.version, "items": len(index), "users": len(index.user_ids)}
    return path
