"""The one retry / back-off / cost loop: every LLM call vibeset makes goes through ``Caller``.

Bulk annotation (online), the refinement meta-prompt and the control calls of batch mode
(uploads, batch creation, polls) share it, so a 429 with ``Retry-After``, a 5xx, a timeout and
an answer that does not parse are retried, backed off and paid for the same way everywhere.
Usage lands in a counters object (``Usage`` or a ``RunSummary``) and, as each call is sent and
as it completes, in an optional journal, so the books of a killed run can be rebuilt.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Generic, Protocol, TypeVar

from .backend import Backend, CallError, Completion, Request
from .config import LLMConfig
from .ratelimit import RateLimiter
from .redaction import redact
from .response import ParseFailure

T = TypeVar("T")
Journal = Callable[[dict[str, Any]], None]


@dataclass
class Usage:
    """Calls, retries, tokens and cost (None: the model's price is unknown)."""

    calls: int = 0
    retries: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float | None = 0.0


class Counters(Protocol):
    calls: int
    retries: int
    input_tokens: int
    output_tokens: int
    cost_usd: float | None


@dataclass(frozen=True)
class Answer(Generic[T]):
    parsed: T
    completion: Completion


def failure(kind: str, message: str, raw: str = "", attempts: int = 0) -> dict[str, Any]:
    """A failure record with every key-like text redacted (it is stored and shown)."""
    return {"kind": kind, "message": redact(message), "raw": redact(raw), "attempts": attempts}


class Caller:
    """Calls ``backend`` until the answer parses or the retries run out; counts every call."""

    def __init__(
        self, backend: Backend, config: LLMConfig, counters: Counters, *,
        journal: Journal | None = None, on_retry: Callable[[], None] | None = None,
        limiter: RateLimiter | None = None, price_factor: float = 1.0,
    ) -> None:
        self.backend, self.config, self.counters = backend, config, counters
        self.journal, self.on_retry = journal, on_retry
        self.limiter = limiter or RateLimiter(config.requests_per_minute, config.tokens_per_minute)
        self.price = config.price(backend.model)
        self.price_factor = price_factor
        self.random = random.Random()

    def backoff(self, attempt: int, retry_after: float | None) -> float:
        """Seconds before try ``attempt`` (1 = the first retry): Retry-After, else exponential with jitter."""
        if retry_after is not None:
            return retry_after
        ceiling = min(self.config.backoff_max_s, self.config.backoff_s * 2 ** (attempt - 1))
        return ceiling / 2 + self.random.uniform(0, ceiling / 2)

    def cost(self, input_tokens: float, output_tokens: float) -> float | None:
        if self.price is None:
            return None
        return (input_tokens * self.price.input + output_tokens * self.price.output) * self.price_factor / 1e6

    def charge(self, input_tokens: float, output_tokens: float, *, calls: int = 0) -> None:
        """Book ``calls`` answered calls and their tokens (batch results arrive this way)."""
        counters = self.counters
        counters.calls += calls
        counters.input_tokens += int(input_tokens)
        counters.output_tokens += int(output_tokens)
        cost = self.cost(input_tokens, output_tokens)
        counters.cost_usd = None if cost is None or counters.cost_usd is None else counters.cost_usd + cost
        if self.journal:
            self.journal({"calls": calls, "input_tokens": int(input_tokens), "output_tokens": int(output_tokens),
                          "cost_usd": cost})

    def _retry(self) -> None:
        self.counters.retries += 1
        if self.journal:
            self.journal({"retries": 1})
        if self.on_retry:
            self.on_retry()

    async def call(
        self, request: Request, parse: Callable[[Completion], T | ParseFailure], estimate: tuple[float, float],
    ) -> Answer[T] | dict[str, Any]:
        """The parsed answer, or the failure record of the last try (kind, message, raw, attempts)."""
        last: dict[str, Any] = {}
        retry_after: float | None = None
        estimated = estimate[0] + estimate[1]
        for attempt in range(self.config.max_retries + 1):
            if attempt:
                self._retry()
                await asyncio.sleep(self.backoff(attempt, retry_after))
            retry_after = None
            await self.limiter.acquire(estimated)
            self.counters.calls += 1
            if self.journal:
                self.journal({"calls": 1})
            try:
                completion = await self.backend.complete(request)
            except CallError as err:
                last = failure(err.kind, str(err), err.raw, attempt + 1)
                if not err.retryable:
                    return last
                if err.retry_after is not None:
                    retry_after = err.retry_after
                    self.limiter.pause(err.retry_after)
                continue
            used_in = estimate[0] if completion.input_tokens is None else completion.input_tokens
            used_out = estimate[1] if completion.output_tokens is None else completion.output_tokens
            self.limiter.settle(estimated, used_in + used_out)
            self.charge(used_in, used_out)
            parsed = parse(completion)
            if isinstance(parsed, ParseFailure):
                last = failure(parsed.kind, parsed.message, completion.text, attempt + 1)
                continue
            return Answer(parsed, completion)
        return last

    async def control(self, operation: Callable[[], Awaitable[T]], what: str) -> T | dict[str, Any]:
        """A control call (upload, create, poll) retried like any call; no tokens. Failure: its record."""
        last: dict[str, Any] = {}
        retry_after: float | None = None
        for attempt in range(self.config.max_retries + 1):
            if attempt:
                self._retry()
                await asyncio.sleep(self.backoff(attempt, retry_after))
            try:
                return await operation()
            except CallError as err:
                last = failure(err.kind, f"{what}: {err}", err.raw, attempt + 1)
                if not err.retryable:
                    return last
                retry_after = err.retry_after
        return last
