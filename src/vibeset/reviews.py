"""Reviews: human judgements added in the web UI, kept append-only in the workspace's survey format.

Each review is one row (rater, video, tag = attribute name, rating on the judgement scale) plus
when it was made, in ``ARTIFACTS/judgements/reviews.csv``. A write copies the file with the new
row appended to a temporary file, fsyncs it and renames it over the old one under an exclusive
lock, so readers see the old file or the new one and no row is ever changed or lost. The golden
set picks the rows up on its next build through ``review_judgements``.
"""

from __future__ import annotations

import csv
import fcntl
import io
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .artifacts import artifacts_of
from .errors import DataError
from .judgements import empty_judgements, read_judgements
from .workspace import JudgementsConfig, Workspace

RATER = re.compile(r"^[A-Za-z][A-Za-z0-9_.@-]{0,63}$")
EXTRA_COLUMNS = ("created_at", "source")


@dataclass(frozen=True)
class Review:
    """One reviewer's judgement of one (video, attribute) pair, on the survey scale."""

    rater: str
    video_id: str
    attribute: str
    rating: float


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
            f"rater id {review.rater!r} must start with a letter and use only letters, digits and _ . @ - "
            "(64 characters at most), so it never collides with a survey rater's numeric id"
        )
    if review.video_id not in workspace.catalog:
        raise DataError(f"video {review.video_id!r} is not in the catalog")
    workspace.taxonomy[review.attribute]
    low, high = config.scale
    if not low <= review.rating <= high:
        raise DataError(f"rating {review.rating:g} is outside the scale {low:g}..{high:g}")
    return review


def append_review(workspace: Workspace, review: Review) -> Path:
    """Validate and append one review atomically (temp file + fsync + rename, under a lock)."""
    check_review(review, workspace)
    config = workspace.require_judgements()
    path = reviews_path(workspace)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(".reviews.lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            old = path.read_bytes() if path.exists() else b""
            buffer = io.StringIO()
            writer = csv.writer(buffer, lineterminator="\n")
            if not old:
                writer.writerow(_header(config))
            writer.writerow(
                [review.rater, review.video_id, review.attribute, f"{review.rating:g}",
                 time.strftime("%Y-%m-%dT%H:%M:%S%z"), "web-review"]
            )
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            with open(tmp, "wb") as out:
                out.write(old + buffer.getvalue().encode("utf-8"))
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


def review_judgements(workspace: Workspace) -> pd.DataFrame:
    """The reviews as judgements (rater, video_id, tag, rating), like ``golden.read_judgements``; empty when none."""
    path = reviews_path(workspace)
    if not path.is_file():
        return empty_judgements()
    return read_judgements(path, workspace.require_judgements())


def read_reviews(workspace: Workspace) -> pd.DataFrame:
    """Every review with its time, newest last, for display."""
    path = reviews_path(workspace)
    if not path.is_file():
        return pd.DataFrame(columns=_header(workspace.require_judgements()))
    return pd.read_csv(path, dtype=str)
