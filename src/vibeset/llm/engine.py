"""The run engine: annotate many videos with an LLM and lose nothing.

``run`` is a library call (no CLI, no globals) so bulk and distributed jobs reuse it per shard.
Every input video ends either annotated (rows in a Parquet part) or recorded as a failure with
its raw text; a re-run of the same job into the same directory skips annotated videos, replays
cached answers instead of paying for them again, and retries failures.
"""

from __future__ import annotations

import asyncio
import random
import secrets
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from ..catalog import Video
from ..errors import DataError
from ..hashing import file_sha256
from ..taxonomy import Taxonomy
from .backend import Backend, CallError, Completion, Request
from .cache import ResponseCache, cache_key
from .config import LLMConfig
from .frames import sample_frames
from .prompt import Prompt, PromptTemplate
from .ratelimit import RateLimiter
from .response import Judgement, ParseFailure, parse_response
from .store import RunStore, annotated_ids


@dataclass
class RunSummary:
    """Counts, tokens and cost of one run; updated live and passed to the progress callback."""

    run_id: str
    out_dir: str
    backend: str
    model: str
    prompt_version: str
    taxonomy_version: str
    total: int = 0
    skipped: int = 0
    annotated: int = 0
    failed: int = 0
    calls: int = 0
    cache_hits: int = 0
    retries: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float | None = 0.0
    status: str = "running"
    started: float = field(default_factory=time.time)
    elapsed_s: float = 0.0

    @property
    def finished(self) -> int:
        return self.skipped + self.annotated + self.failed

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Estimate:
    """What a run would spend, before spending anything (``--dry-run``)."""

    model: str
    prompt_version: str
    videos: int
    already_annotated: int
    cached: int
    calls: int
    input_tokens: int
    output_tokens: int
    cost_usd: float | None
    input_tokens_per_call: float
    output_tokens_per_call: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def new_run_id() -> str:
    return time.strftime("%Y%m%dT%H%M%S") + "-" + secrets.token_hex(3)


def _unique(videos: Sequence[Video]) -> list[Video]:
    seen: set[str] = set()
    return [v for v in videos if not (v.video_id in seen or seen.add(v.video_id))]


class _Job:
    """The state one run shares between its workers."""

    def __init__(self, taxonomy: Taxonomy, backend: Backend, config: LLMConfig, prompt: Prompt | None) -> None:
        self.taxonomy = taxonomy
        self.backend = backend
        self.config = config
        self.prompt = prompt or Prompt(taxonomy, PromptTemplate.load(config.prompt))
        self.names = taxonomy.names
        self.taxonomy_version = taxonomy.version  # a hash of the whole taxonomy: computed once
        self.inputs = {
            "frames": config.frames,
            "max_fps": config.max_fps,
            "frame_size": config.frame_size,
            "native_video": config.native_video,
        }
        self.identity = {**backend.identity(), "inputs": self.inputs}
        self.price = config.price(backend.model)

    def job(self) -> dict[str, Any]:
        return {
            **self.identity,
            "samples": self.config.samples,
            "prompt_version": self.prompt.version,
            "taxonomy_version": self.taxonomy_version,
        }

    def video_hash(self, video: Video) -> str:
        uses_media = video.media and (self.config.frames or self.config.native_video)
        if uses_media and Path(video.media).is_file():
            return video.content_hash + ":" + file_sha256(video.media)
        return video.content_hash

    def keys(self, video: Video) -> list[str]:
        video_hash = self.video_hash(video)
        return [cache_key(self.identity, self.prompt.version, video_hash, s) for s in range(self.config.samples)]

    def tokens(self, request: Request) -> tuple[float, float]:
        """Estimated (input, output) tokens of one call."""
        chars = len(request.system) + len(request.user)
        images = len(request.images) or (1 if request.media else 0)
        return chars / self.config.chars_per_token + images * self.config.image_tokens, len(
            self.names
        ) * self.config.output_tokens_per_attribute

    def cost(self, input_tokens: float, output_tokens: float) -> float | None:
        if self.price is None:
            return None
        return (input_tokens * self.price.input + output_tokens * self.price.output) / 1e6


async def _request(job: _Job, video: Video) -> Request:
    """Render the prompt with the configured media: frames (sampled off the event loop) or the file/URI."""
    if video.media and job.config.native_video:
        return job.prompt.render(video, media=video.media)
    if video.media and job.config.frames:
        images = await asyncio.to_thread(
            sample_frames, video.media, job.config.frames, max_fps=job.config.max_fps, size=job.config.frame_size
        )
        return job.prompt.render(video, images=images)
    return job.prompt.render(video)


