"""OpenAI-compatible Chat Completions (OpenAI, vLLM, Ollama, llama.cpp, LM Studio, Gemini's endpoint)."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any, Literal, Mapping

import aiohttp
import msgspec
from aiohttp.helpers import get_env_proxy_for_url
from yarl import URL

from ..errors import BackendError
from .backend import KEY_VARIABLES, CallError, Completion, Request, TokenLogprob, api_key, retry_after_seconds
from .redaction import redact

ResponseFormat = Literal["json_schema", "json_object", "none"]
KEYS = (*KEY_VARIABLES, "OPENAI_API_KEY")
DEFAULT_BASE_URL = "https://api.openai.com/v1"


class OpenAIBackend:
    """Chat Completions over one pooled aiohttp session, structured output by default.

    ``response_format``: ``json_schema`` (OpenAI structured outputs, vLLM, Ollama, LM Studio),
    ``json_object`` (JSON mode; the schema rides along as ``schema``, which llama.cpp's server
    turns into a grammar) or ``none`` (plain text, parsed and repaired by the task).
    ``logprobs``: ask for token log-probabilities (the label's probability becomes the score);
    a server that rejects the parameter (HTTP 400 naming it) is asked again without it.

    The hot path is a plain HTTP client rather than the official SDK: at 64 calls in flight the
    SDK's request machinery cost ~2 ms CPU per call and capped throughput; aiohttp costs ~0.4 ms.
    The SDK still serves the rare control calls of the Batch API (``openai_batch``).
    Nothing retries here: the engine retries, counts and backs off.
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
        logprobs: bool = True,
        top_logprobs: int = 0,
    ) -> None:
        self.model = model
        self.base_url = base_url
        self.response_format = response_format
        self.temperature = temperature
        self.max_output_tokens = max_output_tokens
        self.timeout_s = timeout_s
        self.logprobs = logprobs
        self.top_logprobs = top_logprobs
        self._send_logprobs = logprobs
        self._session: aiohttp.ClientSession | None = None
        self._headers: dict[str, str] = {}
        self._template: tuple[Any, bytes, bytes] | None = None

    def identity(self) -> dict[str, Any]:
        return {
            "backend": self.name,
            "model": self.model,
            "base_url": self.base_url or DEFAULT_BASE_URL,
            "response_format": self.response_format,
            "temperature": self.temperature,
            "max_output_tokens": self.max_output_tokens,
            "logprobs": self.logprobs,
        }

    @property
    def url(self) -> str:
        return (self.base_url or DEFAULT_BASE_URL).rstrip("/")

    def key(self) -> str:
        # Local servers (base_url set) usually need no key; OpenAI-compatible clients still send one.
        return api_key(KEYS, required=self.base_url is None) or "no-key"

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._headers = {"Authorization": f"Bearer {self.key()}", "Content-Type": "application/json"}
            # like httpx's: a limit on connecting and on each wait for data, not on the whole call
            timeout = aiohttp.ClientTimeout(total=None, sock_connect=self.timeout_s, sock_read=self.timeout_s)
            proxy, proxy_auth = environment_proxy(self.url)
            self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), timeout=timeout,
                                                  proxy=proxy, proxy_auth=proxy_auth)
        return self._session

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

    def body(self, request: Request) -> dict[str, Any]:
        """The Chat Completions request body (also one line of a Batch API input file)."""
        body: dict[str, Any] = {"model": self.model, "messages": self._messages(request), "temperature": self.temperature}
        if self.max_output_tokens:
            body["max_tokens"] = self.max_output_tokens
        response_format = self._format(request)
        if response_format:
            body["response_format"] = response_format
        if self._send_logprobs:
            body["logprobs"] = True
            body["top_logprobs"] = self.top_logprobs
        return body

    def encoded(self, request: Request) -> bytes:
        """``body(request)`` as JSON. A text-only request differs from the last one only in its user
        text, so the encoded rest (the long system text, the schema) is reused: ~0.15 ms a call."""
        if request.images or request.media:
            return json.dumps(self.body(request)).encode()
        key = (request.system, id(request.schema), self._send_logprobs)
        if self._template is None or self._template[0] != key:
            marker = "\u0000vibeset-user\u0000"
            text = json.dumps(self.body(Request(request.system, marker, request.schema)))
            prefix, suffix = text.split(json.dumps(marker), 1)
            self._template = (key, prefix.encode(), suffix.encode())
        _, prefix, suffix = self._template
        return prefix + json.dumps(request.user).encode() + suffix

    async def complete(self, request: Request) -> Completion:
        """POST /chat/completions; HTTP errors map onto ``CallError`` / ``BackendError`` here."""
        session = self._get_session()
        try:
            async with session.post(f"{self.url}/chat/completions", data=self.encoded(request),
                                    headers=self._headers) as response:
                status, raw = response.status, await response.read()
                retry_after = response.headers.get("retry-after")
        except asyncio.TimeoutError as err:
            raise CallError("timeout", f"no answer within {self.timeout_s:g} s", retryable=True) from err
        except aiohttp.ClientPayloadError as err:
            raise CallError("bad_response", f"the answer was cut off: {err}", retryable=True) from err
        except aiohttp.ClientError as err:
            raise CallError("connection", f"cannot reach {self.url}: {err}", retryable=True) from err
        if status >= 400:
            text = raw.decode("utf-8", "replace")
            if status == 400 and self._send_logprobs and "logprob" in text.lower():
                self._send_logprobs = False  # this server or model serves no logprobs: self-reported confidence
                return await self.complete(request)
            raise status_error(status, text, retry_after)
        return completion_of(raw)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def environment_proxy(url: str) -> tuple[URL | None, aiohttp.BasicAuth | None]:
    """The proxy the environment names for ``url`` (HTTP_PROXY, HTTPS_PROXY, NO_PROXY, ~/.netrc), once.

    aiohttp's ``trust_env`` looks the proxy and ~/.netrc up in a thread on every request: ~0.4 ms
    CPU a call, 0.79 -> 0.91 of the Little's-law bound at 64 calls in flight when looked up once.
    """
    try:
        return get_env_proxy_for_url(URL(url))
    except LookupError:  # none, or NO_PROXY names the host
        return None, None


