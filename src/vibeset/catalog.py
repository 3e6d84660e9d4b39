"""Videos and the catalog that holds them, read from CSV / JSONL / Parquet with a column mapping."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import pandas as pd
from pydantic import BaseModel, ConfigDict

from .errors import DataError
from .hashing import content_hash
from .tables import read_table, require_columns


def video_text(title: str, tags: Sequence[str], description: str) -> str:
    """The text every encoder sees: title, (tags), description. The one place it is built."""
    parts = [title]
    if tags:
        parts.append("(" + ", ".join(tags) + ")")
    parts.append(description)
    return " ".join(part for part in parts if part).strip()


@dataclass(frozen=True)
class Video:
    """One item to annotate. Text fields are untrusted data, never instructions."""

    video_id: str
    title: str = ""
    description: str = ""
    transcript: str = ""
    tags: tuple[str, ...] = ()
    media: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)

    def text(self) -> str:
        """The text an encoder sees (``video_text``)."""
        return video_text(self.title, self.tags, self.description)

    @property
    def content_hash(self) -> str:
        """Hash of everything an annotator may look at; a changed video is re-annotated."""
        return content_hash([self.title, self.description, self.transcript, list(self.tags), self.media])


class CatalogColumns(BaseModel):
    """Which source column plays which role. Only ``id`` and one text column are required."""

    model_config = ConfigDict(extra="forbid")

    id: str = "video_id"
    title: str | None = "title"
    description: str | None = "description"
    transcript: str | None = None
    tags: str | None = None
    tags_separator: str = "|"
    media: str | None = None
    metadata: tuple[str, ...] = ()
    require_text: str = "description"


class Catalog:
    """An ordered, id-indexed collection of videos backed by one DataFrame."""

    COLUMNS = ("video_id", "title", "description", "transcript", "tags", "media")

    def __init__(self, frame: pd.DataFrame) -> None:
        missing = [column for column in self.COLUMNS if column not in frame.columns]
        if missing:
            raise DataError(f"catalog frame lacks columns {missing}")
        if frame["video_id"].duplicated().any():
            dup = frame.loc[frame["video_id"].duplicated(), "video_id"].iloc[0]
            raise DataError(f"catalog has duplicate video id {dup!r}")
        self.frame = frame.reset_index(drop=True)
        self._row = {video_id: row for row, video_id in enumerate(self.frame["video_id"])}

    def __len__(self) -> int:
        return len(self.frame)

    def __contains__(self, video_id: object) -> bool:
        return video_id in self._row

    def __iter__(self) -> Iterator[Video]:
        for row in range(len(self.frame)):
            yield self.video_at(row)

    @property
    def ids(self) -> list[str]:
        return list(self.frame["video_id"])

    def row_of(self, video_id: str) -> int:
        try:
            return self._row[video_id]
        except KeyError:
            raise DataError(f"video {video_id!r} is not in the catalog") from None

    def video_at(self, row: int) -> Video:
        record = self.frame.iloc[row]
        meta_columns = [c for c in self.frame.columns if c not in self.COLUMNS]
        return Video(
            video_id=record["video_id"],
            title=record["title"],
            description=record["description"],
            transcript=record["transcript"],
            tags=tuple(record["tags"]),
            media=record["media"] or None,
            metadata={c: str(record[c]) for c in meta_columns},
        )

    def get(self, video_id: str) -> Video:
        return self.video_at(self.row_of(video_id))

    def subset(self, video_ids: Sequence[str]) -> "Catalog":
        rows = [self.row_of(video_id) for video_id in video_ids]
        return Catalog(self.frame.iloc[rows])

    def texts(self) -> list[str]:
        frame = self.frame
        return [video_text(*row) for row in zip(frame["title"], frame["tags"], frame["description"])]

    def tag_vocabulary(self) -> list[str]:
        return sorted({tag for tags in self.frame["tags"] for tag in tags})


def catalog_from_frame(raw: pd.DataFrame, columns: CatalogColumns, source: str | Path = "<catalog>") -> Catalog:
    """Map a raw table onto catalog roles; rows without the required text are dropped."""
    roles = columns.model_dump(include={"id", "title", "description", "transcript", "tags", "media"})
    require_columns(raw, {**roles, **{f"metadata {c}": c for c in columns.metadata}}, source)
    required = roles.get(columns.require_text)
    if not required:
        raise DataError(f"{source}: require_text names role {columns.require_text!r}, which is not mapped")

    def text(role: str) -> pd.Series:
        column = roles.get(role)
        if not column:
            return pd.Series([""] * len(raw), index=raw.index)
        return raw[column].fillna("").astype(str).str.strip()

    frame = pd.DataFrame(
        {
            "video_id": raw[columns.id].astype(str).str.strip(),
            "title": text("title"),
            "description": text("description"),
            "transcript": text("transcript"),
            "tags": [
                tuple(tag.strip() for tag in value.split(columns.tags_separator) if tag.strip())
                for value in text("tags")
            ],
            "media": text("media"),
        }
    )
    for column in columns.metadata:
        frame[column] = raw[column].fillna("").astype(str)
    keep = text(columns.require_text).str.len() > 0
    return Catalog(frame[keep.to_numpy()])


def load_catalog(path: str | Path, columns: CatalogColumns | None = None) -> Catalog:
    """Read a catalog file (CSV, JSONL, Parquet) through a column mapping."""
    columns = columns or CatalogColumns()
    raw = read_table(path, dtype=str)
    return catalog_from_frame(raw, columns, path)
