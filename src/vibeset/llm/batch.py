"""Batch mode: the same requests sent through a provider's batch API (half price, up to 24 h).

The driver's job is to get every missing answer into the response cache; videos whose samples
are all cached are then written by the engine's sink exactly as online. What is in flight
lives in ``OUT/batches.json``, written atomically at every change:

    batches   label, provider id, state (submitting | submitted | collected), keys -> video ids
    attempts  per request key: how many answers it has had that could not be used
    errors    per request key: the last such failure (kind, message, raw)

- A batch is recorded (``submitting``, with a unique label) *before* it is uploaded and carries
  that label at the provider, so a driver killed between creating it and recording its id finds
  it again (``find``) on resume instead of paying for a second one.
- Resume after ``kill -9`` polls the recorded batches; nothing in flight is submitted twice.
- Collection skips answers already cached (collected before a kill), so none is paid or booked twice.
- Expired, failed or cancelled batches, error-file lines, malformed output lines and answers
  that do not parse count one attempt for the requests concerned, which go into the next batch;
  after ``max_retries + 1`` attempts the video is recorded as failed with the last error.
- Books: every result line is one call with its billed tokens at the batch price; a malformed
  line is a call whose tokens cannot be read (counted, not priced).
- An upload or batch creation rejected with a 4xx fails the videos in it at once (it would
  be rejected again); 429 / 5xx are retried with the engine's back-off (``calls.Caller``).
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..catalog import Video
from ..errors import BackendError, ConfigError
from ..files import atomic_write_text
from .backend import Backend, Request
from .cache import ResponseCache
from .calls import Caller, failure
from .gemini_backend import GeminiBackend
from .gemini_batch import GeminiBatch
from .job import Job, Sampled, Sink, request_or_failure
from .openai_backend import OpenAIBackend
from .openai_batch import OpenAIBatch
from .provider_batch import TERMINAL, BatchClient, BatchStatus, Result

STATE = "batches.json"


def client_for(backend: Backend) -> BatchClient:
    """The batch API of ``backend``'s provider (OpenAI Batch API, Gemini Batch Mode)."""
    inner = getattr(backend, "backend", backend)  # a Replica wraps its backend
    if isinstance(inner, OpenAIBackend):
        return OpenAIBatch(inner)
    if isinstance(inner, GeminiBackend):
        return GeminiBatch(inner)
    raise ConfigError(f"backend {backend.name!r} has no batch mode; use [llm] mode = \"online\"")


class State:
    """``OUT/batches.json``: the batches of a job and the attempts of its requests."""

    def __init__(self, path: Path) -> None:
        self.path = path
        data: dict[str, Any] = {}
        if path.exists():
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as err:
                raise BackendError(f"{path}: unreadable batch state ({err}); the batches it names can be seen "
                                   "in the provider's console") from err
        self.batches: list[dict[str, Any]] = data.get("batches", [])
        self.attempts: dict[str, int] = data.get("attempts", {})
        self.errors: dict[str, dict[str, Any]] = data.get("errors", {})

    def save(self) -> None:
        data = {"batches": self.batches, "attempts": self.attempts, "errors": self.errors, "updated": time.time()}
        atomic_write_text(self.path, json.dumps(data))

    def open(self) -> list[dict[str, Any]]:
        return [batch for batch in self.batches if batch["state"] != "collected"]

    def in_flight(self) -> set[str]:
        return {key for batch in self.open() for key in batch["keys"]}

    def miss(self, key: str, record: dict[str, Any], *, final: bool = False, limit: int = 0) -> None:
        self.attempts[key] = max(self.attempts.get(key, 0) + 1, limit if final else 0)
        self.errors[key] = record


@dataclass
class _Video:
    video: Video
    request: Request
    keys: list[str]
    answers: dict[str, Sampled] = field(default_factory=dict)


