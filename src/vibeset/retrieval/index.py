"""The attribute index: postings per attribute, item/user embeddings, seen items and label lineage.

Saved as a directory of ``.npy`` / Parquet / JSON (no pickle) and opened with memory mapping.
Each build writes a new version directory, then atomically replaces the ``CURRENT`` pointer file
(``os.replace``), so a serving process either sees the old index or the new one, never half of one.

Layout::

    <root>/CURRENT                 name of the live version
    <root>/versions/v00001-<time>-<random>/   manifest.json, items.parquet, users.parquet, *.npy, annotations.parquet

``<ranker>.postings.npy`` holds a ranker's item vectors in posting order, so each attribute's
vectors are one contiguous block: memory-mapped, the serving workers share one copy of them in
the page cache (private copies per worker made every product ~1.7x slower on 2 workers).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import time
from importlib.metadata import version as package_version
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ..artifacts import KINDS, Artifact
from ..errors import DataError, UnknownAttributeError
from ..files import atomic_write_text
from ..taxonomy import Taxonomy

FORMAT = 2  # 2: each ranker's item vectors in posting order ({ranker}.postings.npy)
POINTER = "CURRENT"
ALS = "als"
LINEAGE = ("source", "model", "run_id", "prompt_version", "taxonomy_version")
ARRAYS = (
    "item_factors",
    "user_factors",
    "seen_indptr",
    "seen_rows",
    "seen_ratings",
    "post_offsets",
    "post_rows",
    "post_scores",
    "popularity",
)


@dataclass
class AttributeIndex:
    """Everything restricted retrieval needs, as plain arrays (rows = item positions)."""

    item_ids: list[str]
    titles: list[str]
    item_factors: np.ndarray  # (items, dim) float32
    user_ids: list[str]
    user_factors: np.ndarray  # (users, dim) float32
    seen_indptr: np.ndarray  # (users + 1,) int64: CSR of each user's rated item rows
    seen_rows: np.ndarray  # int32, sorted within each user
    seen_ratings: np.ndarray  # float32
    attributes: list[str]
    post_offsets: np.ndarray  # (attributes + 1,) int64
    post_rows: np.ndarray  # int32, sorted within each attribute
    post_scores: np.ndarray  # float32 attribute scores aligned with post_rows
    popularity: np.ndarray  # (items,) float32 interaction counts
    annotations: pd.DataFrame  # every annotation of an indexed video, with lineage
    manifest: dict[str, Any] = field(default_factory=dict)
    rankers: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)  # name -> (items, users) beyond ALS

    def __post_init__(self) -> None:
        # derived state, not a field: ``dataclasses.replace`` with other vectors or postings starts it empty
        self._posting_vectors: dict[str, np.ndarray] = {}
        self._item_row = {video_id: row for row, video_id in enumerate(self.item_ids)}
        self._user_row = {user_id: row for row, user_id in enumerate(self.user_ids)}
        self._attribute = {name: position for position, name in enumerate(self.attributes)}

    @property
    def version(self) -> str:
        return str(self.manifest.get("version", "unsaved"))

    @property
    def descriptions(self) -> dict[str, str]:
        return dict(self.manifest.get("descriptions", {}))

    def __len__(self) -> int:
        return len(self.item_ids)

    @property
    def ranker_names(self) -> list[str]:
        return [ALS, *self.rankers]

    def ranker(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """(item vectors, user vectors) of a ranker: ``user . item`` is its personal score."""
        if name == ALS:
            return self.item_factors, self.user_factors
        if name not in self.rankers:
            raise DataError(f"unknown ranker {name!r}; this index has {', '.join(self.ranker_names)}")
        return self.rankers[name]

    @property
    def defaults(self) -> dict[str, Any]:
        """The ranker and blend the offline evaluation chose (ALS and 0 for an index without a choice)."""
        chosen = dict(self.manifest.get("defaults") or {})
        ranker = chosen.get("ranker", ALS)
        return {"ranker": ranker if ranker in self.ranker_names else ALS, "blend": float(chosen.get("blend", 0.0))}

    def item_row(self, video_id: str) -> int | None:
        return self._item_row.get(video_id)

    def user_row(self, user_id: str) -> int | None:
        return self._user_row.get(user_id)

    def attribute_position(self, name: str) -> int:
        try:
            return self._attribute[name]
        except KeyError:
            raise UnknownAttributeError(f"unknown attribute {name!r}; known: {', '.join(self.attributes)}") from None

    def postings(self, position: int) -> tuple[np.ndarray, np.ndarray]:
        """Sorted item rows carrying attribute ``position`` and their attribute scores."""
        start, end = self.post_offsets[position], self.post_offsets[position + 1]
        return self.post_rows[start:end], self.post_scores[start:end]

    def posting_vectors(self, ranker: str) -> np.ndarray:
        """The ranker's item vectors in posting order: attribute ``a``'s are rows ``post_offsets[a]:post_offsets[a + 1]``."""
        if ranker not in self._posting_vectors:
            self._posting_vectors[ranker] = np.take(self.ranker(ranker)[0], self.post_rows, axis=0)
        return self._posting_vectors[ranker]

    def seen(self, user_row: int) -> tuple[np.ndarray, np.ndarray]:
        """Sorted item rows the user interacted with, and the ratings."""
        start, end = self.seen_indptr[user_row], self.seen_indptr[user_row + 1]
        return self.seen_rows[start:end], self.seen_ratings[start:end]

    def video_annotations(self, video_id: str) -> pd.DataFrame:
        """All annotations of one video (labelled or not), best score first."""
        if not hasattr(self, "_annotated_ids"):
            self._annotated_ids = self.annotations["video_id"].to_numpy(dtype=object)  # sorted at build
        lo = int(np.searchsorted(self._annotated_ids, video_id, side="left"))
        hi = int(np.searchsorted(self._annotated_ids, video_id, side="right"))
        return self.annotations.iloc[lo:hi].sort_values("score", ascending=False, na_position="last")

    def save(self, root: str | Path, *, keep: int = 3) -> Path:
        """Write a new version under ``root`` and make it current atomically; keep the last ``keep``."""
        root = Path(root)
        versions = root / "versions"
        versions.mkdir(parents=True, exist_ok=True)
        serial = 1 + max((int(name.split("-")[0][1:]) for name in list_versions(root)), default=0)
        version = f"v{serial:05d}-{time.strftime('%Y%m%dT%H%M%S')}-{secrets.token_hex(2)}"  # sorts by age
        staging = versions / f".{version}.tmp"
        staging.mkdir()
        manifest = {
            **self.manifest,
            "format": FORMAT,
            "version": version,
            "vibeset_version": package_version("vibeset"),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "items": len(self.item_ids),
            "users": len(self.user_ids),
            "dim": int(self.item_factors.shape[1]),
            "attributes": self.attributes,
        }
        for name in ARRAYS:
            np.save(staging / f"{name}.npy", np.ascontiguousarray(getattr(self, name)), allow_pickle=False)
        manifest["rankers"] = self.ranker_names
        for name, (items, users) in self.rankers.items():
            np.save(staging / f"{name}.items.npy", np.ascontiguousarray(items, dtype=np.float32), allow_pickle=False)
            np.save(staging / f"{name}.users.npy", np.ascontiguousarray(users, dtype=np.float32), allow_pickle=False)
        for name in self.ranker_names:
            np.save(staging / f"{name}.postings.npy", np.ascontiguousarray(self.posting_vectors(name), dtype=np.float32),
                    allow_pickle=False)
        pq.write_table(pa.table({"video_id": self.item_ids, "title": self.titles}), staging / "items.parquet")
        pq.write_table(pa.table({"user_id": self.user_ids}), staging / "users.parquet")
        pq.write_table(pa.Table.from_pandas(self.annotations, preserve_index=False), staging / "annotations.parquet")
        (staging / "manifest.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
        target = versions / version
        os.replace(staging, target)
        atomic_write_text(root / POINTER, version + "\n")
        self.manifest = manifest
        _prune(versions, keep)
        return target


def _prune(versions: Path, keep: int) -> None:
    """Remove all but the newest ``keep`` versions (open memory maps of removed ones stay valid)."""
    names = sorted(p.name for p in versions.iterdir() if p.is_dir() and not p.name.startswith("."))
    for name in names[:-keep] if keep > 0 else []:
        shutil.rmtree(versions / name, ignore_errors=True)


def list_versions(root: str | Path) -> list[str]:
    """Saved versions under an index root, oldest first."""
    versions = Path(root) / "versions"
    if not versions.is_dir():
        return []
    return sorted(p.name for p in versions.iterdir() if p.is_dir() and not p.name.startswith("."))


def current_version(root: str | Path) -> str:
    pointer = Path(root) / POINTER
    try:
        return pointer.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        raise Artifact(KINDS["index"], Path(root)).error(pointer, "no index here (missing or unreadable)") from None


def resolve_version(path: str | Path, version: str | None = None) -> Path:
    """A version directory from an index root (its current or named version) or a version dir itself."""
    path = Path(path)
    if (path / "manifest.json").exists() and version is None:
        return path
    name = version or current_version(path)
    directory = path / "versions" / name
    if "/" in name or not (directory / "manifest.json").exists():
        raise Artifact(KINDS["index"], path).error(directory, "not an index version (no manifest.json)")
    return directory


def load_index(path: str | Path, *, version: str | None = None, mmap: bool = True) -> AttributeIndex:
    """Open an index version read-only; arrays are memory-mapped unless ``mmap`` is False.

    A missing or corrupt file is one error naming it; arrays whose lengths disagree are caught here,
    not in the middle of a request.
    """
    directory = resolve_version(path, version)
    files = Artifact(KINDS["index"], directory)
    manifest = files.read_json("manifest.json")
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise files.error(directory / "manifest.json", f"not an index manifest of format {FORMAT}")
    names = manifest.get("rankers", [ALS])
    if not isinstance(names, list) or not all(isinstance(n, str) and re.fullmatch(r"[a-z0-9_-]+", n) for n in names):
        raise files.error(directory / "manifest.json", f"rankers must be a list of names, got {names!r:.80}")

    def load(path: Path) -> np.ndarray:
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)

    arrays = {name: files.read(f"{name}.npy", load) for name in ARRAYS}
    rankers = {name: (files.read(f"{name}.items.npy", load), files.read(f"{name}.users.npy", load))
               for name in names if name != ALS}
    in_posting_order = {name: files.read(f"{name}.postings.npy", load) for name in [ALS, *rankers]}
    items = files.read("items.parquet", pq.read_table).to_pydict()
    users = files.read("users.parquet", pq.read_table).column("user_id").to_pylist()
    annotations = files.read("annotations.parquet", pd.read_parquet)
    with files.reading(directory):
        index = AttributeIndex(
            item_ids=items["video_id"], titles=items["title"], user_ids=users, attributes=list(manifest["attributes"]),
            annotations=annotations, manifest=manifest, rankers=rankers, **arrays,
        )
        index._posting_vectors = in_posting_order
        _check_shapes(index)
    return index


def _check_shapes(index: AttributeIndex) -> None:
    items, users, attributes = len(index.item_ids), len(index.user_ids), len(index.attributes)
    expected = {"item_factors": items, "user_factors": users, "seen_indptr": users + 1, "post_offsets": attributes + 1,
                "popularity": items, "seen_ratings": len(index.seen_rows), "post_scores": len(index.post_rows)}
    for name, rows in expected.items():
        if len(getattr(index, name)) != rows:
            raise DataError(f"{name}.npy has {len(getattr(index, name))} rows, expected {rows}")
    if index.post_offsets[-1] != len(index.post_rows) or index.seen_indptr[-1] != len(index.seen_rows):
        raise DataError("postings or seen-item offsets do not match their arrays")
    if len(index.post_rows) and int(np.max(index.post_rows)) >= items:
        raise DataError("postings name item rows beyond the items")
    for name, vectors in index._posting_vectors.items():
        if vectors.shape != (len(index.post_rows), index.ranker(name)[0].shape[1]):
            raise DataError(f"{name}.postings.npy has shape {vectors.shape}, expected "
                            f"{(len(index.post_rows), index.ranker(name)[0].shape[1])}")
    for name, (item_vectors, user_vectors) in index.rankers.items():
        if item_vectors.shape[0] != items or user_vectors.shape[0] != users or item_vectors.shape[1:] != user_vectors.shape[1:]:
            raise DataError(f"ranker {name}: vectors {item_vectors.shape} / {user_vectors.shape} do not match "
                            f"{items} items / {users} users")


def build_index(
    *,
    item_ids: Sequence[str],
    titles: Sequence[str],
    item_factors: np.ndarray,
    user_ids: Sequence[str],
    user_factors: np.ndarray,
    interactions: pd.DataFrame,
    annotations: pd.DataFrame,
    taxonomy: Taxonomy,
    popularity: np.ndarray | None = None,
    manifest: dict[str, Any] | None = None,
    rankers: dict[str, tuple[np.ndarray, np.ndarray]] | None = None,
) -> AttributeIndex:
    """Assemble an index: rows = ``item_ids``; postings from annotations with ``label`` True.

    ``rankers``: more (item vectors, user vectors) pairs beside the ALS factors, by name.

    Annotations of videos outside ``item_ids`` and interactions of unknown users or videos are
    dropped (counted in the manifest). A missing score on a positive label counts as 1.
    """
    item_ids = [str(v) for v in item_ids]
    user_ids = [str(u) for u in user_ids]
    if item_factors.shape[0] != len(item_ids) or user_factors.shape[0] != len(user_ids):
        raise DataError(
            f"factor shapes {item_factors.shape} / {user_factors.shape} do not match "
            f"{len(item_ids)} items / {len(user_ids)} users"
        )
    item_row = pd.Series(np.arange(len(item_ids), dtype=np.int64), index=item_ids)

    known = annotations["video_id"].isin(item_row.index) & annotations["attribute"].isin(taxonomy.names)
    lineage = annotations[known].sort_values(["video_id", "attribute"]).reset_index(drop=True)
    positive = lineage[lineage["label"]]
    offsets, rows, scores = [0], [], []
    for name in taxonomy.names:
        chosen = positive[positive["attribute"] == name]
        attr_rows = item_row.loc[chosen["video_id"]].to_numpy()
        order = np.argsort(attr_rows, kind="stable")
        rows.append(attr_rows[order].astype(np.int32))
        scores.append(np.nan_to_num(chosen["score"].to_numpy(np.float32)[order], nan=1.0))
        offsets.append(offsets[-1] + len(order))

    indptr, seen_rows, seen_ratings = seen_matrix(interactions, user_ids, item_ids)
    info = {
        "taxonomy": taxonomy.name,
        "taxonomy_version": taxonomy.version,
        "descriptions": {a.name: a.describe() for a in taxonomy},
        "aliases": {a.name: list(a.aliases) for a in taxonomy},
        "dropped_annotations": int((~known).sum()),
        "annotation_runs": sorted(
            {f"{s}:{m}:{run}" for s, m, run in lineage[["source", "model", "run_id"]].drop_duplicates().to_numpy()}
        ),
        **(manifest or {}),
    }
    return AttributeIndex(
        item_ids=item_ids,
        titles=[str(t) for t in titles],
        item_factors=np.ascontiguousarray(item_factors, dtype=np.float32),
        user_ids=user_ids,
        user_factors=np.ascontiguousarray(user_factors, dtype=np.float32),
        seen_indptr=indptr,
        seen_rows=seen_rows,
        seen_ratings=seen_ratings,
        attributes=list(taxonomy.names),
        post_offsets=np.asarray(offsets, dtype=np.int64),
        post_rows=np.concatenate(rows) if rows else np.zeros(0, np.int32),
        post_scores=np.concatenate(scores).astype(np.float32) if scores else np.zeros(0, np.float32),
        popularity=(
            np.asarray(popularity, dtype=np.float32)
            if popularity is not None
            else np.bincount(seen_rows, minlength=len(item_ids)).astype(np.float32)
        ),
        annotations=lineage,
        manifest=info,
        rankers={name: (np.ascontiguousarray(i, dtype=np.float32), np.ascontiguousarray(u, dtype=np.float32))
                 for name, (i, u) in (rankers or {}).items()},
    )


def unit_scale(items: np.ndarray, users: np.ndarray, *, sample: int = 1024, seed: int = 0) -> np.ndarray:
    """``users`` scaled so that ``user . item`` has unit spread: a blend weight means the same for every ranker."""
    if not len(users) or not len(items):
        return np.asarray(users, dtype=np.float32)
    rng = np.random.default_rng(seed)
    rows = rng.choice(len(users), min(sample, len(users)), replace=False)
    spread = float(np.std(np.asarray(users)[rows] @ np.asarray(items).T))
    return (np.asarray(users, dtype=np.float32) / spread).astype(np.float32) if spread > 0 else np.asarray(users, np.float32)


def seen_matrix(
    interactions: pd.DataFrame, user_ids: Sequence[str], item_ids: Sequence[str]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CSR (indptr, sorted item rows, ratings) of each user's interactions; the first rating of a pair wins."""
    user_row = pd.Series(np.arange(len(user_ids), dtype=np.int64), index=list(user_ids))
    item_row = pd.Series(np.arange(len(item_ids), dtype=np.int64), index=list(item_ids))
    seen = interactions[interactions["user_id"].isin(user_row.index) & interactions["video_id"].isin(item_row.index)]
    u = user_row.loc[seen["user_id"]].to_numpy()
    i = item_row.loc[seen["video_id"]].to_numpy()
    order = np.lexsort((i, u))
    u, i, r = u[order], i[order], seen["rating"].to_numpy(np.float32)[order]
    first = np.ones(len(u), dtype=bool)
    first[1:] = (u[1:] != u[:-1]) | (i[1:] != i[:-1])
    u, i, r = u[first], i[first], r[first]
    indptr = np.zeros(len(user_ids) + 1, dtype=np.int64)
    np.cumsum(np.bincount(u, minlength=len(user_ids)), out=indptr[1:])
    return indptr, i.astype(np.int32), r
