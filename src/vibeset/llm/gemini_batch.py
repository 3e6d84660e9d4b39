"""Gemini Batch Mode: a JSONL of ``GenerateContentRequest`` uploaded through the Files API, run by
``models/{model}:batchGenerateContent`` at half price, its responses file downloaded when done.

A batch is labelled by its display name, so a driver killed between creating a batch and
recording its name finds it again instead of paying for a second one.
"""

from __future__ import annotations

import io
import json
from typing import Any, Awaitable

from google.genai import types

from .backend import Completion, Request
from .provider_batch import BatchStatus, Result, result_of_error
from .gemini_backend import FAILURES, GeminiBackend, call_failure

_STATES = {
    "JOB_STATE_PENDING": "running", "JOB_STATE_QUEUED": "running", "JOB_STATE_RUNNING": "running",
    "JOB_STATE_CANCELLING": "running", "JOB_STATE_SUCCEEDED": "done", "JOB_STATE_PARTIALLY_SUCCEEDED": "done",
    "JOB_STATE_FAILED": "failed", "JOB_STATE_CANCELLED": "cancelled", "JOB_STATE_EXPIRED": "expired",
}
LIST_LIMIT = 1000


class GeminiBatch:
    """``batch.BatchClient`` for a ``GeminiBackend``."""

    name = "gemini-batch"

    def __init__(self, backend: GeminiBackend) -> None:
        self.backend = backend

    async def _do(self, operation: Awaitable[Any]) -> Any:
        try:
            return await operation
        except FAILURES as err:
            raise call_failure(err, self.backend.timeout_s) from err

    async def line(self, key: str, request: Request) -> dict[str, Any]:
        return {"key": key, "request": await self.backend.rest_request(request)}

    async def submit(self, lines: list[dict[str, Any]], label: str) -> str:
        data = "".join(json.dumps(line) + "\n" for line in lines).encode()
        client = self.backend.client().aio
        upload = await self._do(client.files.upload(
            file=io.BytesIO(data), config=types.UploadFileConfig(mime_type="application/jsonl", display_name=label)
        ))
        job = await self._do(client.batches.create(
            model=self.backend.model, src=upload.name, config=types.CreateBatchJobConfig(display_name=label)
        ))
        return job.name

    async def find(self, label: str) -> str | None:
        pager = await self._do(self.backend.client().aio.batches.list(config=types.ListBatchJobsConfig(page_size=100)))
        seen = 0
        async for job in pager:
            if job.display_name == label:
                return job.name
            seen += 1
            if seen >= LIST_LIMIT:
                break
        return None

    async def _job(self, batch_id: str) -> types.BatchJob:
        return await self._do(self.backend.client().aio.batches.get(name=batch_id))

    async def status(self, batch_id: str) -> BatchStatus:
        job = await self._job(batch_id)
        state = getattr(job.state, "value", str(job.state or ""))
        message = job.error.message if getattr(job, "error", None) and job.error.message else ""
        return BatchStatus(_STATES.get(state, "running"), message or "", state)

    async def results(self, batch_id: str) -> tuple[list[Result], int]:
        job = await self._job(batch_id)
        dest = job.dest
        if dest is None or not dest.file_name:
            return [], 0
        data = await self._do(self.backend.client().aio.files.download(file=dest.file_name))
        results: list[Result] = []
        malformed = 0
        for text in data.decode("utf-8", "replace").splitlines():
            if text.strip():
                result = _result(text)
                malformed += result is None
                if result is not None:
                    results.append(result)
        return results, malformed

    async def aclose(self) -> None:
        await self.backend.aclose()


def _result(text: str) -> Result | None:
    try:
        line = json.loads(text)
        key = line["key"]
    except (ValueError, KeyError, TypeError):
        return None
    if not isinstance(key, str):
        return None
    if line.get("error"):
        error = line["error"]
        code = error.get("code") if isinstance(error, dict) else None
        kind = "server_error" if isinstance(code, int) and code >= 500 else "batch_error"
        return result_of_error(key, kind, str(error.get("message") if isinstance(error, dict) else error), text)
    try:
        response = line["response"]
        parts = response["candidates"][0]["content"]["parts"]
        answer = "".join(part.get("text", "") for part in parts)
    except (KeyError, IndexError, TypeError) as err:
        return result_of_error(key, "bad_response", f"not a Gemini response ({err!r})", text)
    usage = response.get("usageMetadata") or {}
    return Result(key, Completion(answer, usage.get("promptTokenCount"), usage.get("candidatesTokenCount")))
