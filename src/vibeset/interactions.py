"""User interactions read through the workspace's column mapping: explicit ratings or implicit feedback.

Every frame has the same columns whatever the source:

- ``rating``: the rating, or 1 for implicit feedback (views, clicks);
- ``weight``: the mapped weight column (watch time, plays), or 1;
- ``strength`` in [0, 1]: how strongly the interaction speaks for the video (scaled rating, or
  ``log1p`` of the weight, which is heavy-tailed) -- the confidence collaborative filtering uses;
- ``positive``: a like (rating at or above the workspace's ``positive``, else at or above the
  user's own mean rating; every implicit interaction with a non-zero weight);
- ``timestamp``: when, or the row order when unmapped.

Two splits: one global time cutoff (nothing the models train on happened after anything they are
tested on) and per-user leave-last-N (every user with enough history is tested on their last N).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .errors import ConfigError, DataError
from .tables import read_table, require_columns
from .workspace import InteractionColumns, Workspace

COLUMNS = ("user_id", "video_id", "rating", "weight", "timestamp", "strength", "positive")


def _numbers(raw: pd.DataFrame, column: str, role: str, path: str | Path) -> pd.Series:
    values = pd.to_numeric(raw[column], errors="coerce")
    bad = values.isna() | ~np.isfinite(values.fillna(0.0))
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataError(f"{path}: line {row + 2}: {role} {raw[column].iloc[row]!r} is not a number")
    return values


def read_interactions(
    path: str | Path, columns: InteractionColumns | None = None, *, positive: float | None = None
) -> pd.DataFrame:
    """Interactions with the columns of ``COLUMNS`` (see the module docstring)."""
    columns = columns or InteractionColumns()
    raw = read_table(path, dtype=str)
    require_columns(raw, columns.model_dump(), path)
    if raw.empty:
        raise DataError(f"{path}: no interactions")
    frame = pd.DataFrame(
        {"user_id": raw[columns.user].astype(str).str.strip(), "video_id": raw[columns.video].astype(str).str.strip()}
    )
    frame["rating"] = _numbers(raw, columns.rating, "rating", path).astype("float64") if columns.rating else 1.0
    frame["weight"] = _numbers(raw, columns.weight, "weight", path).astype("float64") if columns.weight else 1.0
    if columns.weight and (frame["weight"] < 0).any():
        row = int(np.flatnonzero((frame["weight"] < 0).to_numpy())[0])
        raise DataError(f"{path}: line {row + 2}: weight {raw[columns.weight].iloc[row]!r} is negative")
    if columns.timestamp:
        frame["timestamp"] = _numbers(raw, columns.timestamp, "timestamp", path).astype("int64")
    else:
        frame["timestamp"] = np.arange(len(raw), dtype=np.int64)
    return feedback(frame, explicit=columns.rating is not None, weighted=columns.weight is not None, positive=positive)


def feedback(frame: pd.DataFrame, *, explicit: bool, weighted: bool = False, positive: float | None = None) -> pd.DataFrame:
    """Add ``strength`` and ``positive`` to a frame with ``user_id, video_id, rating, weight``."""
    frame = frame.copy()
    if "weight" not in frame:
        frame["weight"] = 1.0
    if weighted:
        top = float(np.log1p(frame["weight"].max()))
        frame["strength"] = np.log1p(frame["weight"]) / top if top > 0 else 0.0
    elif explicit:
        low, high = float(frame["rating"].min()), float(frame["rating"].max())
        frame["strength"] = (frame["rating"] - low) / (high - low) if high > low else 1.0
    else:
        frame["strength"] = 1.0
    if explicit:
        threshold = frame.groupby("user_id")["rating"].transform("mean") if positive is None else positive
        frame["positive"] = frame["rating"] >= threshold
    else:
        frame["positive"] = frame["weight"] > 0
    return frame


def workspace_interactions(workspace: Workspace) -> pd.DataFrame:
    """The interactions named by the workspace's ``[interactions]`` section."""
    config = workspace.require_interactions()
    return read_interactions(workspace.path(config.path), config.columns, positive=config.positive)


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


def chronological(frame: pd.DataFrame) -> pd.DataFrame:
    """Each user's interactions in time order (ties keep file order)."""
    order = np.lexsort((np.arange(len(frame)), frame["timestamp"].to_numpy(), frame["user_id"].to_numpy(str)))
    return frame.iloc[order].reset_index(drop=True)


def leave_last_split(frame: pd.DataFrame, *, last: int = 5, min_train: int = 5) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Hold out each user's ``last`` interactions when at least ``min_train`` remain before them."""
    if last < 1 or min_train < 1:
        raise ConfigError(f"leave-last split needs last >= 1 and min_train >= 1, got {last} and {min_train}")
    ordered = chronological(frame)
    size = ordered.groupby("user_id")["user_id"].transform("size").to_numpy()
    from_end = size - ordered.groupby("user_id").cumcount().to_numpy()  # 1 for a user's latest
    held = (from_end <= last) & (size >= last + min_train)
    train, test = ordered[~held], ordered[held]
    if test.empty:
        raise DataError(f"no user has {last + min_train} interactions, so none can leave the last {last} out")
    return train.reset_index(drop=True), test.reset_index(drop=True)