class _Driver:
    def __init__(self, client: BatchClient, job: Job, sink: Sink, cache: ResponseCache, caller: Caller,
                 out_dir: Path) -> None:
        self.client, self.job, self.sink, self.cache, self.caller = client, job, sink, cache, caller
        self.state = State(out_dir / STATE)
        self.config = job.config
        self.limit = self.config.max_retries + 1
        self.pending: dict[str, _Video] = {}
        self.holders: dict[str, list[str]] = {}

    # -- requests --------------------------------------------------------------------------------
    async def prepare(self, videos: list[Video]) -> None:
        """Render every video's requests; cached answers are used at once."""
        for video in videos:
            request = await request_or_failure(self.job, video)
            if isinstance(request, dict):
                self.sink.failed(video, request)
                continue
            item = _Video(video, request, self.job.keys(video, request))
            for key in item.keys:
                replayed = self.job.replay(self.cache.get(key))
                if replayed is not None:
                    self.sink.summary.cache_hits += 1
                    item.answers[key] = replayed
            self.pending[video.video_id] = item
            for key in item.keys:  # videos with the same content share a request
                self.holders.setdefault(key, []).append(video.video_id)
        self.settle()

    def settle(self) -> None:
        """Write every video whose samples are all answered, and fail those with a sample out of attempts."""
        for video_id, item in list(self.pending.items()):
            if len(item.answers) == len(item.keys):
                self.sink.annotated(item.video, [item.answers[key] for key in item.keys])
            elif (spent := next((k for k in item.keys if self.state.attempts.get(k, 0) >= self.limit), None)):
                self.sink.failed(item.video, {**self.state.errors.get(spent, failure("batch_error", "no answer")),
                                              "attempts": self.state.attempts[spent]})
            else:
                continue
            del self.pending[video_id]

    def _wanted(self) -> list[tuple[str, _Video]]:
        """Requests to submit: unanswered, in no open batch, attempts left; each once (a custom id is unique)."""
        flying = self.state.in_flight()
        wanted = {key: item for item in self.pending.values() for key in item.keys
                  if key not in item.answers and key not in flying and self.state.attempts.get(key, 0) < self.limit}
        return list(wanted.items())

    # -- submitting ------------------------------------------------------------------------------
    async def submit(self) -> None:
        """Everything wanted and not in flight, in batches of at most ``batch_size`` requests and ``batch_max_bytes``."""
        chunk: list[tuple[str, str, dict[str, Any]]] = []
        size = 0
        for key, item in self._wanted():
            line = await self.client.line(key, item.request)
            length = len(json.dumps(line)) + 1
            if chunk and (len(chunk) >= self.config.batch_size or size + length > self.config.batch_max_bytes):
                await self._submit(chunk)
                chunk, size = [], 0
            chunk.append((key, item.video.video_id, line))
            size += length
        if chunk:
            await self._submit(chunk)

    async def _submit(self, chunk: list[tuple[str, str, dict[str, Any]]]) -> None:
        label = f"vibeset-{self.sink.summary.run_id}-{len(self.state.batches):04d}"
        batch = {"label": label, "id": None, "state": "submitting", "keys": {key: video for key, video, _ in chunk},
                 "created": time.time()}
        self.state.batches.append(batch)
        self.state.save()
        lines = [line for _, _, line in chunk]
        outcome = await self.caller.control(lambda: self.client.submit(lines, label), "batch upload")
        if isinstance(outcome, dict):  # rejected: a 4xx is final, retries spent on a 5xx count one attempt
            final = outcome["kind"] == "bad_request"
            for key in batch["keys"]:
                self.state.miss(key, outcome, final=final, limit=self.limit)
            self.state.batches.remove(batch)
        else:
            batch.update(id=outcome, state="submitted")
            self.sink.summary.batches += 1
        self.state.save()

    async def resolve(self) -> None:
        """Batches recorded as submitting by a killed driver: found at the provider by label, or dropped."""
        for batch in [b for b in self.state.open() if b["id"] is None]:
            found = await self.caller.control(lambda: self.client.find(batch["label"]), "batch lookup")
            if isinstance(found, dict):
                raise BackendError(f"cannot look up batch {batch['label']}: {found['message']}")
            if found:
                batch.update(id=found, state="submitted")
            else:
                self.state.batches.remove(batch)
        self.state.save()

    # -- collecting ------------------------------------------------------------------------------
    async def poll(self) -> bool:
        """One look at every open batch; collects the finished ones. True when any finished."""
        finished = False
        for batch in self.state.open():
            status = await self.caller.control(lambda: self.client.status(batch["id"]), "batch poll")
            if isinstance(status, dict):
                raise BackendError(f"cannot poll batch {batch['id']}: {status['message']}; re-run to resume")
            if status.state in TERMINAL:
                await self.collect(batch, status)
                finished = True
        return finished

    async def collect(self, batch: dict[str, Any], status: BatchStatus) -> None:
        fetched = await self.caller.control(lambda: self.client.results(batch["id"]), "batch download")
        if isinstance(fetched, dict):
            raise BackendError(f"cannot download the results of batch {batch['id']}: {fetched['message']}")
        results, malformed = fetched
        seen: set[str] = set()
        for result in results:
            if result.key in batch["keys"] and result.key not in seen:
                seen.add(result.key)
                self._take(result)
        why = f"batch {batch['id']} ended {status.provider_state or status.state}"
        if malformed:  # the provider ran (and bills) them, but their tokens cannot be read
            self.caller.charge(0, 0, calls=malformed)
            why += f" with {malformed} malformed output line(s)"
        for key in set(batch["keys"]) - seen:
            self.state.miss(key, failure(f"batch_{status.state}" if status.state != "done" else "missing_output",
                                         f"{why}{': ' + status.message if status.message else ''}; no answer for this request"))
        batch["state"] = "collected"
        self.state.save()
        self.settle()

    def _take(self, result: Result) -> None:
        """Book one result and give its answer to every pending video holding its request."""
        items = [self.pending[v] for v in self.holders.get(result.key, []) if v in self.pending]
        items = [item for item in items if result.key not in item.answers]
        if not items:
            return
        replayed = self.job.replay(self.cache.get(result.key))
        if replayed is not None:  # collected before a kill: already cached and booked
            for item in items:
                item.answers[result.key] = replayed
            return
        completion = result.completion
        if completion is None:
            self.caller.charge(0, 0, calls=int(result.ran))
            self.state.miss(result.key, result.error or failure("batch_error", "no answer"))
            return
        estimate = self.job.tokens(items[0].request)
        self.caller.charge(estimate[0] if completion.input_tokens is None else completion.input_tokens,
                           estimate[1] if completion.output_tokens is None else completion.output_tokens, calls=1)
        answered = self.job.answer(completion)
        if not isinstance(answered, tuple):
            self.state.miss(result.key, failure(answered.kind, answered.message, completion.text))
            return
        sampled, keep = answered
        self.cache.put(result.key, keep)
        for item in items:
            item.answers[result.key] = sampled

    # -- the loop --------------------------------------------------------------------------------
    async def run(self, videos: list[Video]) -> None:
        await self.resolve()
        await self.prepare(videos)
        delay = self.config.batch_poll_s
        while self.pending or self.state.open():
            await self.submit()
            if not self.state.open():
                if self._wanted():
                    continue  # every upload failed; each counted an attempt, so this ends
                break
            if await self.poll():
                delay = self.config.batch_poll_s
                continue
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, self.config.batch_poll_max_s)
        self.settle()


async def run_batches(client: BatchClient, job: Job, videos: list[Video], sink: Sink, cache: ResponseCache,
                      caller: Caller, out_dir: Path) -> None:
    """Annotate ``videos`` through ``client`` into ``sink`` (see the module docstring)."""
    driver = _Driver(client, job, sink, cache, caller, out_dir)
    try:
        await driver.run(videos)
    finally:
        await driver.client.aclose()
