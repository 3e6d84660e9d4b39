"""The OpenAI Batch API: a JSONL of chat completion requests uploaded to ``/v1/files``, run by
``/v1/batches`` within 24 h at half price, its output and error files downloaded when it ends.

Control calls go through the official SDK (rare, so its overhead does not matter); its errors
map onto the same ``CallError`` / ``BackendError`` as a chat completion's.
"""

from __future__ import annotations

import json
from typing import Any

import openai

from .backend import CallError, Request
from .provider_batch import BatchStatus, Result, result_of_error
from .openai_backend import OpenAIBackend, completion_of, status_error

#: OpenAI batch states -> ours.
_STATES = {
    "validating": "running", "in_progress": "running", "finalizing": "running", "cancelling": "running",
    "completed": "done", "expired": "expired", "failed": "failed", "cancelled": "cancelled",
}
LIST_PAGES = 10


class OpenAIBatch:
    """``batch.BatchClient`` for an ``OpenAIBackend``; a batch is labelled by ``metadata.vibeset``."""

    name = "openai-batch"

    def __init__(self, backend: OpenAIBackend) -> None:
        self.backend = backend
        self._client: openai.AsyncOpenAI | None = None

    def _sdk(self) -> openai.AsyncOpenAI:
        if self._client is None:
            self._client = openai.AsyncOpenAI(api_key=self.backend.key(), base_url=self.backend.url,
                                              timeout=self.backend.timeout_s, max_retries=0)
        return self._client

    async def _do(self, operation: Any) -> Any:
        try:
            return await operation
        except openai.APIStatusError as err:
            raise status_error(err.status_code, err.response.text, err.response.headers.get("retry-after")) from err
        except openai.APITimeoutError as err:
            raise CallError("timeout", f"no answer within {self.backend.timeout_s:g} s", retryable=True) from err
        except openai.APIConnectionError as err:
            raise CallError("connection", f"cannot reach {self.backend.url}: {err}", retryable=True) from err

    async def line(self, key: str, request: Request) -> dict[str, Any]:
        return {"custom_id": key, "method": "POST", "url": "/v1/chat/completions", "body": self.backend.body(request)}

    async def submit(self, lines: list[dict[str, Any]], label: str) -> str:
        data = "".join(json.dumps(line) + "\n" for line in lines).encode()
        client = self._sdk()
        upload = await self._do(client.files.create(file=(f"{label}.jsonl", data, "application/jsonl"), purpose="batch"))
        batch = await self._do(client.batches.create(
            input_file_id=upload.id, endpoint="/v1/chat/completions", completion_window="24h", metadata={"vibeset": label}
        ))
        return batch.id

    async def find(self, label: str) -> str | None:
        page = await self._do(self._sdk().batches.list(limit=100))
        for _ in range(LIST_PAGES):
            for batch in page.data:
                if (batch.metadata or {}).get("vibeset") == label:
                    return batch.id
            if not page.has_next_page():
                return None
            page = await self._do(page.get_next_page())
        return None

    async def status(self, batch_id: str) -> BatchStatus:
        batch = await self._do(self._sdk().batches.retrieve(batch_id))
        errors = getattr(batch.errors, "data", None) or []
        message = "; ".join(f"{e.code}: {e.message}" for e in errors[:3])
        return BatchStatus(_STATES.get(batch.status, "running"), message, batch.status)

    async def results(self, batch_id: str) -> tuple[list[Result], int]:
        client = self._sdk()
        batch = await self._do(client.batches.retrieve(batch_id))
        results: list[Result] = []
        malformed = 0
        for file_id in (batch.output_file_id, batch.error_file_id):
            if not file_id:
                continue
            content = await self._do(client.files.content(file_id))
            for text in content.text.splitlines():
                if not text.strip():
                    continue
                result = _result(text)
                if result is None:
                    malformed += 1
                else:
                    results.append(result)
        return results, malformed

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None


def _result(text: str) -> Result | None:
    """One output or error line, or None when it cannot be attributed to a request."""
    try:
        line = json.loads(text)
        key = line["custom_id"]
    except (ValueError, KeyError, TypeError):
        return None
    if not isinstance(key, str):
        return None
    response, error = line.get("response") or {}, line.get("error")
    if error:  # the request never ran (e.g. batch_expired)
        return result_of_error(key, str(error.get("code") or "batch_error"), str(error.get("message") or error), text,
                               ran=False)
    code = response.get("status_code")
    if code != 200:
        body = response.get("body")
        mapped = status_error(int(code or 500), json.dumps(body) if not isinstance(body, str) else body)
        kind = getattr(mapped, "kind", "bad_request")
        return result_of_error(key, kind, str(mapped), text)
    try:
        return Result(key, completion_of(response.get("body")))
    except CallError as err:
        return result_of_error(key, err.kind, str(err), text)
