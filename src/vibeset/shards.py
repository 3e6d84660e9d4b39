"""Catalog shards: every video's id, text, tags and text embedding, as Parquet shards.

Built once per catalog and encoder by ``vibeset embed`` (the text is ``catalog.video_text``, the
one place it is built); the student's training features, bulk labelling and the collaborative
cold-start projection all read these rows, so a video has the same text and embedding at
training time as at labelling time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .artifacts import Artifact, Stamp
from .catalog import Catalog
from .encoder import Encoder
from .errors import DataError
from .progress import progress_bar

ROWS_PER_SHARD = 2500
PATTERN = "catalog-*.parquet"


def embedding_array(vectors: np.ndarray) -> pa.FixedSizeListArray:
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    return pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), vectors.shape[1])


def embeddings_from_column(column: pa.ChunkedArray | pa.Array, dim: int) -> np.ndarray:
    """A list / fixed-size-list float column as an (n, dim) float32 matrix; errors name the shape."""
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if array.null_count:
        raise DataError(f"embedding column has {array.null_count} null rows; expected one {dim}-d vector per row")
    flat = array.flatten().to_numpy(zero_copy_only=False)
    if flat.size != len(array) * dim:
        raise DataError(f"embedding column holds {flat.size} values for {len(array)} rows; expected {dim} per row")
    return flat.astype(np.float32, copy=False).reshape(len(array), dim)


def shard_table(ids: Sequence[str], texts: Sequence[str], tags: Sequence[Sequence[str]], vectors: np.ndarray) -> pa.Table:
    return pa.table(
        {
            "video_id": pa.array([str(i) for i in ids], pa.string()),
            "text": pa.array(list(texts), pa.string()),
            "tags": pa.array([list(t) for t in tags], pa.list_(pa.string())),
            "embedding": embedding_array(vectors),
        }
    )


def write_shards(catalog: Catalog, encoder: Encoder, artifact: Artifact, stamp: Stamp, *, rows_per_shard: int = ROWS_PER_SHARD) -> None:
    """Encode the catalog (through the cache) and write it as shards into ``artifact``."""
    texts = catalog.texts()
    with progress_bar(len(texts), f"encoding {len(texts):,} videos") as advance:
        vectors = encoder.encode(texts, advance)
    tags = list(catalog.frame["tags"])
    ids = catalog.ids
    stamp.meta = {"encoder": encoder.name, "dim": int(encoder.dim), "videos": len(ids), "rows_per_shard": rows_per_shard}
    with artifact.replace(stamp) as staging:
        for number, start in enumerate(range(0, len(ids), rows_per_shard)):
            stop = start + rows_per_shard
            table = shard_table(ids[start:stop], texts[start:stop], tags[start:stop], vectors[start:stop])
            pq.write_table(table, staging / f"catalog-{number:05d}.parquet")


def shard_files(artifact: Artifact) -> list[Path]:
    """The shard files, each checked to open as Parquet (a truncated one is an error naming it)."""
    artifact.complete_manifest()
    files = sorted(artifact.path.glob(PATTERN))
    if not files:
        raise artifact.error(artifact.path, "holds no catalog shards")
    for file in files:
        artifact.read(file.name, pq.ParquetFile)
    return files


def read_shards(artifact: Artifact, columns: Sequence[str] = ("video_id", "tags", "embedding")) -> pa.Table:
    """All shards as one table (the catalog is small enough for memory when this is called)."""
    tables = [artifact.read(file.name, lambda path: pq.read_table(path, columns=list(columns))) for file in shard_files(artifact)]
    return pa.concat_tables(tables)


def read_embeddings(artifact: Artifact) -> tuple[list[str], np.ndarray, list[list[str]]]:
    """(video ids, text embeddings, tags) of every catalog video, in shard order."""
    manifest = artifact.complete_manifest()
    table = read_shards(artifact)
    dim = int(manifest.meta["dim"])
    with artifact.reading(artifact.path):
        vectors = embeddings_from_column(table.column("embedding"), dim)
    return table.column("video_id").to_pylist(), vectors, table.column("tags").to_pylist()
