"""The run engine on Ray: catalog shards annotated by actors into one directory, as a local run would.

Videos are split into shards by a hash of their id (stable across runs and machines); shard k
is called through endpoint k mod E. An actor runs ``engine.run`` for one shard at a time into
``OUT/shards/<k>/`` (its own parts, failures and manifest); every shard shares one response cache
(SQLite WAL: ``OUT/cache.sqlite`` unless ``[llm] cache`` says otherwise). When its shard ends, or
is cancelled, the actor publishes the shard's parts into ``OUT`` by renames, holding a lock on the
shard directory, so a part is in exactly one place at every instant. A re-run first publishes
what a killed run left in shard directories (waiting for any orphaned actor to let go of them),
then skips every video already in ``OUT``: nothing lost, nothing written twice, cached answers
replayed rather than bought again. When every shard is done the shard directories go, leaving
the layout of a local run; the manifest's run entry sums the shards' counts, tokens and cost.

Several endpoints are replicas of one model; endpoints are never part of a job's identity
(cache keys, manifest), so which replica answered a video changes nothing, and the local and Ray
engines share a cache and can resume each other's output directory. Every shard appends its
books to the job's ``OUT/usage.jsonl``, so the driver of a later run settles a killed run's
calls, tokens and cost exactly as a local run does.
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from ..catalog import Video
from ..errors import ConfigError, DataError, VibesetError
from ..taxonomy import Taxonomy
from .backend import Backend, Completion, Request
from .config import LLMConfig
from ..scale.session import ray_session
from .engine import _unique, new_run_id, run
from .job import Job, RunSummary
from .store import USAGE, RunStore, annotated_ids

ENGINES = ("local", "ray")
SHARDS_DIR = "shards"
LOCK = ".lock"
#: How long a re-run waits for an orphaned actor of a killed run to release its shard directory.
LOCK_WAIT_S = 120.0
POLL_S = 0.25
#: Counters summed over shards into the run's entry.
_SUMMED = ("skipped", "annotated", "failed", "calls", "cache_hits", "retries", "input_tokens", "output_tokens")


def shard_of(video_id: str, shards: int) -> int:
    """The shard of a video: a hash of its id, so it does not depend on input order or machine."""
    return int.from_bytes(hashlib.blake2b(video_id.encode(), digest_size=8).digest(), "big") % shards


class Replica:
    """One of several endpoints serving the same model; its lineage names all of them (sorted)."""

    def __init__(self, backend: Backend, endpoints: Sequence[str]) -> None:
        self.backend = backend
        self.name = backend.name
        self.model = backend.model
        self.endpoints = sorted(endpoints)

    def identity(self) -> dict[str, Any]:
        return {**self.backend.identity(), "base_url": self.endpoints}

    async def complete(self, request: Request) -> Completion:
        return await self.backend.complete(request)

    async def aclose(self) -> None:
        await self.backend.aclose()


def replicas(backends: Sequence[Backend]) -> list[Backend]:
    """The backends as one job: one is itself; several must differ only in their endpoint. Idempotent."""
    backends = [backend.backend if isinstance(backend, Replica) else backend for backend in backends]
    if not backends:
        raise ConfigError("no backend given; expected one or more endpoints")
    if len(backends) == 1:
        return list(backends)
    identities = [backend.identity() for backend in backends]
    first = {k: v for k, v in identities[0].items() if k != "base_url"}
    for identity in identities[1:]:
        other = {k: v for k, v in identity.items() if k != "base_url"}
        if other != first:
            raise ConfigError(f"endpoints must serve the same backend, model and parameters; found {first} and {other}")
    endpoints = [str(identity["base_url"]) for identity in identities]
    if len(set(endpoints)) < len(endpoints):
        raise ConfigError(f"an endpoint is given twice: {endpoints}")
    return [Replica(backend, endpoints) for backend in backends]


def _try_lock(directory: Path) -> int | None:
    fd = os.open(directory / LOCK, os.O_CREAT | os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def _publish(out: Path, directory: Path) -> int:
    """Move a shard directory's finished parts into ``out`` (renames); returns how many moved."""
    moved = 0
    for sub in ("", "failures"):
        for part in sorted((directory / sub).glob("part-*.parquet")):
            part.replace(out / sub / f"{part.stem}-s{directory.name}.parquet")
            moved += 1
    return moved


