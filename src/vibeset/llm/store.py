"""The output directory of an annotation job, written crash-safely.

    OUT/part-<run>-<seq>.parquet      annotations (vibeset.annotation.SCHEMA), whole videos per part
    OUT/failures/part-<run>-<seq>.parquet   one row per failed video: kind, message, raw text
    OUT/manifest.json                 the job (backend, model, params, prompt and taxonomy version)
                                      and every run's counts, tokens, cost and status
    OUT/usage.jsonl                   the books as they happen: a line per call sent, answered, retried
    OUT/batches.json                  batch mode: the provider batches submitted and what is in them
    OUT/cache.sqlite                  the response cache, unless configured elsewhere

Each part is written to a temporary file and renamed, so a crash leaves whole parts or none;
a video's rows are always in one part, and the videos already in parts are what a re-run skips.
Parts carry, beside the annotation columns, each row's self-reported score and its logprob
score (``CONFIDENCE_COLUMNS``; NaN where the model gave none), for ``iterate evaluate``.
The manifest's run entry is written when a run starts and ends; a run killed in between is
settled by the next one from ``usage.jsonl`` (calls, tokens, cost) and the parts (videos).
One writer per directory; parallel shards write to directories of their own.
"""

from __future__ import annotations

import json
import os
import queue
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Mapping

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ..annotation import SCHEMA
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
USAGE = "usage.jsonl"
CONFIDENCE_COLUMNS = ("score_self", "score_logprob")
PART_SCHEMA = pa.schema([*SCHEMA, *(pa.field(name, pa.float32()) for name in CONFIDENCE_COLUMNS)])
_BOOKED = ("calls", "retries", "input_tokens", "output_tokens")


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
        self._journal: Journal | None = None
        self._writer: ThreadPoolExecutor | None = None
        self._writes: list[Future[Path]] = []

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
        """Write rows (whole videos, every ``PART_SCHEMA`` column) as the next part, in the background."""
        if rows:
            self._write(list(rows), PART_SCHEMA, self._next(self.out_dir))

    def append_failures(self, rows: list[Mapping[str, Any]]) -> None:
        if rows:
            self._write([dict(row) for row in rows], FAILURE_SCHEMA, self._next(self.failures_dir))

    def _write(self, rows: list[Mapping[str, Any]], schema: pa.Schema, path: Path) -> None:
        """Parts are built and written (temp file, fsync, rename) by one writer thread, in order: an
        fsync stalled by a busy disk never stalls the calls in flight, nor does building the table
        (5-20 ms for 256 videos, during which no answer in flight was read); ``drain`` waits for them."""
        if self._writer is None:
            self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vibeset-parts")
        self._writes.append(self._writer.submit(_write_part, rows, schema, path))

    def drain(self) -> None:
        """Wait until every part handed over is written (and raise what a write raised)."""
        writes, self._writes = self._writes, []
        for write in writes:
            write.result()

    def record_run(self, run: Mapping[str, Any]) -> None:
        """Insert or replace this run's entry in the manifest (atomically)."""
        runs = [r for r in self.manifest["runs"] if r.get("run_id") != self.run_id]
        self.manifest["runs"] = [*runs, {**run, "updated": time.time()}]
        self._write_manifest()

    def _write_manifest(self) -> None:
        atomic_write_text(self.out_dir / MANIFEST, json.dumps(self.manifest, indent=2, default=str))

    def journal(self, entry: Mapping[str, Any], path: Path | None = None) -> None:
        """Append one line of books to ``usage.jsonl`` (or ``path``, a job's shared journal)."""
        if self._journal is None:
            self._journal = Journal(path or self.out_dir / USAGE)
        self._journal.append((json.dumps({"run_id": self.run_id, **entry}) + "\n").encode())

    def close(self) -> None:
        self.drain()
        if self._writer is not None:
            self._writer.shutdown()
            self._writer = None
        if self._journal is not None:
            self._journal.close()
            self._journal = None

    def settle_killed(self, journal: Path | None = None) -> list[str]:
        """Close the books of earlier runs still marked running (killed): their calls, retries,
        tokens and cost from the journal, their videos from the parts. Returns their ids."""
        stale = [r for r in self.manifest["runs"] if r.get("status") == "running" and r.get("run_id") != self.run_id]
        if not stale:
            return []
        books = journal_totals(journal or self.out_dir / USAGE)
        for entry in stale:
            totals = books.get(entry["run_id"], {})
            entry.update({name: totals.get(name, 0) for name in _BOOKED})
            entry["cost_usd"] = totals.get("cost_usd", 0.0 if entry.get("cost_usd") is not None else None)
            entry["annotated"] = len(_ids(self.out_dir.glob(f"part-{entry['run_id']}-*.parquet")))
            entry["failed"] = len(_ids(self.failures_dir.glob(f"part-{entry['run_id']}-*.parquet")))
            entry["status"] = "killed"
        self._write_manifest()
        return [entry["run_id"] for entry in stale]