class _Message(msgspec.Struct):
    content: str | None = None


class _Logprobs(msgspec.Struct):
    content: list[TokenLogprob] | None = None


class _Choice(msgspec.Struct):
    message: _Message
    logprobs: _Logprobs | None = None


class _Usage(msgspec.Struct):
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


class _ChatCompletion(msgspec.Struct):
    """The fields of a chat completion vibeset reads; the rest (ids, token bytes) is skipped unread."""

    choices: list[_Choice]
    usage: _Usage | None = None


_DECODER = msgspec.json.Decoder(_ChatCompletion)


def completion_of(raw: bytes | str | Mapping[str, Any]) -> Completion:
    """A ``Completion`` from a chat completion body (bytes, text or decoded), else a retryable ``CallError``."""
    try:
        data = msgspec.convert(raw, _ChatCompletion) if isinstance(raw, Mapping) else _DECODER.decode(raw)
        choice = data.choices[0]
    except (msgspec.MsgspecError, IndexError, TypeError) as err:  # TypeError: no body at all
        text = raw if isinstance(raw, str) else raw.decode("utf-8", "replace") if isinstance(raw, bytes) else json.dumps(raw)
        raise CallError("bad_response", f"the server's answer is not a chat completion ({err})", retryable=True,
                        raw=text[:2000]) from err
    usage = data.usage or _Usage()
    logprobs = choice.logprobs.content if choice.logprobs else None
    return Completion(text=choice.message.content or "", input_tokens=usage.prompt_tokens,
                      output_tokens=usage.completion_tokens, logprobs=logprobs or None)


def _message(body: str) -> str:
    try:
        error = json.loads(body).get("error") or {}
        return str(error.get("message") or body)[:300] if isinstance(error, dict) else str(error)[:300]
    except (ValueError, AttributeError):
        return body[:300]


def status_error(status: int, body: str, retry_after: str | None = None) -> Exception:
    """The error an HTTP status means: a per-call ``CallError`` or a job-stopping ``BackendError``."""
    body = redact(body[:2000])
    if status in (401, 403):
        return BackendError(f"the server refused the API key (HTTP {status}); check the key's environment variable")
    if status == 404:
        return BackendError(f"HTTP 404 from the server: unknown model or wrong base URL ({_message(body)})")
    if status == 429:
        return CallError("rate_limited", "HTTP 429", retryable=True, retry_after=retry_after_seconds(retry_after), raw=body)
    if status >= 500 or status in (408, 409):
        return CallError("server_error", f"HTTP {status}", retryable=True, retry_after=retry_after_seconds(retry_after),
                         raw=body)
    return CallError("bad_request", f"HTTP {status}: {_message(body)}", retryable=False, raw=body)
