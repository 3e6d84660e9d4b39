"""Bulk labelling with a student: Parquet shards in, annotation shards out, locally or on Ray.

Input shards carry ``video_id`` and either a stored ``embedding`` column (list of float32,
computed once at upload and shared across models) or text (``text``, or ``title`` /
``description``), plus ``tags`` when the student reads tags. CF factors come from the
student's own item table by id. Each input shard gives one output shard
``OUT/<stem>.parquet`` in the annotations schema, written to a temporary file and renamed,
so a killed job leaves whole shards or none, and a re-run skips shards already written.

Both executors call the same ``ShardLabeller`` on the same batches, so their outputs match. Text is
encoded in length-sorted batches (little padding), and the next input batch is read while one is
labelled.
The local executor streams each shard in bounded batches, one process per core (shards are
the unit of parallelism; workers die with the driver). The Ray executor is ``read_parquet ->
map_batches`` (an actor pool that holds the ONNX sessions) ``-> write_parquet`` into a staging
directory partitioned by input shard, finalised shard by shard; it runs pending shards in waves,
so a killed Ray job loses at most its current wave.

The output is an annotations artifact owned by one student version: resuming it with another
student is refused unless ``replace``.
"""

from __future__ import annotations

import concurrent.futures as futures
import glob
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..annotation import SCHEMA
from ..artifacts import Artifact, Stamp
from ..catalog import video_text
from ..distill.student import Student
from ..errors import ConfigError, DataError
from ..files import atomic_write_table
from ..shards import embeddings_from_column
from .session import process_pool, ray_session

ENGINES = ("local", "ray")
TEXT_COLUMNS = ("text", "title", "description")
SHARD_COLUMN = "_shard"
#: Below this many rows, starting one process per core (imports, ONNX sessions) costs more than it
#: saves; one process with ONNX Runtime's intra-op threads on every core does the job.
MIN_ROWS_FOR_PROCESSES = 50_000


@dataclass(frozen=True)
class ShardJob:
    source: Path
    target: Path
    rows: int


def plan(videos: str | Sequence[str], out: str | Path) -> list[ShardJob]:
    """Input shards matching the glob(s), each paired with its output path; errors on clashing stems."""
    patterns = [videos] if isinstance(videos, (str, Path)) else list(videos)
    sources = sorted({Path(p) for pattern in patterns for p in glob.glob(str(pattern))})
    if not sources:
        raise DataError(f"no Parquet shards match {patterns}")
    out = Path(out)
    stems: dict[str, Path] = {}
    jobs = []
    for source in sources:
        if source.stem in stems:
            raise DataError(f"input shards {stems[source.stem]} and {source} share the name {source.stem!r}; outputs would collide")
        stems[source.stem] = source
        jobs.append(ShardJob(source, out / f"{source.stem}.parquet", _rows(source)))
    return jobs


def _rows(source: Path) -> int:
    try:
        return pq.ParquetFile(source).metadata.num_rows
    except (OSError, ValueError, pa.ArrowException) as err:
        raise DataError(f"{source}: not a readable Parquet shard ({str(err).splitlines()[0][:160]})") from err


def _column(table: pa.Table, name: str, default: object) -> list:
    return table.column(name).to_pylist() if name in table.column_names else [default] * table.num_rows


def _tag_lists(table: pa.Table) -> list[list[str]]:
    tags = _column(table, "tags", [])
    return [[t.strip() for t in (v.split("|") if isinstance(v, str) else (v or [])) if t and t.strip()] for v in tags]


def _text(table: pa.Table) -> list[str]:
    """The text ``catalog.video_text`` builds (a ``text`` column is taken as already built)."""
    if "text" in table.column_names:
        return [t or "" for t in table.column("text").to_pylist()]
    titles = [(t or "").strip() for t in _column(table, "title", "")]
    descriptions = [(d or "").strip() for d in _column(table, "description", "")]
    return [video_text(t, g, d) for t, g, d in zip(titles, _tag_lists(table), descriptions)]


class ShardLabeller:
    """Turns one Arrow batch of input rows into annotation rows; holds the ONNX sessions."""

    def __init__(self, model: str | Path, *, threads: int | None = None, run_id: str = "") -> None:
        self.student = Student(model, threads=threads)
        self.threads = threads
        self.run_id = run_id
        self._encoder = None

    def columns(self, schema: pa.Schema) -> list[str]:
        """The input columns this student needs from a shard of ``schema``."""
        names = set(schema.names)
        if "video_id" not in names:
            raise DataError(f"input shard lacks 'video_id' (has {sorted(names)})")
        if "embedding" in names:
            wanted = ["video_id", "embedding"]
        elif names & set(TEXT_COLUMNS):
            wanted = ["video_id", *[c for c in TEXT_COLUMNS if c in names]]
            if "tags" in names:
                wanted.append("tags")
        else:
            raise DataError(f"input shard has neither 'embedding' nor a text column {TEXT_COLUMNS}; has {sorted(names)}")
        if "tags" in self.student.space.groups:
            if "tags" not in names:
                raise DataError("the student reads tags, but the input shard has no 'tags' column")
            if "tags" not in wanted:
                wanted.append("tags")
        return wanted

    def text_embeddings(self, table: pa.Table) -> np.ndarray:
        if "embedding" in table.column_names:
            return embeddings_from_column(table.column("embedding"), self.student.space.text_dim)
        if self._encoder is None:
            from ..encoder import encoder_named

            self._encoder = encoder_named(self.student.space.encoder, threads=self.threads)
        return self._encoder.encode(_text(table))

    def __call__(self, table: pa.Table | pa.RecordBatch) -> pa.Table:
        if isinstance(table, pa.RecordBatch):
            table = pa.Table.from_batches([table])
        ids = table.column("video_id").combine_chunks().cast(pa.string())
        tags = table.column("tags") if "tags" in table.column_names else None
        blocks = self.student.space.blocks(ids, self.text_embeddings(table), tags)
        return self.student.annotation_table(ids, self.student.predict_proba(blocks), self.run_id)


