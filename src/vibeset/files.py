"""Atomic file writes: a reader (or a resumed job) sees the old file or the new one, never half of one.

The temporary file is hidden and named after the writing process, so concurrent writers never
share one, and stale-file sweeps can match ``.*.tmp``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq


def _temporary(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def _fsync(path: Path) -> None:
    with open(path, "rb+") as handle:
        os.fsync(handle.fileno())


def atomic_write_text(path: str | Path, text: str, *, fsync: bool = False) -> Path:
    """Write ``text`` (UTF-8) to ``path`` by temp file + rename; ``fsync`` makes it durable first."""
    path = Path(path)
    tmp = _temporary(path)
    tmp.write_text(text, encoding="utf-8")
    if fsync:
        _fsync(tmp)
    tmp.replace(path)
    return path


def atomic_write_table(table: pa.Table, path: str | Path, *, fsync: bool = False) -> Path:
    """Write an Arrow table to Parquet at ``path`` by temp file + rename."""
    path = Path(path)
    tmp = _temporary(path)
    pq.write_table(table, tmp)
    if fsync:
        _fsync(tmp)
    tmp.replace(path)
    return path
