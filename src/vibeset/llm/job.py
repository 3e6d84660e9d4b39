"""One annotation job's shared state: its identity and cache keys, its requests, how answers
become rows, and the sink that writes whole videos. The online engine and batch mode share it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from ..catalog import Video
from ..errors import DataError
from ..hashing import file_sha256
from ..taxonomy import Taxonomy
from .backend import Backend, Completion, Request
from .cache import cache_key
from .calls import failure
from .config import LLMConfig
from .confidence import label_probabilities
from .frames import sample_frames
from .prompt import Prompt, PromptTemplate
from .response import Judgement, ParseFailure, parse_response
from .store import RunStore

#: One sample's answer: the judgements and P(label = true) per attribute from logprobs ({} if none).
Sampled = tuple[Mapping[str, Judgement], Mapping[str, float]]


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
    mode: str = "online"
    batches: int = 0
    status: str = "running"
    started: float = field(default_factory=time.time)
    elapsed_s: float = 0.0

    @property
    def finished(self) -> int:
        return self.skipped + self.annotated + self.failed

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Job:
    """The state one run shares between its workers."""

    def __init__(self, taxonomy: Taxonomy, backend: Backend, config: LLMConfig, prompt: Prompt | None) -> None:
        self.taxonomy = taxonomy
        self.backend = backend
        self.config = config
        self.prompt = prompt or Prompt(taxonomy, PromptTemplate.load(config.prompt), domain=config.domain)
        self.names = taxonomy.names
        self.taxonomy_version = taxonomy.version  # a hash of the whole taxonomy: computed once
        self.inputs = {
            "frames": config.frames,
            "max_fps": config.max_fps,
            "frame_size": config.frame_size,
            "native_video": config.native_video,
        }
        identity = backend.identity()
        self.endpoint = identity.get("base_url")
        # the endpoint is lineage, not identity: a moved server answers from the same cache and job
        self.identity = {**{k: v for k, v in identity.items() if k != "base_url"}, "inputs": self.inputs}
        self.price = config.price(backend.model)

    def job(self) -> dict[str, Any]:
        return {
            **self.identity,
            "samples": self.config.samples,
            "prompt_version": self.prompt.version,
            "taxonomy_version": self.taxonomy_version,
            "shots": int(getattr(self.prompt.shots, "k", 0)),
        }

    def video_hash(self, video: Video) -> str:
        uses_media = video.media and (self.config.frames or self.config.native_video)
        if uses_media and Path(video.media).is_file():
            return video.content_hash + ":" + file_sha256(video.media)
        return video.content_hash

    def keys(self, video: Video, request: Request) -> list[str]:
        """Cache keys of a video's samples: model, prompt version and the request's content.

        The system text is the prompt version's; the user text (video data and its few-shot
        examples) and the media (by content hash) are the rest. Frames are a function of the
        media and ``inputs``, so they are not decoded to compute a key.
        """
        digest = hashlib.sha256(request.user.encode())
        digest.update(b"\0" + self.video_hash(video).encode() + b"\0" + str(request.media or "").encode())
        request_digest = digest.hexdigest()
        return [cache_key(self.identity, self.prompt.version, request_digest, s) for s in range(self.config.samples)]

    def video_keys(self, video: Video) -> list[str]:
        """``keys`` of the request ``render_request`` will send, without sampling its frames."""
        media = video.media if video.media and self.config.native_video else None
        return self.keys(video, self.prompt.render(video, media=media))

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

    def parse(self, completion: Completion) -> dict[str, Judgement] | ParseFailure:
        return parse_response(completion.text, self.names)

    def answer(self, completion: Completion) -> tuple[Sampled, Completion] | ParseFailure:
        """A fresh answer parsed, with its label probabilities, and the completion the cache keeps."""
        parsed = self.parse(completion)
        if isinstance(parsed, ParseFailure):
            return parsed
        probs = completion.label_probs or label_probabilities(completion.text, completion.logprobs, self.names)
        return (parsed, probs), dataclasses.replace(completion, logprobs=None, label_probs=probs or None)

    def replay(self, cached: Completion | None) -> Sampled | None:
        """A cached answer, if there is one that still parses."""
        if cached is None:
            return None
        parsed = self.parse(cached)
        return None if isinstance(parsed, ParseFailure) else (parsed, cached.label_probs or {})


async def render_request(job: Job, video: Video) -> Request:
    """Render the prompt with the configured media: frames (sampled off the event loop) or the file/URI."""
    if video.media and job.config.native_video:
        return job.prompt.render(video, media=video.media)
    if video.media and job.config.frames:
        images = await asyncio.to_thread(
            sample_frames, video.media, job.config.frames, max_fps=job.config.max_fps, size=job.config.frame_size
        )
        return job.prompt.render(video, images=images)
    return job.prompt.render(video)


async def request_or_failure(job: Job, video: Video) -> Request | dict[str, Any]:
    try:
        return await render_request(job, video)
    except DataError as err:
        return failure("media_error", str(err))


def _rows(video: Video, samples: Sequence[Sampled], job: Job, run_id: str) -> list[dict[str, Any]]:
    """One row per attribute. One sample: score = P(true) from logprobs, else the self-reported
    belief; several: the vote share. Both kinds are kept (``score_self``, ``score_logprob``)."""
    rows = []
    for name in job.names:
        judgements = [sample[0][name] for sample in samples]
        beliefs = [j.confidence if j.label else 1.0 - j.confidence for j in judgements]
        probs = [sample[1].get(name) for sample in samples]
        logprob = sum(probs) / len(probs) if None not in probs else None
        self_score = sum(beliefs) / len(beliefs)
        if len(judgements) == 1:
            label = judgements[0].label
            score = self_score if logprob is None else logprob
        else:
            score = sum(j.label for j in judgements) / len(judgements)
            label = score > 0.5 or (score == 0.5 and self_score > 0.5)
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
                "score_self": self_score,
                "score_logprob": logprob,
            }
        )
    return rows


class Sink:
    """Whole videos, annotated or failed, buffered and appended as parts every ``flush_every`` videos."""

    def __init__(self, job: Job, store: RunStore, summary: RunSummary, tick: Callable[[], None]) -> None:
        self.job, self.store, self.summary, self.tick = job, store, summary, tick
        self.rows: list[dict[str, Any]] = []
        self.failures: list[dict[str, Any]] = []
        self.buffered = 0

    def annotated(self, video: Video, samples: Sequence[Sampled]) -> None:
        self.rows.extend(_rows(video, samples, self.job, self.summary.run_id))
        self.summary.annotated += 1
        self._buffered()

    def failed(self, video: Video, record: Mapping[str, Any]) -> None:
        self.failures.append(
            {
                "video_id": video.video_id,
                **record,
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
        self.tick()

    def flush(self) -> None:
        """Append buffered whole videos as one part (and failures as another)."""
        rows, failures = self.rows, self.failures
        self.rows, self.failures, self.buffered = [], [], 0
        self.store.append(rows)
        self.store.append_failures(failures)