def _rows(video: Video, samples: list[dict[str, Judgement]], job: _Job, run_id: str) -> list[dict[str, Any]]:
    """One row per attribute. One sample: score = belief in the label being true; several: vote share."""
    rows = []
    for name in job.names:
        judgements = [sample[name] for sample in samples]
        beliefs = [j.confidence if j.label else 1.0 - j.confidence for j in judgements]
        if len(judgements) == 1:
            score, label = beliefs[0], judgements[0].label
        else:
            score = sum(j.label for j in judgements) / len(judgements)
            label = score > 0.5 or (score == 0.5 and sum(beliefs) / len(beliefs) > 0.5)
        evidence = next((j.evidence for j in judgements if j.label == label), judgements[0].evidence)
        rows.append(
            {
                "video_id": video.video_id,
                "attribute": name,
                "score": score,
                "label": label,
                "evidence": evidence,
                "source": "llm",
                "model": job.backend.model,
                "run_id": run_id,
                "prompt_version": job.prompt.version,
                "taxonomy_version": job.taxonomy_version,
            }
        )
    return rows


class _Runner:
    """Workers pull videos, call (or replay) the model, and buffer whole videos for the next part."""

    def __init__(
        self, job: _Job, store: RunStore, cache: ResponseCache, summary: RunSummary,
        progress: Callable[[RunSummary], None] | None,
    ) -> None:
        self.job, self.store, self.cache, self.summary, self.progress = job, store, cache, summary, progress
        self.limiter = RateLimiter(job.config.requests_per_minute, job.config.tokens_per_minute)
        self.random = random.Random()
        self.rows: list[dict[str, Any]] = []
        self.failures: list[dict[str, Any]] = []
        self.buffered = 0

    def _tick(self) -> None:
        self.summary.elapsed_s = time.time() - self.summary.started
        if self.progress:
            self.progress(self.summary)

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return retry_after
        ceiling = min(self.job.config.backoff_max_s, self.job.config.backoff_s * 2 ** (attempt - 1))
        return ceiling / 2 + self.random.uniform(0, ceiling / 2)

    async def _call(self, request: Request, key: str) -> tuple[dict, Completion] | dict:
        """Call until an answer parses (then cache it) or retries run out (then return the failure)."""
        config, summary = self.job.config, self.summary
        failure: dict[str, Any] = {}
        retry_after: float | None = None
        estimated_in, estimated_out = self.job.tokens(request)
        for attempt in range(config.max_retries + 1):
            if attempt:
                summary.retries += 1
                self._tick()
                await asyncio.sleep(self._backoff(attempt, retry_after))
            retry_after = None
            await self.limiter.acquire(estimated_in + estimated_out)
            summary.calls += 1
            try:
                completion = await self.job.backend.complete(request)
            except CallError as err:
                failure = {"kind": err.kind, "message": str(err), "raw": err.raw, "attempts": attempt + 1}
                if not err.retryable:
                    return failure
                if err.retry_after is not None:
                    retry_after = err.retry_after
                    self.limiter.pause(err.retry_after)
                continue
            used_in = completion.input_tokens if completion.input_tokens is not None else estimated_in
            used_out = completion.output_tokens if completion.output_tokens is not None else estimated_out
            self.limiter.settle(estimated_in + estimated_out, used_in + used_out)
            summary.input_tokens += int(used_in)
            summary.output_tokens += int(used_out)
            cost = self.job.cost(used_in, used_out)
            summary.cost_usd = None if cost is None else (summary.cost_usd or 0.0) + cost
            parsed = parse_response(completion.text, self.job.names)
            if isinstance(parsed, ParseFailure):
                failure = {"kind": parsed.kind, "message": parsed.message, "raw": completion.text, "attempts": attempt + 1}
                continue
            self.cache.put(key, completion)
            return parsed, completion
        return failure

    async def annotate(self, video: Video) -> None:
        try:
            request = await _request(self.job, video)
        except DataError as err:
            self._fail(video, {"kind": "media_error", "message": str(err), "raw": "", "attempts": 0})
            return
        samples: list[dict[str, Judgement]] = []
        for key in self.job.keys(video):
            cached = self.cache.get(key)
            if cached is not None:
                parsed = parse_response(cached.text, self.job.names)
                if not isinstance(parsed, ParseFailure):
                    self.summary.cache_hits += 1
                    samples.append(parsed)
                    continue
            result = await self._call(request, key)
            if isinstance(result, dict):
                self._fail(video, result)
                return
            samples.append(result[0])
        self.rows.extend(_rows(video, samples, self.job, self.summary.run_id))
        self.summary.annotated += 1
        self._buffered()

    def _fail(self, video: Video, failure: dict[str, Any]) -> None:
        self.failures.append(
            {
                "video_id": video.video_id,
                **failure,
                "run_id": self.summary.run_id,
                "model": self.job.backend.model,
                "prompt_version": self.job.prompt.version,
                "created": time.time(),
            }
        )
        self.summary.failed += 1
        self._buffered()

    def _buffered(self) -> None:
        self.buffered += 1
        if self.buffered >= self.job.config.flush_every:
            self.flush()
        self._tick()

    def flush(self) -> None:
        """Append buffered whole videos as one part (and failures as another)."""
        rows, failures = self.rows, self.failures
        self.rows, self.failures, self.buffered = [], [], 0
        self.store.append(rows)
        self.store.append_failures(failures)

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
) -> RunSummary:
    """Annotate ``videos`` into ``out_dir`` (layout in ``vibeset.llm.store``); closes the backend at the end.

    Per-video failures are data (``failures/``); a ``BackendError`` (bad key, unknown model)
    stops the run after writing what is done. Cancelling (Ctrl-C) does the same.
    """
    job = _Job(taxonomy, backend, config, prompt)
    run_id = run_id or new_run_id()
    store = RunStore(out_dir, job.job(), run_id)
    cache = ResponseCache(config.cache or Path(out_dir) / "cache.sqlite")
    summary = RunSummary(
        run_id=run_id, out_dir=str(out_dir), backend=backend.name, model=backend.model,
        prompt_version=job.prompt.version, taxonomy_version=taxonomy.version,
        cost_usd=0.0 if job.price else None,
    )
    unique = _unique(videos)
    done = annotated_ids(out_dir)
    todo = [video for video in unique if video.video_id not in done]
    summary.total, summary.skipped = len(unique), len(unique) - len(todo)
    store.record_run(summary.to_dict())
    runner = _Runner(job, store, cache, summary, progress)
    runner._tick()
    queue = iter(todo)
    workers = [asyncio.create_task(runner.worker(queue)) for _ in range(min(config.concurrency, max(1, len(todo))))]
    try:
        await asyncio.gather(*workers)
        summary.status = "complete"
    except BaseException as err:
        for worker in workers:
            worker.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        summary.status = "interrupted" if isinstance(err, (asyncio.CancelledError, KeyboardInterrupt)) else "failed"
        raise
    finally:
        runner.flush()
        summary.elapsed_s = time.time() - summary.started
        store.record_run(summary.to_dict())
        cache.close()
        await backend.aclose()
    return summary


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
    Frames are counted as ``image_tokens`` each without decoding the files.
    """
    job = _Job(taxonomy, backend, config, prompt)
    unique = _unique(videos)
    done = annotated_ids(out_dir) if out_dir else set()
    cache_path = config.cache or (Path(out_dir) / "cache.sqlite" if out_dir else None)
    cache = ResponseCache(cache_path) if cache_path and Path(cache_path).exists() else None
    calls = cached = 0
    input_tokens = output_tokens = 0.0
    for video in unique:
        if video.video_id in done:
            continue
        keys = job.keys(video)
        hits = sum(key in cache for key in keys) if cache else 0
        cached += hits == len(keys)
        if hits == len(keys):
            continue
        frames = config.frames if (video.media and config.frames and not config.native_video) else 0
        request = job.prompt.render(video, images=[b""] * frames, media=video.media if config.native_video else None)
        tokens_in, tokens_out = job.tokens(request)
        misses = len(keys) - hits
        calls += misses
        input_tokens += tokens_in * misses
        output_tokens += tokens_out * misses
    if cache:
        cache.close()
    return Estimate(
        model=backend.model,
        prompt_version=job.prompt.version,
        videos=len(unique),
        already_annotated=len(done & {v.video_id for v in unique}),
        cached=cached,
        calls=calls,
        input_tokens=int(input_tokens),
        output_tokens=int(output_tokens),
        cost_usd=job.cost(input_tokens, output_tokens),
        input_tokens_per_call=input_tokens / calls if calls else 0.0,
        output_tokens_per_call=output_tokens / calls if calls else 0.0,
    )
