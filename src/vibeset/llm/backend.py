"""The model half of the task/model seam: a backend sends a request and returns text.

A backend knows nothing about vibes; it speaks primitives (system text, user text, images,
a JSON schema) and maps its SDK's errors once, here at the boundary, onto ``CallError``
(one call failed: the engine retries it or records it) or ``BackendError`` (the job cannot go on).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Mapping, Protocol, Sequence, runtime_checkable

import msgspec

from ..errors import BackendError

KEY_VARIABLES = ("VIBESET_LLM_API_KEY",)
#: Every environment variable a backend may read a key from: what ``secrets.redact`` hides.
ALL_KEY_VARIABLES = ("VIBESET_LLM_API_KEY", "OPENAI_API_KEY", "GEMINI_API_KEY", "GOOGLE_API_KEY")


@dataclass(frozen=True)
class Request:
    """One annotation call: instructions, fenced video data, optional frames (JPEG) or a video file/URI."""

    system: str
    user: str
    schema: dict[str, Any] = field(default_factory=dict)
    images: tuple[bytes, ...] = ()
    media: str | None = None


class TokenLogprob(msgspec.Struct, frozen=True, gc=False):
    """One output token, its log-probability and its top alternatives (the OpenAI shape).

    A struct the cyclic GC does not track: an answer carries ~1,000 of them, and decoding them
    as dicts cost ~2.5 ms a call, most of it in GC passes over the new objects.
    """

    token: str
    logprob: float
    top_logprobs: tuple["TokenLogprob", ...] = ()


@dataclass(frozen=True)
class Completion:
    """The model's raw text and the tokens it billed (None where the server did not say).

    ``logprobs``: where the server returned them, one ``TokenLogprob`` per output token; the task
    turns them into label probabilities (``vibeset.llm.confidence``), the backend never interprets them.
    ``label_probs``: those probabilities once computed (what the cache keeps instead of tokens).
    """

    text: str
    input_tokens: int | None = None
    output_tokens: int | None = None
    logprobs: Sequence[TokenLogprob] | None = field(default=None, repr=False, compare=False)
    label_probs: Mapping[str, float] | None = field(default=None, compare=False)


class CallError(Exception):
    """One call failed. ``retryable`` errors (429, 5xx, timeouts) are retried; ``raw`` is kept for the record."""

    def __init__(self, kind: str, message: str, *, retryable: bool, retry_after: float | None = None, raw: str = ""):
        super().__init__(message)
        self.kind = kind
        self.retryable = retryable
        self.retry_after = retry_after
        self.raw = raw


@runtime_checkable
class Backend(Protocol):
    """Anything that completes a ``Request``. ``identity`` names it in cache keys and lineage (never secrets).

    The endpoint (``base_url`` in the identity) is lineage only: cache keys and the job of an
    output directory leave it out, so a server moved to another port or host answers from cache.
    Provider batch modes (``batch.client_for``) wrap the OpenAI and Gemini backends.
    """

    name: str
    model: str

    def identity(self) -> dict[str, Any]: ...

    async def complete(self, request: Request) -> Completion: ...

    async def aclose(self) -> None: ...


def api_key(variables: Sequence[str], *, required: bool) -> str | None:
    """The first set environment variable of ``variables``; keys never come from files or flags."""
    for variable in variables:
        value = os.environ.get(variable)
        if value:
            return value
    if required:
        raise BackendError(f"no API key: set one of the environment variables {', '.join(variables)}")
    return None


def retry_after_seconds(value: str | None) -> float | None:
    """Parse a ``Retry-After`` header given in seconds (HTTP dates are rare from LLM APIs and ignored)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None
