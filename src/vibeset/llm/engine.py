"""The run engine: annotate many videos with an LLM and lose nothing.

``run`` is a library call (no CLI, no globals) so bulk and distributed jobs reuse it per shard.
Every input video ends either annotated (rows in a Parquet part) or recorded as a failure with
its raw text; a re-run of the same job into the same directory skips annotated videos, replays
cached answers instead of paying for them again, and retries failures. Online, workers call the
model through the one retry loop (``calls.Caller``); in batch mode (``[llm] mode = "batch"``)
``batch.run_batches`` sends the same requests through the provider's batch API instead. Both
fill the same cache and write whole videos through the same sink, and both keep their books
in ``usage.jsonl`` as calls happen, so a killed run's calls, tokens and cost are still counted.
"""

from __future__ import annotations

import asyncio
import gc
import secrets
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from ..catalog import Video
from ..taxonomy import Taxonomy
from .backend import Backend
from .batch import client_for, run_batches
from .cache import ResponseCache
from .calls import Answer, Caller
from .config import LLMConfig
from .job import Job, RunSummary, Sampled, Sink, request_or_failure
from .prompt import Prompt
from .store import RunStore, annotated_ids


@dataclass(frozen=True)
class Estimate:
    """What a run would spend, before spending anything (``--dry-run``): online and in batch mode."""

    model: str
    prompt_version: str
    videos: int
    already_annotated: int
    cached: int
    calls: int
    input_tokens: int
    output_tokens: int
    cost_usd: float | None
    batch_cost_usd: float | None
    input_tokens_per_call: float
    output_tokens_per_call: float
    mode: str = "online"
    shots: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def new_run_id() -> str:
    return time.strftime("%Y%m%dT%H%M%S") + "-" + secrets.token_hex(3)


def _unique(videos: Sequence[Video]) -> list[Video]:
    seen: set[str] = set()
    return [v for v in videos if not (v.video_id in seen or seen.add(v.video_id))]


class _Runner:
    """Online: workers pull videos, replay cached answers or call the model, and hand whole videos to the sink."""

    def __init__(self, job: Job, sink: Sink, cache: ResponseCache, caller: Caller, videos: Sequence[Video]) -> None:
        self.job, self.sink, self.cache, self.caller = job, sink, cache, caller
        self.keys = {video.video_id: job.video_keys(video) for video in videos}
        # which answers the cache holds, looked up in bulk: a miss costs no query during the run
        # (a SELECT racing the cache's writer thread held the event loop for ~15% of its time)
        self.known = cache.known([key for keys in self.keys.values() for key in keys])

    async def annotate(self, video: Video) -> None:
        request = await request_or_failure(self.job, video)
        if isinstance(request, dict):
            self.sink.failed(video, request)
            return
        samples: list[Sampled] = []
        for key in self.keys[video.video_id]:
            replayed = self.job.replay(self.cache.get(key)) if key in self.known else None
            if replayed is not None:
                self.sink.summary.cache_hits += 1
                samples.append(replayed)
                continue
            result = await self.caller.call(request, self.job.answer, self.job.tokens(request))
            if not isinstance(result, Answer):
                self.sink.failed(video, result)
                return
            sampled, keep = result.parsed
            self.cache.put(key, keep)
            self.known.add(key)
            samples.append(sampled)
        self.sink.annotated(video, samples)

    async def worker(self, videos: Iterator[Video]) -> None:
        for video in videos:
            await self.annotate(video)