def _prefetched(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """The next batch is read and decoded in a thread while this one is labelled (Arrow releases the GIL)."""
    with futures.ThreadPoolExecutor(1) as reader:
        pending = reader.submit(next, batches, None)
        while (batch := pending.result()) is not None:
            pending = reader.submit(next, batches, None)
            yield batch


def label_shard(labeller: ShardLabeller, job: ShardJob, batch_rows: int, advance: Callable[[int], None] | None = None) -> int:
    """Label one shard into a temporary file, then rename it into place. Returns rows read."""
    source = pq.ParquetFile(job.source)
    columns = labeller.columns(source.schema_arrow)
    tmp = job.target.with_name(f".{job.target.name}.{os.getpid()}.tmp")
    rows = 0
    try:
        with pq.ParquetWriter(tmp, SCHEMA) as writer:
            for batch in _prefetched(source.iter_batches(batch_size=batch_rows, columns=columns)):
                writer.write_table(labeller(batch))
                rows += batch.num_rows
                if advance:
                    advance(batch.num_rows)
        tmp.replace(job.target)
    finally:
        tmp.unlink(missing_ok=True)
    return rows


_WORKER: ShardLabeller | None = None


def _init_worker(model: str, threads: int, run_id: str) -> None:
    global _WORKER
    _WORKER = ShardLabeller(model, threads=threads, run_id=run_id)


def _work(job: ShardJob, batch_rows: int) -> int:
    assert _WORKER is not None
    return label_shard(_WORKER, job, batch_rows)


def label_local(
    model: str | Path, jobs: Sequence[ShardJob], *, workers: int | None, batch_rows: int, run_id: str = "",
    advance: Callable[[int], None] | None = None,
) -> int:
    """One process per worker, each with its own ONNX sessions; ``workers=None``: one per core for big
    jobs, else one process using every core as ONNX Runtime threads."""
    cores = os.cpu_count() or 1
    if workers is None:
        workers = cores if sum(job.rows for job in jobs) >= MIN_ROWS_FOR_PROCESSES else 1
    workers = max(1, min(workers, len(jobs)))
    if workers == 1:
        labeller = ShardLabeller(model, threads=cores, run_id=run_id)
        return sum(label_shard(labeller, job, batch_rows, advance) for job in jobs)
    threads = max(1, cores // workers)
    total = 0
    with process_pool(workers, _init_worker, (str(model), threads, run_id)) as pool:
        pending = {pool.submit(_work, job, batch_rows): job for job in jobs}
        for done in futures.as_completed(pending):
            rows = done.result()
            total += rows
            if advance:
                advance(rows)
    return total


class _RayLabeller:
    """The actor: one ``ShardLabeller`` per actor; keeps each row's input shard for partitioning."""

    def __init__(self, model: str, threads: int, run_id: str) -> None:
        self.labeller = ShardLabeller(model, threads=threads, run_id=run_id)

    def __call__(self, batch: pa.Table) -> pa.Table:
        shards = batch.column("path").combine_chunks()
        out = self.labeller(batch)
        stems = pc.take(pa.array([Path(p).stem for p in shards.unique().to_pylist()]), pc.index_in(shards, shards.unique()))
        repeat = pa.array(np.repeat(np.arange(len(batch), dtype=np.int64), len(self.labeller.student.attributes)))
        return out.append_column(SHARD_COLUMN, pc.take(stems, repeat))


def label_ray(
    model: str | Path,
    jobs: Sequence[ShardJob],
    out: Path,
    *,
    concurrency: int,
    batch_rows: int,
    wave: int,
    run_id: str = "",
    advance: Callable[[int], None] | None = None,
) -> int:
    """``read_parquet -> map_batches(actor pool) -> write_parquet`` per wave of shards, then finalise each shard."""
    with ray_session():
        return _label_waves(model, jobs, out, concurrency=concurrency, batch_rows=batch_rows, wave=wave,
                            run_id=run_id, advance=advance)


def _label_waves(model, jobs, out: Path, *, concurrency: int, batch_rows: int, wave: int, run_id: str, advance) -> int:
    import ray
    import ray.data

    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    cores = float(ray.cluster_resources().get("CPU", 1))
    threads = max(1, int(cores) // concurrency)
    # Leave one CPU of the reservation to the read and write tasks, or the actors starve them.
    actor_cpus = max(0.1, (cores - 1) / concurrency) if cores > 1 else 0.5
    labeller = ShardLabeller(model)  # validates inputs on the driver before any actor starts
    total = 0
    for start in range(0, len(jobs), wave):
        group = jobs[start : start + wave]
        columns = sorted({c for job in group for c in labeller.columns(pq.ParquetFile(job.source).schema_arrow)})
        staging = out / f".ray-staging-{start:06d}"
        shutil.rmtree(staging, ignore_errors=True)
        # One read per shard, then a union: Ray lists a list of paths in parallel threads, which races on
        # fsspec's optional HTTP filesystem import when aiohttp is absent.
        reads = [ray.data.read_parquet(str(job.source), include_paths=True).select_columns([*columns, "path"]) for job in group]
        dataset = reads[0].union(*reads[1:]) if len(reads) > 1 else reads[0]
        dataset = dataset.map_batches(
            _RayLabeller,
            fn_constructor_kwargs={"model": str(model), "threads": threads, "run_id": run_id},
            compute=ray.data.ActorPoolStrategy(size=concurrency),
            num_cpus=actor_cpus,
            batch_size=batch_rows,
            batch_format="pyarrow",
        )
        dataset.write_parquet(str(staging), partition_cols=[SHARD_COLUMN])
        for job in group:
            parts = sorted((staging / f"{SHARD_COLUMN}={job.source.stem}").glob("*.parquet"))
            if len(parts) == 1 and pq.read_schema(parts[0]).equals(SCHEMA):
                parts[0].replace(job.target)  # same filesystem: a rename, no copy
            else:
                table = pa.concat_tables([pq.read_table(p, schema=SCHEMA) for p in parts]) if parts else SCHEMA.empty_table()
                atomic_write_table(table, job.target)
            total += job.rows
            if advance:
                advance(job.rows)
        shutil.rmtree(staging, ignore_errors=True)
    return total


def _claim(out: Artifact, version: str, replace: bool) -> None:
    """Bind OUT to one student version before any shard is written, so a resume never mixes students."""
    owner = out.manifest().lineage.get("student_version") if out.exists() else None
    parts = sorted(out.path.glob("*.parquet"))
    if parts and owner != version:
        if not replace:
            raise ConfigError(
                f"{out.path} holds labels by student {owner or 'of unknown version'}, not {version}: "
                "pass --replace to relabel it, or choose another --out"
            )
        for part in parts:
            part.unlink()


def label(
    model: str | Path,
    videos: str | Sequence[str],
    out: Artifact,
    stamp: Stamp,
    *,
    engine: str = "local",
    workers: int | None = None,
    batch_rows: int = 8192,
    wave: int = 8,
    replace: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> dict:
    """Label every pending shard of ``videos`` (Parquet globs) into the annotations artifact ``out``.

    Returns counts, throughput and lineage (also the artifact's metadata).
    """
    if engine not in ENGINES:
        raise ConfigError(f"--engine must be one of {ENGINES}, got {engine!r}")
    student = Student(model, threads=1)
    _claim(out, student.version, replace)
    jobs = plan(videos, out.path)
    stamp.lineage = {"source": "student", "model": f"student-{student.version}", "student_version": student.version,
                     "prompt_version": student.lineage.get("prompt_version", ""),
                     "taxonomy_version": student.state["taxonomy_version"], **(stamp.lineage or {})}
    with out.update(stamp) as directory:
        for stale in directory.glob(".*.tmp"):
            stale.unlink()
        pending = [job for job in jobs if not job.target.exists()]
        summary = _run(model, pending, directory, engine=engine, workers=workers, batch_rows=batch_rows, wave=wave,
                       run_id=stamp.run_id, progress=progress)
        summary.update(engine=engine, model=str(model), student_version=student.version, shards=len(jobs),
                       shards_skipped=len(jobs) - len(pending), shards_labelled=len(pending),
                       annotations=summary["videos"] * len(student.attributes), out=str(directory))
        stamp.meta = summary
    return summary


def _run(model, pending: list[ShardJob], directory: Path, *, engine, workers, batch_rows, wave, run_id, progress) -> dict:
    total_rows = sum(job.rows for job in pending)
    done = 0

    def advance(rows: int) -> None:
        nonlocal done
        done += rows
        if progress:
            progress(done, total_rows)

    started = time.perf_counter()
    if engine == "local":
        rows = label_local(model, pending, workers=workers, batch_rows=batch_rows, run_id=run_id, advance=advance)
    else:
        concurrency = workers or os.cpu_count() or 1
        rows = label_ray(model, pending, directory, concurrency=concurrency, batch_rows=batch_rows, wave=wave,
                         run_id=run_id, advance=advance)
    elapsed = time.perf_counter() - started
    return {"videos": rows, "elapsed_s": elapsed, "videos_per_s": rows / elapsed if elapsed > 0 and rows else 0.0}