def _recover(out: Path) -> None:
    """Publish what earlier (killed) runs left in shard directories, once no process holds them."""
    for directory in sorted(p for p in (out / SHARDS_DIR).glob("*") if p.is_dir()):
        deadline = time.monotonic() + LOCK_WAIT_S
        while (fd := _try_lock(directory)) is None:
            if time.monotonic() > deadline:
                raise DataError(f"{directory} is still locked after {LOCK_WAIT_S:g} s; is another run writing into {out}?")
            time.sleep(POLL_S)
        try:
            _publish(out, directory)
        finally:
            os.close(fd)


@dataclass(frozen=True)
class _Shard:
    index: int
    videos: list[Video]
    backend: Backend
    out: Path


class ShardActor:
    """Runs ``engine.run`` for one shard at a time; an async actor, so ``progress`` answers mid-shard."""

    def __init__(self, taxonomy: Taxonomy, config: LLMConfig, run_id: str) -> None:
        self.taxonomy, self.config, self.run_id = taxonomy, config, run_id
        self.live: dict[int, RunSummary] = {}

    async def annotate(self, shard: _Shard) -> dict[str, Any]:
        directory = shard.out / SHARDS_DIR / f"{shard.index:04d}"
        directory.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + LOCK_WAIT_S
        while (fd := _try_lock(directory)) is None:
            if time.monotonic() > deadline:
                raise DataError(f"{directory} is still locked after {LOCK_WAIT_S:g} s")
            await asyncio.sleep(POLL_S)
        try:
            _publish(shard.out, directory)  # an orphan's leftovers, if it got in between
            summary = await run(
                shard.videos, self.taxonomy, shard.backend, self.config, directory, run_id=self.run_id,
                progress=lambda s: self.live.__setitem__(shard.index, s), journal=shard.out / USAGE,
            )
        finally:
            _publish(shard.out, directory)
            os.close(fd)
        return summary.to_dict()

    async def progress(self) -> dict[int, dict[str, Any]]:
        return {index: summary.to_dict() for index, summary in self.live.items()}


def _total(summary: RunSummary, skipped: int, shards: dict[int, dict[str, Any]]) -> None:
    """Set the run's counters to ``skipped`` plus the sums over ``shards``."""
    for name in _SUMMED:
        setattr(summary, name, sum(s[name] for s in shards.values()))
    summary.skipped += skipped
    if summary.cost_usd is not None:
        summary.cost_usd = sum(s["cost_usd"] or 0.0 for s in shards.values())
    summary.elapsed_s = time.time() - summary.started


