"""The output directory of an annotation job, written crash-safely.

    OUT/part-<run>-<seq>.parquet      annotations (vibeset.annotation.SCHEMA), whole videos per part
    OUT/failures/part-<run>-<seq>.parquet   one row per failed video: kind, message, raw text
    OUT/manifest.json                 the job (backend, model, params, prompt and taxonomy version)
                                      and every run's counts, tokens, cost and status
    OUT/cache.sqlite                  the response cache, unless configured elsewhere

Each part is written to a temporary file and renamed, so a crash leaves whole parts or none;
a video's rows are always in one part, and the videos already in parts are what a re-run skips.
One writer per directory; parallel shards write to directories of their own.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Mapping

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ..annotation import SCHEMA, annotations_frame
from ..errors import ConfigError, DataError
from ..files import atomic_write_table, atomic_write_text

FAILURE_SCHEMA = pa.schema(
    [
        ("video_id", pa.string()),
        ("kind", pa.string()),
        ("message", pa.string()),
        ("raw", pa.string()),
        ("attempts", pa.int32()),
        ("run_id", pa.string()),
        ("model", pa.string()),
        ("prompt_version", pa.string()),
        ("created", pa.float64()),
    ]
)
MANIFEST = "manifest.json"


class RunStore:
    """Annotation parts, failure parts and the manifest of one job directory."""

    def __init__(self, out_dir: str | Path, job: Mapping[str, Any], run_id: str) -> None:
        self.out_dir = Path(out_dir)
        self.failures_dir = self.out_dir / "failures"
        self.failures_dir.mkdir(parents=True, exist_ok=True)
        self.run_id = run_id
        self._seq = 0
        for stale in [*self.out_dir.glob("*.tmp"), *self.failures_dir.glob("*.tmp")]:
            stale.unlink()  # a part cut short by a crash; its videos are not done
        self.manifest = self._read_manifest()
        known = self.manifest.get("job")
        if known and known != dict(job):
            changed = sorted(k for k in set(known) | set(job) if known.get(k) != job.get(k))
            raise ConfigError(
                f"{self.out_dir} holds a job with different {', '.join(changed)} "
                f"(found {[known.get(k) for k in changed]}, now {[job.get(k) for k in changed]}); use a new --out"
            )
        self.manifest["job"] = dict(job)
        self.manifest.setdefault("runs", [])

    def _read_manifest(self) -> dict[str, Any]:
        path = self.out_dir / MANIFEST
        if not path.exists():
            return {}
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as err:
            raise DataError(f"{path}: unreadable run manifest: {err}") from err

    def _next(self, directory: Path) -> Path:
        self._seq += 1
        return directory / f"part-{self.run_id}-{self._seq:05d}.parquet"

    def append(self, rows: list[Mapping[str, Any]]) -> None:
        if rows:
            frame = annotations_frame(rows)
            atomic_write_table(pa.Table.from_pandas(frame, schema=SCHEMA, preserve_index=False), self._next(self.out_dir), fsync=True)

    def append_failures(self, rows: list[Mapping[str, Any]]) -> None:
        if rows:
            table = pa.Table.from_pylist([dict(row) for row in rows], schema=FAILURE_SCHEMA)
            atomic_write_table(table, self._next(self.failures_dir), fsync=True)

    def record_run(self, run: Mapping[str, Any]) -> None:
        """Insert or replace this run's entry in the manifest (atomically)."""
        runs = [r for r in self.manifest["runs"] if r.get("run_id") != self.run_id]
        self.manifest["runs"] = [*runs, {**run, "updated": time.time()}]
        atomic_write_text(self.out_dir / MANIFEST, json.dumps(self.manifest, indent=2, default=str))


def annotated_ids(out_dir: str | Path) -> set[str]:
    """Videos with annotations in ``out_dir``: what a re-run skips."""
    done: set[str] = set()
    for part in Path(out_dir).glob("part-*.parquet"):
        done.update(pq.read_table(part, columns=["video_id"]).column("video_id").to_pylist())
    return done


def read_failures(out_dir: str | Path) -> pd.DataFrame:
    """Every failure recorded in ``out_dir`` (all runs); a video later annotated may appear here too."""
    parts = sorted((Path(out_dir) / "failures").glob("part-*.parquet"))
    if not parts:
        return FAILURE_SCHEMA.empty_table().to_pandas()
    return pa.concat_tables([pq.read_table(part, schema=FAILURE_SCHEMA) for part in parts]).to_pandas()
