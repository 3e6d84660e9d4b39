"""The teacher: the annotator whose labels the Silver Set, the student and the index learn from.

Offline the teacher is the zero-shot annotator (the promoted zero-shot version when there is one,
else fitted on golden dev for the taxonomy in use); with an LLM configured it is the LLM run
engine. Either way its labels are an annotations artifact, written under a lock, so every later
stage reads them instead of running the teacher again.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any, Callable, Sequence

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ..annotation import SCHEMA, annotations_frame, read_annotations
from ..artifacts import Artifact, Stamp
from ..catalog import Video
from ..encoder import workspace_encoder
from ..errors import ConfigError
from ..golden import GoldenSet
from ..runs import champion
from ..taxonomy import Taxonomy
from ..workspace import Workspace
from .versions import load_zero_shot_version
from .zeroshot import ZeroShotAnnotator

ZERO_SHOT_PART = "part-zero-shot.parquet"


def teacher_slug(spec: str) -> str:
    """A directory-safe artifact name: 'zero-shot' -> 'zero-shot', 'llm:openai:gpt-4o' -> 'llm-openai-gpt-4o'."""
    name = Path(spec.split(":", 1)[1]).name if spec.startswith("annotations:") else spec
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-") or "teacher"


def zero_shot_teacher(workspace: Workspace, taxonomy: Taxonomy, dev: GoldenSet) -> ZeroShotAnnotator:
    """The promoted zero-shot version when it fits ``taxonomy``, else a fresh fit on golden dev (not saved)."""
    promoted = champion(workspace, "zero-shot")
    if promoted is not None:
        annotator = load_zero_shot_version(workspace, promoted.version)
        if annotator.taxonomy_version_ == taxonomy.version:
            return annotator
    videos = list(workspace.catalog.subset(sorted(set(dev.pairs["video_id"]) & set(workspace.catalog.ids))))
    return ZeroShotAnnotator(workspace_encoder(workspace)).fit(videos, taxonomy, dev)


def _owner(artifact: Artifact) -> str | None:
    return artifact.manifest().lineage.get("prompt_version") if artifact.exists() else None


def write_zero_shot_labels(
    annotator: ZeroShotAnnotator, videos: Sequence[Video], taxonomy: Taxonomy, artifact: Artifact, stamp: Stamp,
    *, replace: bool = False,
) -> dict[str, Any]:
    """Label ``videos`` into ``artifact``. Labels of other videos by the same annotator version are kept;
    labels by another version are refused unless ``replace`` (then they are dropped)."""
    owner = _owner(artifact)
    keep = pd.DataFrame(columns=list(SCHEMA.names))
    if owner is not None and owner != annotator.version:
        if not replace:
            raise ConfigError(
                f"{artifact.path} holds labels by zero-shot version {owner}, not {annotator.version}: "
                "pass --replace to relabel it, or choose another --out"
            )
    elif owner is not None:
        old = read_annotations(artifact)
        keep = old[~old["video_id"].isin({v.video_id for v in videos})]
    frame = annotator.annotate(list(videos), taxonomy, run_id=stamp.run_id)
    merged = annotations_frame(pd.concat([keep, frame], ignore_index=True)) if len(keep) else frame
    stamp.lineage = {"source": annotator.source, "model": annotator.encoder.name, "prompt_version": annotator.version,
                     "taxonomy_version": taxonomy.version, "golden_version": annotator.golden_version_, **(stamp.lineage or {})}
    stamp.meta = {"videos": int(merged["video_id"].nunique()), "attributes": len(taxonomy), **(stamp.meta or {})}
    with artifact.replace(stamp) as staging:
        pq.write_table(pa.Table.from_pandas(merged, schema=SCHEMA, preserve_index=False), staging / ZERO_SHOT_PART)
    return {"annotated": len(videos), "kept": int(keep["video_id"].nunique()) if len(keep) else 0, "rows": len(merged),
            "version": annotator.version}


def write_llm_labels(
    taxonomy: Taxonomy, model: str, artifact: Artifact, stamp: Stamp, execute: Callable[[Path, str], Any]
) -> Any:
    """Annotate with the LLM run engine into ``artifact``: ``execute(directory, run_id)`` runs the engine
    (local or Ray) and returns its ``RunSummary``. Resumable: an incomplete artifact is picked up again."""
    with artifact.update(stamp) as directory:
        summary = execute(directory, stamp.run_id)
        stamp.lineage = {"source": "llm", "model": model, "prompt_version": summary.prompt_version,
                         "taxonomy_version": taxonomy.version, **(stamp.lineage or {})}
        stamp.meta = {"annotated": summary.annotated, "failed": summary.failed, "calls": summary.calls,
                      "cost_usd": summary.cost_usd, **(stamp.meta or {})}
    return summary


def local_engine(videos: Sequence[Video], taxonomy: Taxonomy, backend: Any, config: Any,
                 progress: Callable[[Any], None] | None = None, prompt: Any = None) -> Callable[[Path, str], Any]:
    """``execute`` for ``write_llm_labels``: the run engine in this process (``prompt``: e.g. with few-shot examples)."""
    from ..llm.engine import run

    def execute(directory: Path, run_id: str) -> Any:
        return asyncio.run(run(videos, taxonomy, backend, config, directory, run_id=run_id, progress=progress,
                               prompt=prompt))

    return execute
