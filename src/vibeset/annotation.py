"""Annotations: one row per (video, attribute) with score, label, evidence and lineage.

Every annotator writes this table, so evaluation, distillation, indexing and the UI read
one shape whatever made the labels (LLM, zero-shot encoder, student, human).
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Mapping, Protocol, Sequence, runtime_checkable

import pandas as pd
import pyarrow as pa

from .artifacts import Artifact
from .catalog import Video
from .errors import DataError
from .files import atomic_write_table
from .taxonomy import Taxonomy

SCHEMA = pa.schema(
    [
        ("video_id", pa.string()),
        ("attribute", pa.string()),
        ("score", pa.float32()),
        ("label", pa.bool_()),
        ("evidence", pa.string()),
        ("source", pa.string()),
        ("model", pa.string()),
        ("run_id", pa.string()),
        ("prompt_version", pa.string()),
        ("taxonomy_version", pa.string()),
    ]
)
COLUMNS = tuple(SCHEMA.names)


@runtime_checkable
class Annotator(Protocol):
    """Anything that labels videos with taxonomy attributes.

    ``annotate`` returns an annotations frame (``COLUMNS``), one row per (video, attribute).
    ``score`` is the annotator's belief in [0, 1] where it has one; ``label`` its decision.
    """

    name: str
    source: str

    def annotate(self, videos: Sequence[Video], taxonomy: Taxonomy) -> pd.DataFrame: ...


def annotations_frame(rows: Iterable[Mapping[str, object]] | pd.DataFrame) -> pd.DataFrame:
    """Coerce rows into the annotations frame, filling optional lineage columns with ''."""
    frame = pd.DataFrame(rows) if not isinstance(rows, pd.DataFrame) else rows.copy()
    for column in COLUMNS:
        if column not in frame.columns:
            if column in ("video_id", "attribute", "label"):
                raise DataError(f"annotations lack required column {column!r}")
            frame[column] = float("nan") if column == "score" else ""
    frame = frame[list(COLUMNS)]
    frame["video_id"] = frame["video_id"].astype(str)
    frame["score"] = frame["score"].astype("float32")
    frame["label"] = frame["label"].astype(bool)
    for column in COLUMNS[4:]:
        frame[column] = frame[column].fillna("").astype(str)
    return frame.reset_index(drop=True)


def check_annotations(frame: pd.DataFrame, taxonomy: Taxonomy, source: str = "annotations") -> pd.DataFrame:
    """Raise on unknown attributes or duplicated (video, attribute) rows; return the frame."""
    unknown = sorted(set(frame["attribute"]) - set(taxonomy.names))
    if unknown:
        raise DataError(f"{source}: unknown attribute(s) {unknown}; taxonomy {taxonomy.version} has {taxonomy.names}")
    duplicated = frame.duplicated(["video_id", "attribute"])
    if duplicated.any():
        first = frame.loc[duplicated].iloc[0]
        raise DataError(f"{source}: duplicate annotation for video {first.video_id!r}, attribute {first.attribute!r}")
    return frame


def write_annotations(frame: pd.DataFrame, path: str | Path) -> Path:
    """Write annotations to one Parquet part atomically (temp file + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pandas(annotations_frame(frame), schema=SCHEMA, preserve_index=False)
    return atomic_write_table(table, path)


def _read_part(file: Path) -> pd.DataFrame:
    frame = pd.read_parquet(file)
    missing = [c for c in ("video_id", "attribute", "label") if c not in frame.columns]
    if missing:
        raise DataError(f"not an annotations file, missing {missing}")
    return annotations_frame(frame)


def read_annotations(source: Artifact | str | Path) -> pd.DataFrame:
    """The annotations of an artifact (its manifest must say it is complete), or of a user's Parquet
    file / directory of parts. A corrupt part is an error naming the file."""
    artifact = source if isinstance(source, Artifact) else None
    path = artifact.path if artifact else Path(source)
    if artifact is not None:
        artifact.complete_manifest()
    files = sorted(path.glob("*.parquet")) if path.is_dir() else [path]
    if not files or not all(file.exists() for file in files):
        raise DataError(f"{path}: no annotations found (expected a Parquet file or a directory of them)")
    frames = []
    for file in files:
        if artifact is not None:
            frames.append(artifact.read(file.name, _read_part))
            continue
        try:
            frames.append(_read_part(file))
        except (OSError, ValueError, DataError) as err:
            raise DataError(f"{file}: cannot read annotations: {str(err).splitlines()[0]}") from err
    return pd.concat(frames, ignore_index=True)
