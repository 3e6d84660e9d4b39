"""User interactions (ratings) read through the workspace's column mapping, and their temporal split.

The split is by one global time cutoff, not per user: everything the model trains on happened
before everything it is evaluated on, so no future leaks into the embeddings.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .errors import ConfigError, DataError
from .tables import read_table, require_columns
from .workspace import InteractionColumns, Workspace

COLUMNS = ("user_id", "video_id", "rating", "timestamp")


def read_interactions(path: str | Path, columns: InteractionColumns | None = None) -> pd.DataFrame:
    """Interactions as ``user_id, video_id`` (str), ``rating`` (float; 1 when unmapped) and ``timestamp`` (int64; row order when unmapped)."""
    columns = columns or InteractionColumns()
    raw = read_table(path, dtype=str)
    require_columns(raw, columns.model_dump(), path)
    frame = pd.DataFrame(
        {
            "user_id": raw[columns.user].astype(str).str.strip(),
            "video_id": raw[columns.video].astype(str).str.strip(),
        }
    )
    for role, default in (("rating", 1.0), ("timestamp", None)):
        column = getattr(columns, role)
        if column is None:
            frame[role] = default if default is not None else np.arange(len(raw), dtype=np.int64)
            continue
        values = pd.to_numeric(raw[column], errors="coerce")
        if values.isna().any():
            row = int(np.flatnonzero(values.isna().to_numpy())[0])
            raise DataError(f"{path}: line {row + 2}: {role} {raw[column].iloc[row]!r} is not a number")
        frame[role] = values.astype("float64" if role == "rating" else "int64")
    if frame.empty:
        raise DataError(f"{path}: no interactions")
    return frame


def workspace_interactions(workspace: Workspace) -> pd.DataFrame:
    """The interactions named by the workspace's ``[interactions]`` section."""
    config = workspace.require_interactions()
    return read_interactions(workspace.path(config.path), config.columns)


def temporal_split(frame: pd.DataFrame, *, test_fraction: float = 0.1) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split at the time quantile ``1 - test_fraction``; test keeps only users seen in train."""
    if not 0.0 < test_fraction < 1.0:
        raise ConfigError(f"test_fraction must be in (0, 1), got {test_fraction}")
    cutoff = frame["timestamp"].quantile(1.0 - test_fraction)
    before = frame["timestamp"] < cutoff
    train, test = frame[before], frame[~before]
    test = test[test["user_id"].isin(set(train["user_id"]))]
    if train.empty or test.empty:
        raise DataError(f"temporal split at {cutoff} leaves {len(train)} train and {len(test)} test interactions")
    return train.reset_index(drop=True), test.reset_index(drop=True)
