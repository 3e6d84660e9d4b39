"""Human judgements in survey format: one row per (rater, video, tag, rating), read through a column mapping."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .errors import DataError
from .tables import read_table, require_columns
from .workspace import JudgementsConfig

COLUMNS = ("rater", "video_id", "tag", "rating")


def read_judgements(path: str | Path, config: JudgementsConfig) -> pd.DataFrame:
    """Read survey-format judgements; columns renamed to rater, video_id, tag, rating.

    Ratings must be numbers within the scale (or the "not sure" value); the error names
    the first offending row.
    """
    raw = read_table(path, dtype=str)
    roles = config.columns.model_dump()
    require_columns(raw, roles, path)
    frame = pd.DataFrame({role: raw[column] for role, column in roles.items()})
    frame = frame.rename(columns={"video": "video_id"})
    frame["video_id"] = frame["video_id"].astype(str).str.strip()
    frame["rater"] = frame["rater"].astype(str).str.strip()
    frame["tag"] = frame["tag"].fillna("").astype(str).str.strip().str.lower()
    rating = pd.to_numeric(frame["rating"], errors="coerce")
    low, high = config.scale
    valid = rating.between(low, high) | (rating == config.not_sure if config.not_sure is not None else False)
    if (~valid).any():
        row = int(np.flatnonzero(~valid.to_numpy())[0])
        raise DataError(
            f"{path}: line {row + 2}: rating {raw[roles['rating']].iloc[row]!r} is outside the scale "
            f"{low:g}..{high:g} (not-sure value: {config.not_sure})"
        )
    frame["rating"] = rating.astype(float)
    return frame


def empty_judgements() -> pd.DataFrame:
    """A judgements frame with no rows (what ``read_judgements`` returns the columns of)."""
    return pd.DataFrame({**{c: pd.Series([], dtype=str) for c in COLUMNS[:3]}, "rating": pd.Series([], dtype=float)})
