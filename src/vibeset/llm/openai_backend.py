"""OpenAI-compatible Chat Completions (OpenAI, vLLM, Ollama, llama.cpp, LM Studio, Gemini's endpoint)."""

from __future__ import annotations

import base64
import json
from typing import Any, Literal

import httpx
import openai

from ..errors import BackendError
from .backend import KEY_VARIABLES, CallError, Completion, Request, api_key, retry_after_seconds

ResponseFormat = Literal["json_schema", "json_object", "none"]
KEYS = (*KEY_VARIABLES, "OPENAI_API_KEY")


class OpenAIBackend:
    """Chat Completions through the official async client, structured output by default.

    ``response_format``: ``json_schema`` (OpenAI structured outputs, vLLM, Ollama, LM Studio),
    ``json_object`` (JSON mode; the schema rides along as ``schema``, which llama.cpp's server
    turns into a grammar) or ``none`` (plain text, parsed and repaired by the task).
    The SDK's own retries are off: the engine retries, counts and backs off.
    """

    name = "openai"

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        response_format: ResponseFormat = "json_schema",
        temperature: float = 0.0,
        max_output_tokens: int | None = None,
        timeout_s: float = 120.0,
    ) -> None:
        self.model = model
        self.base_url = base_url
        self.response_format = response_format
        self.temperature = temperature
        self.max_output_tokens = max_output_tokens
        self.timeout_s = timeout_s
        self._client: openai.AsyncOpenAI | None = None

    def identity(self) -> dict[str, Any]:
        return {
            "backend": self.name,
            "model": self.model,
            "base_url": self.base_url or "https://api.openai.com/v1",
            "response_format": self.response_format,
            "temperature": self.temperature,
            "max_output_tokens": self.max_output_tokens,
        }

    def _get_client(self) -> openai.AsyncOpenAI:
        if self._client is None:
            # Local servers (base_url set) usually need no key; the SDK still wants a non-empty one.
            key = api_key(KEYS, required=self.base_url is None) or "no-key"
            self._client = openai.AsyncOpenAI(api_key=key, base_url=self.base_url, timeout=self.timeout_s, max_retries=0)
        return self._client

    def _messages(self, request: Request) -> list[dict[str, Any]]:
        if request.media:
            raise CallError(
                "bad_request", "the OpenAI-compatible backend takes frames, not a video file; use frames", retryable=False
            )
        content: Any = request.user
        if request.images:
            content = [{"type": "text", "text": request.user}] + [
                {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64," + base64.b64encode(image).decode()}}
                for image in request.images
            ]
        return [{"role": "system", "content": request.system}, {"role": "user", "content": content}]

    def _format(self, request: Request) -> dict[str, Any] | None:
        if self.response_format == "json_schema":
            return {"type": "json_schema", "json_schema": {"name": "annotation", "strict": True, "schema": request.schema}}
        if self.response_format == "json_object":
            return {"type": "json_object", "schema": request.schema}
        return None

    def _body(self, request: Request) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.model, "messages": self._messages(request), "temperature": self.temperature}
        if self.max_output_tokens:
            body["max_tokens"] = self.max_output_tokens
        response_format = self._format(request)
        if response_format:
            body["response_format"] = response_format
        return body

    async def complete(self, request: Request) -> Completion:
        """POST /chat/completions through the official client's ``post``.

        The client still does auth, base URL, timeouts and maps HTTP errors to its exception
        types; the body (the protocol itself) is built here and the answer read as JSON, which
        skips the SDK's per-call TypedDict transform and model construction (~0.7 ms CPU per call,
        which caps throughput at high concurrency) and keeps the raw text of a malformed answer.
        """
        try:
            response = await self._get_client().post("/chat/completions", body=self._body(request), cast_to=httpx.Response)
        except openai.APIStatusError as err:
            raise _status_error(err) from err
        except openai.APITimeoutError as err:
            raise CallError("timeout", f"no answer within {self.timeout_s:g} s", retryable=True) from err
        except openai.APIConnectionError as err:
            raise CallError("connection", f"cannot reach {self.base_url or 'api.openai.com'}: {err}", retryable=True) from err
        raw = response.text
        try:
            data = json.loads(raw)
            message = data["choices"][0]["message"]
        except (ValueError, KeyError, IndexError, TypeError) as err:
            raise CallError(
                "bad_response", f"the server's answer is not a chat completion ({err!r})", retryable=True, raw=raw[:2000]
            ) from err
        usage = data.get("usage") or {}
        return Completion(
            text=message.get("content") or "",
            input_tokens=usage.get("prompt_tokens"),
            output_tokens=usage.get("completion_tokens"),
        )

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None


def _status_error(err: openai.APIStatusError) -> Exception:
    status, body = err.status_code, err.response.text[:2000]
    if status in (401, 403):
        return BackendError(f"the server refused the API key (HTTP {status}); check the key's environment variable")
    if status == 404:
        return BackendError(f"HTTP 404 from the server: unknown model or wrong base URL ({err.message})")
    if status == 429:
        return CallError(
            "rate_limited", "HTTP 429", retryable=True, retry_after=retry_after_seconds(err.response.headers.get("retry-after")), raw=body
        )
    if status >= 500 or status in (408, 409):
        retry_after = retry_after_seconds(err.response.headers.get("retry-after"))
        return CallError("server_error", f"HTTP {status}", retryable=True, retry_after=retry_after, raw=body)
    return CallError("bad_request", f"HTTP {status}: {err.message}", retryable=False, raw=body)
