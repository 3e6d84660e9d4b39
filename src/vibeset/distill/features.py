"""Student feature groups: text embedding, catalog tags, collaborative item factors, extra tag sources, frames.

A student sees more than text: on the bundled data genres carry more vibe signal than the
overview, how people watch (ALS factors learned from ratings, and how many did) is evidence too,
and so are the tags of a workspace's extra tag sources. Each group is a dense float32 block;
``FeatureSpace`` holds what is needed to compute the groups of any video (the tag vocabulary, the
item-factor table, the tag-source table, the frame-embedding table) and saves it without pickle,
so the labelling engine can rebuild features from Parquet columns alone. The blocks are the
evidence teacher's (``annotate.evidence``), so a linear student can learn that teacher exactly.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Mapping, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..errors import ConfigError, DataError
from ..shards import embedding_array

if TYPE_CHECKING:
    from ..retrieval.collaborative import CollaborativeModel

GROUPS = ("text", "tags", "cf", "sources", "frames")
DEFAULT_GROUPS = ("text", "tags", "cf", "sources")
MANIFEST = "features.json"


def parse_groups(spec: str | Sequence[str]) -> tuple[str, ...]:
    """'text,tags,cf' or a sequence -> validated tuple in canonical order; 'all' = text,tags,cf,sources."""
    names = [s.strip() for s in (spec.split(",") if isinstance(spec, str) else spec) if s.strip()]
    if names == ["all"]:
        names = list(DEFAULT_GROUPS)
    unknown = sorted(set(names) - set(GROUPS))
    if unknown or not names:
        raise ConfigError(f"feature groups must be a comma list of {GROUPS}, got {spec!r}")
    if "text" not in names:
        raise ConfigError(f"feature groups {names} lack 'text'; every student reads the text embedding")
    return tuple(g for g in GROUPS if g in names)


def lookup_table(path: Path) -> tuple[pd.Index, np.ndarray]:
    """A video_id + embedding Parquet table as (ids, matrix)."""
    table = pq.read_table(path)
    ids = pd.Index(table.column("video_id").to_pylist())
    vectors = table.column("embedding").combine_chunks()
    width = vectors.type.list_size if pa.types.is_fixed_size_list(vectors.type) else None
    flat = vectors.flatten().to_numpy(zero_copy_only=False).astype(np.float32)
    return ids, flat.reshape(len(ids), width or (len(flat) // max(len(ids), 1)))


def write_lookup_table(path: Path, ids: Sequence[str], vectors: np.ndarray) -> Path:
    """video_id + fixed-size float32 embedding, the layout lookups and stored embeddings share."""
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.table({"video_id": pa.array([str(i) for i in ids], pa.string()), "embedding": embedding_array(vectors)})
    pq.write_table(table, path)
    return path


@dataclass
class FeatureSpace:
    """Everything needed to turn a video (or a Parquet row) into the student's input blocks."""

    groups: tuple[str, ...]
    text_dim: int
    encoder: str
    tag_vocabulary: list[str] = field(default_factory=list)
    cf_ids: pd.Index = field(default_factory=lambda: pd.Index([]))
    cf_factors: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))
    source_vocabulary: list[str] = field(default_factory=list)
    source_ids: pd.Index = field(default_factory=lambda: pd.Index([]))
    source_tags: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))
    frame_ids: pd.Index = field(default_factory=lambda: pd.Index([]))
    frame_vectors: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))
    lineage: dict = field(default_factory=dict)

    # -- shapes ---------------------------------------------------------------------
    def widths(self) -> dict[str, int]:
        """Width of each group's block; cf and frames carry a trailing has_* flag column."""
        width = {
            "text": self.text_dim,
            "tags": len(self.tag_vocabulary),
            "cf": self.cf_factors.shape[1] + 1,
            "sources": len(self.source_vocabulary),
            "frames": self.frame_vectors.shape[1] + 1,
        }
        return {group: width[group] for group in self.groups}

    # -- blocks ---------------------------------------------------------------------
    def tags_block(self, tags: pa.Array | pa.ChunkedArray | Sequence[Sequence[str]]) -> np.ndarray:
        """One-hot tags from a list<string> column, a '|'-separated string column, or Python lists."""
        if not isinstance(tags, (pa.Array, pa.ChunkedArray)):
            tags = pa.array([list(t) for t in tags], pa.list_(pa.string()))
        if isinstance(tags, pa.ChunkedArray):
            tags = tags.combine_chunks()
        if pa.types.is_string(tags.type) or pa.types.is_large_string(tags.type):
            tags = pc.split_pattern(pc.fill_null(tags, ""), "|")
        n = len(tags)
        matrix = np.zeros((n, len(self.tag_vocabulary)), dtype=np.float32)
        tags = pc.fill_null(tags, pa.scalar([], tags.type))
        lengths = pc.list_value_length(tags).to_numpy(zero_copy_only=False)
        values = pc.utf8_trim_whitespace(tags.flatten())
        columns = pc.index_in(values, value_set=pa.array(self.tag_vocabulary, pa.string())).to_numpy(zero_copy_only=False)
        rows = np.repeat(np.arange(n), lengths)
        known = ~np.isnan(columns.astype(np.float64))
        matrix[rows[known], columns[known].astype(np.int64)] = 1.0
        return matrix

    @staticmethod
    def _lookup(ids: Sequence[str] | pa.Array, index: pd.Index, table: np.ndarray) -> np.ndarray:
        positions = index.get_indexer(pd.Index(ids.to_pylist() if isinstance(ids, (pa.Array, pa.ChunkedArray)) else list(ids)))
        block = np.zeros((len(positions), table.shape[1] + 1), dtype=np.float32)
        found = positions >= 0
        block[found, :-1] = table[positions[found]]
        block[found, -1] = 1.0
        return block

    def cf_block(self, ids: Sequence[str] | pa.Array) -> np.ndarray:
        """ALS item factors and log1p(interactions) by id plus a has_cf flag; unknown or unrated videos get zeros."""
        return self._lookup(ids, self.cf_ids, self.cf_factors)

    def sources_block(self, ids: Sequence[str] | pa.Array) -> np.ndarray:
        """The extra tag sources' tags by id (``log1p`` counts); a video no source tags gets zeros."""
        return self._lookup(ids, self.source_ids, self.source_tags)[:, :-1]

    def frames_block(self, ids: Sequence[str] | pa.Array) -> np.ndarray:
        return self._lookup(ids, self.frame_ids, self.frame_vectors)

    def blocks(self, ids: Sequence[str] | pa.Array, text: np.ndarray, tags=None) -> dict[str, np.ndarray]:
        """The student's inputs for rows with these ids, text embeddings and tags."""
        if text.shape[1] != self.text_dim:
            raise DataError(f"text embeddings are {text.shape[1]}-d; this feature space expects {self.text_dim}-d")
        out = {"text": np.ascontiguousarray(text, dtype=np.float32)}
        if "tags" in self.groups:
            if tags is None:
                raise DataError("the student reads tags but the input has no 'tags' column")
            out["tags"] = self.tags_block(tags)
        if "cf" in self.groups:
            out["cf"] = self.cf_block(ids)
        if "sources" in self.groups:
            out["sources"] = self.sources_block(ids)
        if "frames" in self.groups:
            out["frames"] = self.frames_block(ids)
        return out

    # -- persistence ----------------------------------------------------------------
    def save(self, directory: str | Path) -> Path:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        if "cf" in self.groups:
            write_lookup_table(directory / "cf_items.parquet", list(self.cf_ids), self.cf_factors)
        if "sources" in self.groups:
            write_lookup_table(directory / "source_items.parquet", list(self.source_ids), self.source_tags)
        if "frames" in self.groups:
            write_lookup_table(directory / "frame_items.parquet", list(self.frame_ids), self.frame_vectors)
        manifest = {
            "groups": list(self.groups),
            "widths": self.widths(),
            "text_dim": self.text_dim,
            "encoder": self.encoder,
            "tag_vocabulary": self.tag_vocabulary,
            "source_vocabulary": self.source_vocabulary,
            "lineage": self.lineage,
        }
        (directory / MANIFEST).write_text(json.dumps(manifest, indent=2))
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> "FeatureSpace":
        directory = Path(directory)
        try:
            manifest = json.loads((directory / MANIFEST).read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise DataError(f"{directory / MANIFEST}: no feature manifest ({err})") from err
        space = cls(
            groups=tuple(manifest["groups"]),
            text_dim=int(manifest["text_dim"]),
            encoder=manifest["encoder"],
            tag_vocabulary=list(manifest["tag_vocabulary"]),
            source_vocabulary=list(manifest.get("source_vocabulary", [])),
            lineage=manifest.get("lineage", {}),
        )
        if "cf" in space.groups:
            space.cf_ids, space.cf_factors = lookup_table(directory / "cf_items.parquet")
        if "sources" in space.groups:
            space.source_ids, space.source_tags = lookup_table(directory / "source_items.parquet")
        if "frames" in space.groups:
            space.frame_ids, space.frame_vectors = lookup_table(directory / "frame_items.parquet")
        return space


def build_feature_space(
    groups: Sequence[str],
    *,
    text_dim: int,
    encoder_name: str,
    tag_vocabulary: Sequence[str] = (),
    collaborative: CollaborativeModel | None = None,
    sources: Mapping[str, tuple[Sequence[str], np.ndarray, Sequence[str]]] | None = None,
    frames: str | Path | None = None,
) -> FeatureSpace:
    """What the groups need: the tag vocabulary, the warm items' collaborative factors, the tag-source
    table (``sources``: name -> (video ids, matrix, vocabulary), as ``tag_sources.tag_matrix`` gives),
    the frame table.

    Cold (unrated) videos get zeros and ``has_cf = 0`` instead of the text projection the
    retrieval index gives them: the student should not learn from a guess made from its own input.
    """
    groups = parse_groups(groups)
    space = FeatureSpace(groups=groups, text_dim=text_dim, encoder=encoder_name)
    if "tags" in groups:
        space.tag_vocabulary = sorted(tag_vocabulary)
    if "cf" in groups:
        if collaborative is None:
            raise ConfigError("feature group 'cf' needs the collaborative model ('vibeset cf')")
        warm = ~collaborative.cold_
        space.cf_ids = pd.Index(np.asarray(collaborative.item_ids_)[warm])
        popularity = np.log1p(collaborative.popularity_[warm]).astype(np.float32)[:, None]
        space.cf_factors = np.hstack([collaborative.item_factors_[warm], popularity])
        space.lineage["cf"] = {**collaborative.params(), "warm_items": int(warm.sum()), "items": len(warm)}
    if "sources" in groups:
        if not sources:
            raise ConfigError("feature group 'sources' needs extra tag sources ([[tag_sources]] in vibeset.toml)")
        space.source_ids, space.source_tags, space.source_vocabulary = _source_table(sources)
        space.lineage["sources"] = {name: len(vocabulary) for name, (_, _, vocabulary) in sources.items()}
    if "frames" in groups:
        if frames is None:
            raise ConfigError("feature group 'frames' needs --frames: a Parquet of video_id + embedding from an image encoder")
        space.frame_ids, space.frame_vectors = lookup_table(Path(frames))
        space.lineage["frames"] = str(frames)
    return space


def _source_table(sources: Mapping[str, tuple[Sequence[str], np.ndarray, Sequence[str]]]) -> tuple[pd.Index, np.ndarray, list[str]]:
    """The tag sources side by side (vocabulary ``source:tag``), keeping only videos some source tags."""
    ids = next(iter(sources.values()))[0]
    if any(list(other) != list(ids) for other, _, _ in sources.values()):
        raise DataError("every tag-source matrix must cover the same videos in the same order")
    matrix = np.hstack([block for _, block, _ in sources.values()]).astype(np.float32)
    vocabulary = [f"{name}:{tag}" for name, (_, _, tags) in sources.items() for tag in tags]
    tagged = matrix.any(axis=1)
    return pd.Index(np.asarray(list(ids), dtype=object)[tagged]), matrix[tagged], vocabulary
