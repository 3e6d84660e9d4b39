"""Extra tag sources: tables of video id + tag a workspace declares beside its catalog.

User tags, editorial keywords, a community's labels: each is evidence about a video's vibes.
A source is read through its column mapping (several tags in one cell with ``separator``),
tags are lower-cased and stripped, and a video's weight for a tag is ``log1p`` of how many
rows give it that tag (ten users saying "atmospheric" is more than one). Tags on fewer than
``min_videos`` catalog videos are dropped: they cannot generalise.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from .errors import DataError
from .tables import read_table, require_columns
from .workspace import TagSourceConfig, Workspace


def read_tag_source(workspace: Workspace, source: TagSourceConfig) -> pd.DataFrame:
    """(video_id, tag, count) rows of one declared source."""
    path = workspace.path(source.path)
    raw = read_table(path, dtype=str)
    require_columns(raw, {"video": source.video, "tag": source.tag}, path)
    frame = pd.DataFrame({"video_id": raw[source.video].fillna("").astype(str).str.strip(),
                          "tag": raw[source.tag].fillna("").astype(str)})
    if source.separator:
        frame = frame.assign(tag=frame["tag"].str.split(source.separator, regex=False)).explode("tag")
    frame["tag"] = frame["tag"].fillna("").str.strip().str.lower()
    frame = frame[(frame["tag"] != "") & (frame["video_id"] != "")]
    if frame.empty:
        raise DataError(f"{path}: tag source {source.name!r} has no (video, tag) rows")
    return frame.groupby(["video_id", "tag"], as_index=False).size().rename(columns={"size": "count"})


def tag_matrix(rows: pd.DataFrame, ids: Sequence[str], *, min_videos: int, vocabulary: Sequence[str] | None = None
               ) -> tuple[np.ndarray, list[str]]:
    """Videos ``ids`` x tags, ``log1p(count)``; the vocabulary is the tags on >= ``min_videos`` of ``ids``
    unless given (a fitted vocabulary applied to other videos)."""
    position = pd.Index(list(ids))
    rows = rows[rows["video_id"].isin(position)]
    if vocabulary is None:
        spread = rows.groupby("tag")["video_id"].nunique()
        vocabulary = sorted(spread[spread >= min_videos].index)
    columns = pd.Index(list(vocabulary))
    matrix = np.zeros((len(position), len(columns)), dtype=np.float32)
    rows = rows[rows["tag"].isin(columns)]
    matrix[position.get_indexer(rows["video_id"]), columns.get_indexer(rows["tag"])] = np.log1p(rows["count"].to_numpy(np.float32))
    return matrix, list(columns)


def workspace_tag_sources(workspace: Workspace) -> dict[str, pd.DataFrame]:
    """Every declared source by name, in declaration order."""
    return {source.name: read_tag_source(workspace, source) for source in workspace.config.tag_sources}
