"""The Silver Set: a stratified catalog sample with its teacher's labels, confidences kept.

The sample is stratified by primary tag (the first of the catalog's tags column; tags held by fewer
than ``MIN_STRATUM`` videos share one "(other)" stratum) and by interaction popularity, so the student
sees rare tags and unwatched videos, not only the popular head. Golden test videos are left out by default:
the student is scored on them and must not have trained on their labels, not even the teacher's.
The labels are read from the teacher's annotations artifact; only sampled videos it lacks are
annotated (``annotate_missing``, e.g. an LLM run into the silver directory, resumable).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ..annotation import SCHEMA, check_annotations, read_annotations
from ..artifacts import Artifact, Stamp
from ..catalog import Video
from ..errors import DataError
from ..hashing import content_hash
from ..interactions import workspace_interactions
from ..taxonomy import Taxonomy
from ..workspace import Workspace

POPULARITY_EDGES = (0, 1, 4, 21)  # interactions: none, 1-3, 4-20, 21+
MIN_STRATUM = 5  # videos a primary tag needs to be its own stratum
SAMPLE = "sample.parquet"
COPIED = "part-teacher.parquet"

#: ``annotate_missing(videos, directory, run_id)`` labels videos the teacher's artifact lacks into ``directory``.
Filler = Callable[[list[Video], Path, str], None]


def popularity(workspace: Workspace, video_ids: Sequence[str]) -> np.ndarray:
    """Interactions per video (0 without an [interactions] section)."""
    if workspace.config.interactions is None:
        return np.zeros(len(video_ids), dtype=np.int64)
    counts = workspace_interactions(workspace)["video_id"].value_counts()
    return counts.reindex(list(video_ids), fill_value=0).to_numpy(np.int64)


def stratified_sample(strata: Sequence[str], n: int, *, seed: int = 0) -> np.ndarray:
    """Row indices of a proportional stratified sample (largest remainder; every stratum >= 1 when n allows)."""
    strata = pd.Series(list(strata))
    if n >= len(strata):
        return np.arange(len(strata))
    sizes = strata.value_counts().sort_index()
    quota = sizes / sizes.sum() * n
    take = np.floor(quota).astype(int)
    if n >= len(sizes):
        take = take.clip(lower=1)
    remainder = n - int(take.sum())
    order = (quota - np.floor(quota)).sort_values(ascending=False, kind="stable").index
    for stratum in order:
        if remainder <= 0:
            break
        if take[stratum] < sizes[stratum]:
            take[stratum] += 1
            remainder -= 1
    while remainder < 0:  # the >= 1 floor overshot: trim the largest strata
        biggest = take.idxmax()
        take[biggest] -= 1
        remainder += 1
    rng = np.random.default_rng(seed)
    rows = [rng.choice(np.flatnonzero(strata.to_numpy() == s), size=min(int(k), int(sizes[s])), replace=False) for s, k in take.items()]
    return np.sort(np.concatenate(rows))


@dataclass
class SilverSample:
    """Which videos the teacher labels, and the stratum each came from."""

    video_ids: list[str]
    strata: list[str]
    requested: int = 0  # the sample size asked for
    eligible: int = 0  # catalog videos it could come from (golden test videos left out)

    @property
    def shortfall(self) -> str:
        """A warning when fewer videos were sampled than asked for ('' otherwise)."""
        if len(self.video_ids) >= self.requested:
            return ""
        return (f"warning: silver_sample is {self.requested:,} but only {self.eligible:,} catalog videos are eligible "
                f"(golden test videos are left out): the Silver Set has {len(self.video_ids):,}")

    @property
    def version(self) -> str:
        return content_hash(self.video_ids)


def sample_catalog(workspace: Workspace, n: int, *, seed: int = 0, exclude: set[str] = frozenset()) -> SilverSample:
    """A stratified sample of ``n`` catalog videos, none of ``exclude`` (the golden test videos)."""
    frame = workspace.catalog.frame
    keep = ~frame["video_id"].isin(exclude).to_numpy()
    ids = frame["video_id"].to_numpy()[keep]
    primary = pd.Series([tags[0] if tags else "(none)" for tags in frame["tags"].to_numpy()[keep]], dtype=object)
    sizes = primary.map(primary.value_counts())
    primary = primary.where(sizes >= MIN_STRATUM, "(other)").tolist()
    counts = popularity(workspace, list(ids))
    bucket = np.searchsorted(POPULARITY_EDGES, counts, side="right") - 1
    strata = [f"{tag}|pop{b}" for tag, b in zip(primary, bucket)]
    rows = stratified_sample(strata, n, seed=seed)
    return SilverSample([str(ids[r]) for r in rows], [strata[r] for r in rows], requested=n, eligible=len(ids))


def build_silver(
    workspace: Workspace,
    sample: SilverSample,
    taxonomy: Taxonomy,
    teacher: Artifact | None,
    out: Artifact,
    stamp: Stamp,
    *,
    annotate_missing: Filler | None = None,
) -> dict:
    """Write the silver artifact: the sample, the teacher's labels of it, and labels for videos it lacked."""
    wanted = set(sample.video_ids)
    copied = read_annotations(teacher) if teacher is not None else pd.DataFrame(columns=list(SCHEMA.names))
    copied = copied[copied["video_id"].isin(wanted)]
    have = set(copied["video_id"])
    missing = [v for v in sample.video_ids if v not in have]
    if missing and annotate_missing is None:
        raise DataError(
            f"the teacher's labels ({teacher.path if teacher else 'none'}) lack {len(missing)} of the {len(wanted)} sampled "
            f"videos (e.g. {missing[:3]}); annotate them first or let the silver stage call the teacher"
        )
    strata = pd.Series(sample.strata).value_counts().sort_index()
    stamp.meta = {"sample": len(sample.video_ids), "sample_version": sample.version, "copied_videos": int(copied["video_id"].nunique()),
                  "annotated_videos": len(missing), "strata": {str(k): int(v) for k, v in strata.items()},
                  "catalog_videos": len(workspace.catalog), **(stamp.meta or {})}
    stamp.lineage = {"sample_version": sample.version, "taxonomy_version": taxonomy.version, **(stamp.lineage or {})}
    previous = out.manifest().meta.get("sample_version") if out.exists() else None
    with out.update(stamp) as directory:
        for stale in directory.glob("*.parquet") if previous != sample.version else ():
            stale.unlink()  # another sample: nothing here is reusable (a resumed one keeps its parts)
        pq.write_table(pa.table({"video_id": sample.video_ids, "stratum": sample.strata}), directory / SAMPLE)
        pq.write_table(pa.Table.from_pandas(copied, schema=SCHEMA, preserve_index=False), directory / COPIED)
        if missing:
            annotate_missing(list(workspace.catalog.subset(missing)), directory, stamp.run_id)
        labels = check_annotations(_labels(directory), taxonomy, str(directory))
    return {"videos": int(labels["video_id"].nunique()), "annotations": len(labels), "copied": stamp.meta["copied_videos"],
            "annotated": len(missing), "positive_share": float(labels["label"].mean()) if len(labels) else 0.0,
            "strata": len(strata), "sample_version": sample.version}


def _labels(directory: Path) -> pd.DataFrame:
    parts = [p for p in sorted(directory.glob("part-*.parquet"))]
    return pd.concat([read_annotations(p) for p in parts], ignore_index=True)


def load_silver(artifact: Artifact) -> tuple[pd.DataFrame, dict]:
    """The silver labels and the artifact's metadata (sample, strata, teacher lineage)."""
    manifest = artifact.complete_manifest()
    frames = [artifact.read(p.name, read_annotations) for p in sorted(artifact.path.glob("part-*.parquet"))]
    if not frames:
        raise artifact.error(artifact.path, "holds no silver labels")
    return pd.concat(frames, ignore_index=True), {**manifest.meta, **manifest.lineage}