def run_on_ray(
    videos: Sequence[Video],
    taxonomy: Taxonomy,
    backends: Backend | Sequence[Backend],
    config: LLMConfig,
    out_dir: str | Path,
    *,
    shards: int | None = None,
    workers: int | None = None,
    num_cpus: int | None = None,
    run_id: str | None = None,
    progress: Callable[[RunSummary], None] | None = None,
) -> RunSummary:
    """``engine.run`` over hash shards of ``videos`` in ``workers`` Ray actors; same output directory and guarantees.

    ``backends``: one per endpoint (shard k uses endpoint k mod E). Defaults: ``workers`` =
    max(2, endpoints) actors, ``shards`` = 4 per actor. Each actor keeps ``config.concurrency``
    calls in flight; ``requests_per_minute`` / ``tokens_per_minute`` are for the whole job, split
    evenly over the actors. Starts a local Ray with ``num_cpus`` (default: all cores) unless one
    is running or ``RAY_ADDRESS`` is set.
    """
    backends = replicas([backends] if isinstance(backends, Backend) else list(backends))
    workers = workers or max(2, len(backends))
    shards = shards or 4 * workers
    if workers < 1 or shards < 1:
        raise ConfigError(f"workers and shards must be at least 1, got {workers} and {shards}")
    if config.mode == "batch":
        raise ConfigError("batch mode runs in one process (the provider does the parallel work): drop --engine ray")
    out = Path(out_dir).resolve()
    job = Job(taxonomy, backends[0], config, None)
    run_id = run_id or new_run_id()
    store = RunStore(out, job.job(), run_id)  # refuses an output directory of another job
    _recover(out)
    store.settle_killed()
    unique = _unique(videos)
    done = annotated_ids(out)
    todo = [video for video in unique if video.video_id not in done]
    summary = RunSummary(
        run_id=run_id, out_dir=str(out_dir), backend=backends[0].name, model=backends[0].model,
        prompt_version=job.prompt.version, taxonomy_version=job.taxonomy_version,
        cost_usd=0.0 if job.price else None, total=len(unique), skipped=len(unique) - len(todo),
    )
    skipped = summary.skipped
    lineage = {"engine": "ray", "shards": shards, "workers": workers, "endpoints": len(backends), "endpoint": job.endpoint}
    store.record_run({**summary.to_dict(), **lineage})
    groups: dict[int, list[Video]] = {}
    for video in todo:
        groups.setdefault(shard_of(video.video_id, shards), []).append(video)
    pending = [_Shard(k, groups[k], backends[k % len(backends)], out) for k in sorted(groups)]
    workers = min(workers, len(pending))

    def update(shard_summaries: dict[int, dict[str, Any]]) -> None:
        _total(summary, skipped, shard_summaries)
        if progress:
            progress(summary)

    update({})
    try:
        if pending:
            with ray_session(num_cpus):
                _drive(pending, (taxonomy, _per_actor(config, out, workers), run_id), workers, update)
        summary.status = "complete"
    except BaseException as err:
        summary.status = "interrupted" if isinstance(err, KeyboardInterrupt) else "failed"
        raise
    finally:
        summary.elapsed_s = time.time() - summary.started
        store.record_run({**summary.to_dict(), **lineage})
    shutil.rmtree(out / SHARDS_DIR, ignore_errors=True)
    return summary


def _per_actor(config: LLMConfig, out: Path, actors: int) -> LLMConfig:
    """One shared cache by absolute path; the job's rate limits split over the actors."""
    split = {
        name: getattr(config, name) / actors
        for name in ("requests_per_minute", "tokens_per_minute")
        if getattr(config, name) is not None
    }
    return config.model_copy(update={"cache": Path(config.cache or out / "cache.sqlite").resolve(), **split})


def _drive(
    pending: list[_Shard], actor_args: tuple[Any, ...], workers: int, update: Callable[[dict[int, dict[str, Any]]], None]
) -> None:
    """Feed shards to ``workers`` free actors until all are done; ``update`` gets every shard's latest counts."""
    import ray
    from ray.exceptions import RayTaskError

    cpus = float(ray.cluster_resources().get("CPU", 1.0))
    # I/O-bound actors: a fraction of a CPU each, so they all fit beside whatever else runs.
    actor = ray.remote(num_cpus=min(1.0, cpus / (workers + 1)))(ShardActor)
    actors = [actor.remote(*actor_args) for _ in range(workers)]
    queue = list(reversed(pending))
    running: dict[Any, tuple[Any, int]] = {}
    results: dict[int, dict[str, Any]] = {}

    def submit(worker: Any) -> None:
        if queue:
            shard = queue.pop()
            running[worker.annotate.remote(shard)] = (worker, shard.index)

    for worker in actors:
        submit(worker)
    try:
        while running:
            ready, _ = ray.wait(list(running), num_returns=1, timeout=POLL_S)
            for ref in ready:
                worker, index = running.pop(ref)
                results[index] = ray.get(ref)
                submit(worker)
            live: dict[int, dict[str, Any]] = {}
            for states in ray.get([worker.progress.remote() for worker in actors]):
                live.update(states)
            update({**live, **results})
    except RayTaskError as err:
        _cancel(running)
        if isinstance(err.cause, VibesetError):
            raise err.cause from None
        raise
    except BaseException:
        _cancel(running)
        raise
    finally:
        for worker in actors:
            ray.kill(worker)


def _cancel(running: dict[Any, tuple[Any, int]]) -> None:
    """Cancel running shards and give them a moment to flush and publish what they finished."""
    import ray

    for ref in running:
        ray.cancel(ref)
    ray.wait(list(running), num_returns=len(running), timeout=10)
