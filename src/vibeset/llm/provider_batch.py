"""What a provider's batch API looks like to the batch driver: a protocol and its plain data.

``openai_batch.OpenAIBatch`` and ``gemini_batch.GeminiBatch`` implement it; ``batch`` drives it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from .backend import Completion, Request
from .calls import failure

TERMINAL = ("done", "expired", "failed", "cancelled")


@dataclass(frozen=True)
class BatchStatus:
    """A provider batch's state as ours (``running`` or one of ``TERMINAL``) and the provider's words."""

    state: str
    message: str = ""
    provider_state: str = ""


@dataclass(frozen=True)
class Result:
    """One request's outcome in a finished batch: a completion, or a failure record.

    ``ran``: the provider ran the request (an answer or an HTTP error: a call); False for a line
    saying it never ran (expired, cancelled), which is no call.
    """

    key: str
    completion: Completion | None = None
    error: dict[str, Any] | None = None
    ran: bool = True


def result_of_error(key: str, kind: str, message: str, raw: str = "", *, ran: bool = True) -> Result:
    return Result(key, None, failure(kind, message, raw[:2000]), ran)


class BatchClient(Protocol):
    """A provider's batch API, as ``OpenAIBackend.batch()`` and ``GeminiBackend.batch()`` give it."""

    name: str

    async def line(self, key: str, request: Request) -> dict[str, Any]: ...

    async def submit(self, lines: list[dict[str, Any]], label: str) -> str: ...

    async def find(self, label: str) -> str | None: ...

    async def status(self, batch_id: str) -> BatchStatus: ...

    async def results(self, batch_id: str) -> tuple[list[Result], int]: ...

    async def aclose(self) -> None: ...