def _write_part(rows: list[Mapping[str, Any]], schema: pa.Schema, path: Path) -> Path:
    return atomic_write_table(pa.Table.from_pylist(rows, schema=schema), path, fsync=True)


class Journal:
    """Lines appended (``O_APPEND``: whole lines, even from several processes) by a writer thread,
    so a disk stalled by someone's fsync never stalls the event loop. A ``kill -9`` loses only
    the lines of the last moments that were still queued."""

    def __init__(self, path: Path) -> None:
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._queue: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._write, name="vibeset-journal", daemon=True)
        self._thread.start()

    def append(self, line: bytes) -> None:
        self._queue.put(line)

    def _write(self) -> None:
        while (line := self._queue.get()) is not None:
            lines = [line]
            while len(lines) < 4096:  # whatever else is queued goes in the same write
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    os.write(self._fd, b"".join(lines))
                    return
                lines.append(more)
            os.write(self._fd, b"".join(lines))

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join()
        os.close(self._fd)


def journal_totals(path: str | Path) -> dict[str, dict[str, Any]]:
    """Sum the journal per run: calls, retries, tokens, cost (None once any call had no price)."""
    totals: dict[str, dict[str, Any]] = {}
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return totals
    for line in lines:
        try:
            entry = json.loads(line)
            run = totals.setdefault(str(entry["run_id"]), {**dict.fromkeys(_BOOKED, 0), "cost_usd": 0.0})
        except (ValueError, KeyError, TypeError):
            continue  # a line cut short by the kill
        for name in _BOOKED:
            run[name] += int(entry.get(name) or 0)
        if "cost_usd" in entry:
            cost = entry["cost_usd"]
            run["cost_usd"] = None if cost is None or run["cost_usd"] is None else run["cost_usd"] + cost
    return totals


def _ids(parts: Any) -> set[str]:
    done: set[str] = set()
    for part in parts:
        done.update(pq.read_table(part, columns=["video_id"]).column("video_id").to_pylist())
    return done


def annotated_ids(out_dir: str | Path) -> set[str]:
    """Videos with annotations in ``out_dir``: what a re-run skips."""
    return _ids(Path(out_dir).glob("part-*.parquet"))


def read_confidences(out_dir: str | Path) -> pd.DataFrame:
    """video_id, attribute, the score used and each kind of confidence (``CONFIDENCE_COLUMNS``) of ``out_dir``'s parts."""
    frames = []
    for part in sorted(Path(out_dir).glob("part-*.parquet")):
        names = set(pq.read_schema(part).names)
        table = pq.read_table(part, columns=["video_id", "attribute", "score",
                                             *(c for c in CONFIDENCE_COLUMNS if c in names)])
        frames.append(table.to_pandas())
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["video_id", "attribute", "score"])
    for name in CONFIDENCE_COLUMNS:
        if name not in frame.columns:
            frame[name] = float("nan")
    return frame


def read_failures(out_dir: str | Path) -> pd.DataFrame:
    """Every failure recorded in ``out_dir`` (all runs); a video later annotated may appear here too."""
    parts = sorted((Path(out_dir) / "failures").glob("part-*.parquet"))
    if not parts:
        return FAILURE_SCHEMA.empty_table().to_pandas()
    return pa.concat_tables([pq.read_table(part, schema=FAILURE_SCHEMA) for part in parts]).to_pandas()


def job_of(out_dir: str | Path) -> dict[str, Any]:
    """The job an LLM output directory holds (model, prompt version, few-shot k, ...); {} if none."""
    path = Path(out_dir) / MANIFEST
    try:
        return dict(json.loads(path.read_text(encoding="utf-8")).get("job") or {})
    except (OSError, ValueError, AttributeError):
        return {}
