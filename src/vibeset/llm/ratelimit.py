"""Requests-per-minute and tokens-per-minute limits as token buckets, plus a shared pause for Retry-After."""

from __future__ import annotations

import asyncio
import time


class _Bucket:
    """Refills at ``per_minute / 60`` per second up to one second's worth (at least one request)."""

    def __init__(self, per_minute: float) -> None:
        self.rate = per_minute / 60.0
        self.capacity = max(1.0, self.rate)
        self.level = self.capacity
        self.stamp = time.monotonic()

    def wait(self, amount: float, now: float) -> float:
        self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
        self.stamp = now
        need = min(amount, self.capacity)  # a request bigger than the bucket goes when the bucket is full
        return 0.0 if self.level >= need else (need - self.level) / self.rate


class RateLimiter:
    """``await acquire(tokens)`` before each call; ``pause(s)`` holds every caller (a 429's Retry-After)."""

    def __init__(self, requests_per_minute: float | None = None, tokens_per_minute: float | None = None) -> None:
        self._requests = _Bucket(requests_per_minute) if requests_per_minute else None
        self._tokens = _Bucket(tokens_per_minute) if tokens_per_minute else None
        self._resume_at = 0.0

    async def acquire(self, tokens: float = 0.0) -> None:
        while True:
            now = time.monotonic()
            wait = self._resume_at - now
            if self._requests:
                wait = max(wait, self._requests.wait(1.0, now))
            if self._tokens:
                wait = max(wait, self._tokens.wait(tokens, now))
            if wait <= 0:
                if self._requests:
                    self._requests.level -= 1.0
                if self._tokens:
                    self._tokens.level -= tokens
                return
            await asyncio.sleep(wait)

    def settle(self, estimated: float, actual: float) -> None:
        """Charge the difference between a call's estimated and billed tokens."""
        if self._tokens:
            self._tokens.level -= actual - estimated

    def pause(self, seconds: float) -> None:
        self._resume_at = max(self._resume_at, time.monotonic() + seconds)
