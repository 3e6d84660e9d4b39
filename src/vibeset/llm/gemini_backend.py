"""Gemini through its native API (``google-genai``), with video input as the paper uses it.

Frames go inline as JPEG parts; with ``native_video`` a local file is uploaded once through
the Files API (and reused for every sample), and an ``http(s)://`` or ``gs://`` URI is passed as is.
"""

from __future__ import annotations

import asyncio
import base64
import json
import mimetypes
from pathlib import Path
from typing import Any

import aiohttp
import httpx
from google import genai
from google.genai import errors, types

try:  # newer google-genai releases speak httpx2, older ones httpx
    import httpx2
except ImportError:  # pragma: no cover
    httpx2 = httpx

from ..errors import BackendError
from .backend import KEY_VARIABLES, CallError, Completion, Request, api_key, retry_after_seconds
from .redaction import redact

# google-genai's async client runs on aiohttp when it is installed (it is: the OpenAI backend's transport)
_TIMEOUTS = (httpx.TimeoutException, httpx2.TimeoutException, asyncio.TimeoutError)
_TRANSPORT = (httpx.TransportError, httpx2.TransportError, aiohttp.ClientError)
KEYS = (*KEY_VARIABLES, "GEMINI_API_KEY", "GOOGLE_API_KEY")
DEFAULT_BASE_URL = "https://generativelanguage.googleapis.com"


class GeminiBackend:
    """``generateContent`` with a JSON response schema; the SDK's retries are off (the engine retries)."""

    name = "gemini"

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        temperature: float = 0.0,
        max_output_tokens: int | None = None,
        timeout_s: float = 120.0,
    ) -> None:
        self.model = model
        self.base_url = base_url
        self.temperature = temperature
        self.max_output_tokens = max_output_tokens
        self.timeout_s = timeout_s
        self._client: genai.Client | None = None
        self._uploads: dict[str, types.Part] = {}

    def identity(self) -> dict[str, Any]:
        return {
            "backend": self.name,
            "model": self.model,
            "base_url": self.base_url or DEFAULT_BASE_URL,
            "temperature": self.temperature,
            "max_output_tokens": self.max_output_tokens,
        }

    def _get_client(self) -> genai.Client:
        if self._client is None:
            options = types.HttpOptions(
                base_url=self.base_url,
                timeout=int(self.timeout_s * 1000),
                retry_options=types.HttpRetryOptions(attempts=1),
            )
            self._client = genai.Client(api_key=api_key(KEYS, required=True), http_options=options)
        return self._client

    async def _media_part(self, media: str) -> types.Part:
        if media.startswith(("http://", "https://", "gs://")):
            return types.Part.from_uri(file_uri=media, mime_type=mimetypes.guess_type(media)[0] or "video/mp4")
        if media not in self._uploads:
            if not Path(media).is_file():
                raise CallError("media_error", f"{media}: video file not found", retryable=False)
            client = self._get_client()
            uploaded = await client.aio.files.upload(file=media)
            while uploaded.state and uploaded.state.name == "PROCESSING":
                await asyncio.sleep(2)
                uploaded = await client.aio.files.get(name=uploaded.name)
            if uploaded.state and uploaded.state.name == "FAILED":
                raise CallError("media_error", f"{media}: Gemini could not process the video", retryable=False)
            self._uploads[media] = types.Part.from_uri(file_uri=uploaded.uri, mime_type=uploaded.mime_type)
        return self._uploads[media]

    async def complete(self, request: Request) -> Completion:
        parts = [types.Part.from_text(text=request.user)]
        parts += [types.Part.from_bytes(data=image, mime_type="image/jpeg") for image in request.images]
        config = types.GenerateContentConfig(
            system_instruction=request.system,
            temperature=self.temperature,
            max_output_tokens=self.max_output_tokens,
            response_mime_type="application/json",
            response_json_schema=request.schema or None,
        )
        try:
            if request.media:
                parts.insert(0, await self._media_part(request.media))
            response = await self._get_client().aio.models.generate_content(
                model=self.model, contents=[types.Content(role="user", parts=parts)], config=config
            )
        except FAILURES as err:
            raise call_failure(err, self.timeout_s) from err
        except (json.JSONDecodeError, errors.UnknownApiResponseError, ValueError) as err:
            raise CallError("bad_response", f"the server's answer is not a Gemini response: {err}", retryable=True) from err
        usage = response.usage_metadata
        return Completion(
            text=response.text or "",
            input_tokens=getattr(usage, "prompt_token_count", None),
            output_tokens=getattr(usage, "candidates_token_count", None),
        )

    async def rest_request(self, request: Request) -> dict[str, Any]:
        """The ``GenerateContentRequest`` as REST JSON: one request of a Batch Mode input file."""
        parts: list[dict[str, Any]] = [{"text": request.user}]
        parts += [{"inlineData": {"mimeType": "image/jpeg", "data": base64.b64encode(image).decode()}}
                  for image in request.images]
        if request.media:
            try:
                media = await self._media_part(request.media)
            except errors.APIError as err:
                raise api_error(err) from err
            parts.insert(0, {"fileData": {"fileUri": media.file_data.file_uri, "mimeType": media.file_data.mime_type}})
        generation: dict[str, Any] = {"temperature": self.temperature, "responseMimeType": "application/json"}
        if self.max_output_tokens:
            generation["maxOutputTokens"] = self.max_output_tokens
        if request.schema:
            generation["responseJsonSchema"] = request.schema
        return {"contents": [{"role": "user", "parts": parts}], "systemInstruction": {"parts": [{"text": request.system}]},
                "generationConfig": generation}

    def client(self) -> genai.Client:
        return self._get_client()

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aio.aclose()
            self._client = None


#: what a call through google-genai raises when the API refuses it, times out or cannot connect
FAILURES = (errors.APIError, *_TIMEOUTS, *_TRANSPORT)


def call_failure(err: Exception, timeout_s: float) -> Exception:
    """The error one of ``FAILURES`` means, for online calls and batch operations alike."""
    if isinstance(err, errors.APIError):
        return api_error(err)
    if isinstance(err, _TIMEOUTS):
        return CallError("timeout", f"no answer within {timeout_s:g} s", retryable=True)
    return CallError("connection", f"cannot reach Gemini: {err}", retryable=True)


def api_error(err: errors.APIError) -> Exception:
    code = err.code or 0
    response = getattr(err, "response", None)
    headers = getattr(response, "headers", None) or {}
    raw = redact(json.dumps(err.details, default=str)[:2000] if getattr(err, "details", None) else str(err)[:2000])
    if code in (401, 403):
        return BackendError(f"Gemini refused the API key (HTTP {code}); check the key's environment variable")
    if code == 404:
        return BackendError(f"HTTP 404 from Gemini: unknown model or wrong base URL ({redact(str(err.message))})")
    if code == 429:
        return CallError("rate_limited", "HTTP 429", retryable=True, retry_after=retry_after_seconds(headers.get("retry-after")), raw=raw)
    if code >= 500 or code in (408, 409):
        return CallError("server_error", f"HTTP {code}", retryable=True, retry_after=retry_after_seconds(headers.get("retry-after")), raw=raw)
    return CallError("bad_request", f"HTTP {code}: {redact(str(err.message))}", retryable=False, raw=raw)