async def run(
    videos: Sequence[Video],
    taxonomy: Taxonomy,
    backend: Backend,
    config: LLMConfig,
    out_dir: str | Path,
    *,
    prompt: Prompt | None = None,
    run_id: str | None = None,
    progress: Callable[[RunSummary], None] | None = None,
    journal: Path | None = None,
) -> RunSummary:
    """Annotate ``videos`` into ``out_dir`` (layout in ``vibeset.llm.store``); closes the backend at the end.

    Per-video failures are data (``failures/``); a ``BackendError`` (bad key, unknown model)
    stops the run after writing what is done. Cancelling (Ctrl-C) does the same. ``journal``:
    where the books go when ``out_dir`` is one shard of a bigger job (default OUT/usage.jsonl;
    a run with its own journal also settles the books of earlier runs killed in ``out_dir``).
    """
    job = Job(taxonomy, backend, config, prompt)
    client = client_for(backend) if config.mode == "batch" else None  # refuses a backend without one
    run_id = run_id or new_run_id()
    store = RunStore(out_dir, job.job(), run_id)
    if journal is None:
        store.settle_killed()
    cache = ResponseCache(config.cache or Path(out_dir) / "cache.sqlite")
    summary = RunSummary(
        run_id=run_id, out_dir=str(out_dir), backend=backend.name, model=backend.model,
        prompt_version=job.prompt.version, taxonomy_version=taxonomy.version,
        cost_usd=0.0 if job.price else None, mode=config.mode,
    )
    todo = _todo(videos, out_dir, summary)
    lineage = {"endpoint": job.endpoint}
    store.record_run({**summary.to_dict(), **lineage})

    def tick() -> None:
        summary.elapsed_s = time.time() - summary.started
        if progress:
            progress(summary)

    sink = Sink(job, store, summary, tick)
    price_factor = config.batch_price_factor if config.mode == "batch" else 1.0
    caller = Caller(backend, config, summary, journal=lambda entry: store.journal(entry, journal), on_retry=tick,
                    price_factor=price_factor)
    prepare = getattr(job.prompt.shots, "prepare", None)
    if prepare and todo:
        prepare(todo)  # few-shot choices for every video in one encoder pass
    tick()
    gc.freeze()  # what exists now lives through the run: the cyclic GC scanned it for ~0.6 ms a call
    try:
        if client is not None:
            await run_batches(client, job, todo, sink, cache, caller, Path(out_dir))
        else:
            await _online(job, todo, sink, cache, caller)
        summary.status = "complete"
    except BaseException as err:
        summary.status = "interrupted" if isinstance(err, (asyncio.CancelledError, KeyboardInterrupt)) else "failed"
        raise
    finally:
        gc.unfreeze()
        sink.flush()
        store.drain()  # the parts are on disk before the manifest says so
        summary.elapsed_s = time.time() - summary.started
        store.record_run({**summary.to_dict(), **lineage})
        await _close(store, cache, backend)
    return summary


def _todo(videos: Sequence[Video], out_dir: str | Path, summary: RunSummary) -> list[Video]:
    """The videos not yet annotated in ``out_dir``, each once; counts them into ``summary``."""
    unique = _unique(videos)
    done = annotated_ids(out_dir)
    todo = [video for video in unique if video.video_id not in done]
    summary.total, summary.skipped = len(unique), len(unique) - len(todo)
    return todo


async def _close(store: RunStore, cache: ResponseCache, backend: Backend) -> None:
    store.close()
    cache.close()
    await backend.aclose()


async def _online(job: Job, todo: list[Video], sink: Sink, cache: ResponseCache, caller: Caller) -> None:
    runner = _Runner(job, sink, cache, caller, todo)
    queue = iter(todo)
    workers = [asyncio.create_task(runner.worker(queue)) for _ in range(min(job.config.concurrency, max(1, len(todo))))]
    try:
        await asyncio.gather(*workers)
    except BaseException:
        for worker in workers:
            worker.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        raise


def estimate(
    videos: Sequence[Video],
    taxonomy: Taxonomy,
    backend: Backend,
    config: LLMConfig,
    out_dir: str | Path | None = None,
    *,
    prompt: Prompt | None = None,
) -> Estimate:
    """Tokens and cost of ``run`` with these arguments, from rendered prompts; calls nothing.

    Videos already annotated in ``out_dir`` and answers already in the cache cost nothing.
    Frames are counted as ``image_tokens`` each without decoding the files. The batch cost is
    the online cost times ``batch_price_factor`` (both providers charge half in batch mode).
    """
    job = Job(taxonomy, backend, config, prompt)
    unique = _unique(videos)
    prepare = getattr(job.prompt.shots, "prepare", None)
    if prepare:
        prepare(unique)
    done = annotated_ids(out_dir) if out_dir else set()
    cache_path = config.cache or (Path(out_dir) / "cache.sqlite" if out_dir else None)
    cache = ResponseCache(cache_path) if cache_path and Path(cache_path).exists() else None
    calls = cached = 0
    input_tokens = output_tokens = 0.0
    for video in unique:
        if video.video_id in done:
            continue
        frames = config.frames if (video.media and config.frames and not config.native_video) else 0
        request = job.prompt.render(video, images=[b""] * frames, media=video.media if config.native_video else None)
        keys = job.keys(video, request)
        hits = sum(key in cache for key in keys) if cache else 0
        cached += hits == len(keys)
        if hits == len(keys):
            continue
        tokens_in, tokens_out = job.tokens(request)
        misses = len(keys) - hits
        calls += misses
        input_tokens += tokens_in * misses
        output_tokens += tokens_out * misses
    if cache:
        cache.close()
    cost = job.cost(input_tokens, output_tokens)
    return Estimate(
        model=backend.model,
        prompt_version=job.prompt.version,
        videos=len(unique),
        already_annotated=len(done & {v.video_id for v in unique}),
        cached=cached,
        calls=calls,
        input_tokens=int(input_tokens),
        output_tokens=int(output_tokens),
        cost_usd=cost,
        batch_cost_usd=None if cost is None else cost * config.batch_price_factor,
        input_tokens_per_call=input_tokens / calls if calls else 0.0,
        output_tokens_per_call=output_tokens / calls if calls else 0.0,
        mode=config.mode,
        shots=int(getattr(job.prompt.shots, "k", 0)),
    )
