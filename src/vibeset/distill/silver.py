"""The Silver Set: a stratified catalog sample labelled by the teacher, confidences kept.

The sample is stratified by primary tag (genre) and by ratings popularity, so the student
sees rare genres and unrated videos, not only the popular head. Golden test videos are left
out by default: the student is scored on them and must not have trained on their labels,
not even the teacher's. Labelling is resumable: an LLM teacher runs through the LLM run
engine (which skips annotated videos and replays its cache); any other teacher writes one
Parquet part per chunk, and parts already written are skipped.
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from ..annotation import check_annotations, read_annotations, write_annotations
from ..annotators import resolve
from ..catalog import Video
from ..errors import ConfigError, DataError
from ..hashing import content_hash
from ..workspace import Workspace
from ..files import atomic_write_text

POPULARITY_EDGES = (0, 1, 4, 21)  # ratings: none, 1-3, 4-20, 21+
MANIFEST = "silver.json"


def teacher_slug(teacher: str) -> str:
    """A directory-safe name: 'zero-shot', 'annotations:out/annotations/x' -> 'x', 'llm:openai:m' -> 'llm-openai-m'."""
    name = Path(teacher.split(":", 1)[1]).name if teacher.startswith("annotations:") else teacher
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-") or "teacher"


def silver_dir(workspace: Workspace, teacher: str) -> Path:
    return workspace.artifacts / "annotations" / f"silver-{teacher_slug(teacher)}"


def popularity(workspace: Workspace, video_ids: Sequence[str]) -> np.ndarray:
    """Ratings per video (0 without an [interactions] section)."""
    if workspace.config.interactions is None:
        return np.zeros(len(video_ids), dtype=np.int64)
    from ..retrieval.interactions import workspace_interactions

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

    @property
    def version(self) -> str:
        return content_hash(self.video_ids)


def sample_catalog(
    workspace: Workspace, n: int, *, seed: int = 0, exclude_golden_test: bool = True
) -> SilverSample:
    catalog = workspace.catalog
    frame = catalog.frame
    keep = np.ones(len(frame), dtype=bool)
    if exclude_golden_test and workspace.config.judgements is not None:
        from ..golden import workspace_golden

        test = set(workspace_golden(workspace).split("test").pairs["video_id"])
        keep = ~frame["video_id"].isin(test).to_numpy()
    ids = frame["video_id"].to_numpy()[keep]
    primary = [tags[0] if tags else "(none)" for tags in frame["tags"].to_numpy()[keep]]
    counts = popularity(workspace, list(ids))
    bucket = np.searchsorted(POPULARITY_EDGES, counts, side="right") - 1
    strata = [f"{tag}|pop{b}" for tag, b in zip(primary, bucket)]
    rows = stratified_sample(strata, n, seed=seed)
    return SilverSample([str(ids[r]) for r in rows], [strata[r] for r in rows])


def build_silver(
    workspace: Workspace,
    teacher: str,
    n: int,
    *,
    seed: int = 0,
    chunk: int = 1000,
    exclude_golden_test: bool = True,
    base_url: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Label a stratified sample of ``n`` videos with ``teacher`` into its silver directory; resumable.

    ``teacher``: ``zero-shot``, ``annotations:DIR`` (a run already made), ``student``, or
    ``llm:BACKEND:MODEL`` (through the LLM run engine). ``progress(done, total)`` is called per chunk.
    """
    sample = sample_catalog(workspace, n, seed=seed, exclude_golden_test=exclude_golden_test)
    out = silver_dir(workspace, teacher)
    out.mkdir(parents=True, exist_ok=True)
    manifest = out / MANIFEST
    if manifest.exists():
        previous = json.loads(manifest.read_text())
        if previous["sample_version"] != sample.version or previous["teacher"] != teacher:
            raise DataError(
                f"{out} holds a silver set of teacher {previous['teacher']!r}, sample {previous['sample_version']}; "
                f"this run asks for {teacher!r}, sample {sample.version}: remove the directory or change --seed/--sample"
            )
    videos = list(workspace.catalog.subset(sample.video_ids))
    _write_manifest(out, workspace, teacher, sample, seed, exclude_golden_test, status="running")
    if teacher.startswith("llm:"):
        _run_llm_teacher(workspace, teacher, videos, out, base_url, progress)
    else:
        _run_annotator_teacher(workspace, teacher, videos, out, chunk, progress)
    check_annotations(read_annotations(out), workspace.taxonomy, str(out))
    _write_manifest(out, workspace, teacher, sample, seed, exclude_golden_test, status="complete")
    return out


def _run_annotator_teacher(
    workspace: Workspace, teacher: str, videos: list[Video], out: Path, chunk: int, progress
) -> None:
    for number, start in enumerate(range(0, len(videos), chunk)):
        part = out / f"part-silver-{number:05d}.parquet"
        batch = videos[start : start + chunk]
        if not part.exists():
            frame = resolve(teacher, workspace, batch)
            missing = {v.video_id for v in batch} - set(frame["video_id"])
            if teacher.startswith("annotations:") and missing:
                raise DataError(
                    f"{teacher}: {len(missing)} sampled videos are not annotated there (e.g. {sorted(missing)[:3]}); "
                    "annotate the whole catalog first or use another teacher"
                )
            write_annotations(frame, part)
        if progress:
            progress(min(start + chunk, len(videos)), len(videos))


def _run_llm_teacher(workspace: Workspace, teacher: str, videos: list[Video], out: Path, base_url, progress) -> None:
    """``llm:BACKEND:MODEL`` through the LLM run engine: cache, retries, no duplicates, resumable."""
    from ..llm import engine
    from ..llm.config import LLMConfig

    parts = teacher.split(":", 2)
    if len(parts) != 3 or not parts[2]:
        raise ConfigError(f"LLM teacher must be llm:BACKEND:MODEL (e.g. llm:openai:gpt-4o-mini), got {teacher!r}")
    config = LLMConfig()
    backend = config.backend(parts[1], parts[2], base_url)

    def report(summary) -> None:
        if progress:
            progress(summary.finished, summary.total)

    asyncio.run(engine.run(videos, workspace.taxonomy, backend, config, out, progress=report))


def _write_manifest(out: Path, workspace: Workspace, teacher: str, sample: SilverSample, seed, exclude, status) -> None:
    strata = pd.Series(sample.strata).value_counts().sort_index()
    manifest = {
        "teacher": teacher,
        "status": status,
        "sample": len(sample.video_ids),
        "sample_version": sample.version,
        "seed": seed,
        "exclude_golden_test": exclude,
        "strata": {str(k): int(v) for k, v in strata.items()},
        "taxonomy_version": workspace.taxonomy.version,
        "catalog_videos": len(workspace.catalog),
    }
    atomic_write_text(out / MANIFEST, json.dumps(manifest, indent=2))


def load_silver(directory: str | Path) -> tuple[pd.DataFrame, dict]:
    """The silver annotations and their manifest."""
    directory = Path(directory)
    try:
        manifest = json.loads((directory / MANIFEST).read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise DataError(f"{directory}: not a silver set (no readable {MANIFEST}); run 'vibeset silver' first") from err
    return read_annotations(directory), manifest
