"""Reviews: human judgements added in the web UI, kept append-only in the workspace's survey format.

Each review is one row of ``ARTIFACTS/judgements/reviews.csv``: (rater, video, tag = attribute name,
rating on the judgement scale), when it was made, its source, its id, and for an undo the id of the
review it retracts. Nothing is ever changed or deleted: an undo is a new row, and readers drop the
retracted review. A write copies the file with the new row appended to a temporary file, fsyncs it
and renames it over the old one under an exclusive lock, so readers see the old file or the new one.

Raters are namespaced: a reviewer ``alice`` joins the golden set as ``review:alice``, so she never
merges with a survey rater whose id is also ``alice`` (or ``42``). The golden set picks reviews up on
its next build through ``review_judgements``.
"""

from __future__ import annotations

import csv
import fcntl
import io
import os
import re
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .artifacts import artifacts_of
from .errors import DataError
from .judgements import empty_judgements
from .workspace import JudgementsConfig, Workspace

RATER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
NAMESPACE = "review:"
EXTRA_COLUMNS = ("created_at", "source", "review_id", "undoes")
SOURCE, UNDO = "web-review", "web-undo"


@dataclass(frozen=True)
class Review:
    """One reviewer's judgement of one (video, attribute) pair, on the survey scale."""

    rater: str
    video_id: str
    attribute: str
    rating: float
    review_id: str = ""


def reviews_path(workspace: Workspace) -> Path:
    return artifacts_of(workspace).place("reviews")


def _header(config: JudgementsConfig) -> list[str]:
    c = config.columns
    return [c.rater, c.video, c.tag, c.rating, *EXTRA_COLUMNS]


def check_review(review: Review, workspace: Workspace) -> Review:
    """Raise DataError naming the first field that is not acceptable."""
    config = workspace.require_judgements()
    if not RATER.match(review.rater):
        raise DataError(
            f"rater id {review.rater!r} must be 1-64 letters, digits and _ . @ - (starting with a letter or digit)"
        )
    if review.video_id not in workspace.catalog:
        raise DataError(f"video {review.video_id!r} is not in the catalog")
    workspace.taxonomy[review.attribute]
    low, high = config.scale
    if not low <= review.rating <= high:
        raise DataError(f"rating {review.rating:g} is outside the scale {low:g}..{high:g}")
    return review


def _append(workspace: Workspace, row: list[str]) -> Path:
    """Append one row atomically (temp file + fsync + rename, under a lock); an older header is widened."""
    config = workspace.require_judgements()
    path = reviews_path(workspace)
    path.parent.mkdir(parents=True, exist_ok=True)
    header = _header(config)
    with open(path.with_name(".reviews.lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            old = path.read_text(encoding="utf-8") if path.exists() else ""
            rows = list(csv.reader(io.StringIO(old)))
            if rows and rows[0] != header:  # a file from an older vibeset: same rows, wider header
                rows = [header, *[r + [""] * (len(header) - len(r)) for r in rows[1:]]]
            buffer = io.StringIO()
            csv.writer(buffer, lineterminator="\n").writerows([*(rows or [header]), row])
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            with open(tmp, "wb") as out:
                out.write(buffer.getvalue().encode("utf-8"))
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, path)
            directory = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(directory)
            finally:
                os.close(directory)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return path


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def append_review(workspace: Workspace, review: Review) -> Review:
    """Validate and append one review; returns it with its new id."""
    check_review(review, workspace)
    saved = Review(review.rater, review.video_id, review.attribute, review.rating, uuid.uuid4().hex[:12])
    _append(workspace, [saved.rater, saved.video_id, saved.attribute, f"{saved.rating:g}", _now(), SOURCE, saved.review_id, ""])
    return saved


def undo_last(workspace: Workspace, rater: str) -> Review | None:
    """Retract ``rater``'s latest review still in force (an appended undo row); None when there is none."""
    mine = active_reviews(workspace)
    mine = mine[mine["rater"] == rater]
    if mine.empty:
        return None
    last = mine.iloc[-1]
    review = Review(rater, last["video_id"], last["attribute"], float(last["rating"]), last["review_id"])
    _append(workspace, [rater, review.video_id, review.attribute, f"{review.rating:g}", _now(), UNDO,
                        uuid.uuid4().hex[:12], review.review_id])
    return review


def read_reviews(workspace: Workspace) -> pd.DataFrame:
    """Every row of the reviews file (undos included), oldest first, with role column names:
    rater, video_id, attribute, rating (float), created_at, source, review_id, undoes."""
    config = workspace.require_judgements()
    path = reviews_path(workspace)
    names = ["rater", "video_id", "attribute", "rating", *EXTRA_COLUMNS]
    if not path.is_file():
        return pd.DataFrame({name: pd.Series([], dtype=float if name == "rating" else str) for name in names})
    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (ValueError, OSError) as err:
        raise DataError(f"{path}: cannot read the reviews ({str(err).splitlines()[0]})") from err
    header = _header(config)
    for column in header:
        if column not in raw.columns:
            raw[column] = ""
    frame = raw[header].set_axis(names, axis=1)
    rating = pd.to_numeric(frame["rating"], errors="coerce")
    low, high = config.scale
    bad = ~rating.between(low, high)
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataError(f"{path}: line {row + 2}: rating {frame['rating'].iloc[row]!r} is outside the scale {low:g}..{high:g}")
    return frame.assign(rating=rating.astype(float), attribute=frame["attribute"].str.strip().str.lower())


def active_reviews(workspace: Workspace) -> pd.DataFrame:
    """The reviews in force: undo rows and the reviews they retract are left out."""
    frame = read_reviews(workspace)
    undone = set(frame.loc[frame["source"] == UNDO, "undoes"])
    return frame[(frame["source"] != UNDO) & ~frame["review_id"].isin(undone - {""})].reset_index(drop=True)


def review_judgements(workspace: Workspace) -> pd.DataFrame:
    """The reviews in force as judgements (rater, video_id, tag, rating), raters namespaced; empty when none."""
    if not reviews_path(workspace).is_file():
        return empty_judgements()
    frame = active_reviews(workspace)
    return pd.DataFrame({"rater": NAMESPACE + frame["rater"], "video_id": frame["video_id"], "tag": frame["attribute"],
                         "rating": frame["rating"]})
