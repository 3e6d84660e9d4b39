"""A scriptable local LLM server on 127.0.0.1 speaking the OpenAI Chat Completions protocol
(and Gemini's ``generateContent``), for tests and benchmarks. Real HTTP, no mocks.

It builds a plausible answer from each request (attribute names from the JSON schema sent,
or from the ``### name`` lines of the prompt; the title from the last fenced video data), so it
works with any taxonomy. Behaviours are scripted per call, globally or per title:

    ok, sleep:S (answer after S seconds), 429[:S] (Retry-After S), 500, garbage (HTTP body not
    JSON), truncated (answer text cut in half), nonjson (prose), fenced (```json ... ```),
    unknown (an extra attribute), missing (one attribute dropped), badconf (confidence 7),
    flip (every label inverted), echokey (HTTP 400 whose body echoes the API key, as OpenAI's
    "Incorrect API key provided" does), echomask (the same with the key masked).
    ``LLMServer(logprobs=False)`` refuses requests asking for logprobs (HTTP 400 naming them), as
    models without logprobs do.

With ``truth`` (title -> attribute -> bool) answers behave like a model that knows something:
a latent z = 1.2 * (+1 | -1) + noise decides the label (z > 0) and the label token's probability
(sigmoid(2z), returned as token logprobs when the request asks for ``logprobs``), while the
confidence it writes down is 0.8 or 0.9 whatever its certainty, as verbalised confidences tend to be.
Counters: ``calls`` (requests received), ``in_flight``, ``billed`` (prompt / completion tokens
of the answers sent) and ``snapshot()`` of them all at one instant.

Run standalone: ``python tests/llm_server.py --delay 0.1`` prints the port on stdout.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import math
import re
import sys
import threading
import time
from collections import Counter, deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_DATA = re.compile(r"<video_data>\s*(\{.*?\})\s*</video_data>", re.S)
_NAME = re.compile(r"^### ([a-z0-9][a-z0-9_-]*)\s*$", re.M)


def _title(text: str) -> str:
    found = _DATA.findall(text)
    if not found:
        return ""
    try:
        return json.loads(found[-1]).get("title", "")
    except json.JSONDecodeError:
        return ""


def _latent(title: str, name: str, truth: dict | None) -> tuple[bool, float, float]:
    """(label, written confidence, P(label = true)) of one attribute, deterministic per title."""
    digest = hashlib.sha256(f"{title}\x00{name}".encode()).digest()
    known = (truth or {}).get(title, {}).get(name)
    if known is None:
        label, confidence = digest[0] < 96, round(0.5 + digest[1] / 510, 3)
        return label, confidence, confidence if label else 1.0 - confidence
    noise = (digest[2] + digest[3] + digest[4] + digest[5]) / 255.0 - 2.0  # ~ N(0, 0.58)
    z = (1.2 if known else -1.2) + 2.2 * noise
    p_true = 1.0 / (1.0 + math.exp(-2.0 * z))
    confidence = 0.9 if digest[6] >= 96 else 0.8  # written confidences barely track the model's certainty
    return z > 0, confidence, p_true


def answer(names: list[str], title: str, truth: dict | None = None) -> tuple[dict, dict[str, float]]:
    """A deterministic, plausible judgement of every attribute for one title, and P(true) per attribute."""
    result, probabilities = {}, {}
    for name in names:
        label, confidence, p_true = _latent(title, name, truth)
        result[name] = {"label": label, "confidence": confidence, "evidence": f"{name} read from the title {title[:40]!r}"}
        probabilities[name] = p_true
    return result, probabilities


_TOKEN = re.compile(r"\s+|[A-Za-z]+|[0-9]+(?:\.[0-9]+)?|[^\sA-Za-z0-9]")


def _entry(token: str, logprob: float) -> str:
    return f'"token": {json.dumps(token)}, "logprob": {logprob!r}, "bytes": [{", ".join(map(str, token.encode()))}]'


def token_logprobs(text: str, probabilities: dict[str, float], names: list[str], top: int) -> str:
    """OpenAI-shaped logprobs (JSON text, built as text: it is large) that spell ``text``; each label
    token carries P(true) / P(false), every other token is near certain. Remembered (~5 ms of this
    server's CPU each), so a benchmark that asks twice measures the client, not this server."""
    return _token_logprobs(text, tuple(probabilities.items()), tuple(names), top)


@functools.lru_cache(maxsize=2048)
def _token_logprobs(text: str, items: tuple[tuple[str, float], ...], names: tuple[str, ...], top: int) -> str:
    probabilities = dict(items)
    entries, labels, recent = [], iter(names), ["", "", "", ""]
    for token in _TOKEN.findall(text):
        if token in ("true", "false") and recent == ['"', "label", '"', ":"]:
            p_true = probabilities.get(next(labels, ""), 0.5)
            p = {"true": p_true, "false": 1.0 - p_true}
            other = "false" if token == "true" else "true"
            chosen = _entry(token, math.log(max(p[token], 1e-9)))
            alternatives = [chosen, _entry(other, math.log(max(p[other], 1e-9)))][: max(top, 0)]
        else:
            chosen = _entry(token, -0.0001)
            alternatives = [chosen, _entry(" ", -9.5)][: max(top, 0)]
        entries.append("{" + chosen + ', "top_logprobs": [' + ", ".join("{" + a + "}" for a in alternatives) + "]}")
        if not token.isspace():
            recent = [*recent[1:], token]
    return "[" + ", ".join(entries) + "]"


class LLMServer:
    """Start with ``with LLMServer() as server:``; ``server.base_url`` ends in ``/v1``."""

    def __init__(self, delay: float = 0.0, port: int = 0, truth: dict | None = None, logprobs: bool = True) -> None:
        self.delay = delay
        self.truth = truth
        self.logprobs = logprobs
        self.in_flight = 0
        self.billed = Counter()
        self.caller = threading.local()  # the API key of the request being answered (for echokey)
        self.default = "ok"
        self.script: deque[str] = deque()
        self.by_title: dict[str, deque[str]] = {}
        self.calls = 0
        self.calls_by_title: Counter[str] = Counter()
        self.answered_by_title: Counter[str] = Counter()
        self.auth_headers: set[str] = set()
        self.requests: deque[dict] = deque(maxlen=50)
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", port), _handler(self), bind_and_activate=False)
        self._httpd.request_queue_size = 256
        self._httpd.daemon_threads = True
        self._httpd.server_bind()
        self._httpd.server_activate()
        self.port = self._httpd.server_address[1]
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self._thread: threading.Thread | None = None

    def start(self) -> "LLMServer":
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> "LLMServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def on_title(self, title: str, *behaviours: str) -> None:
        self.by_title[title] = deque(behaviours)

    def _behaviour(self, title: str) -> str:
        with self._lock:
            self.calls += 1
            self.calls_by_title[title] += 1
            queue = self.by_title.get(title)
            if queue:
                return queue.popleft()
            if self.script:
                return self.script.popleft()
            return self.default

    def snapshot(self) -> dict:
        """Calls received, calls in flight and tokens billed, read at one instant."""
        with self._lock:
            return {"calls": self.calls, "in_flight": self.in_flight, **self.billed}

    def respond(self, names: list[str], title: str) -> tuple[int, dict[str, str], str | None]:
        """(status, headers, answer text or None) for one call, after its scripted behaviour."""
        behaviour = self._behaviour(title)
        kind, _, arg = behaviour.partition(":")
        with self._lock:
            self.in_flight += 1
        try:
            time.sleep(self.delay + (float(arg) if kind == "sleep" else 0.0))
        finally:
            with self._lock:
                self.in_flight -= 1
        if kind == "429":
            return 429, {"Retry-After": arg or "0"}, None
        if kind == "500":
            return 500, {}, None
        if kind == "garbage":
            return 200, {"X-Garbage": "1"}, None
        if kind in ("echokey", "echomask"):
            secret = getattr(self.caller, "key", "").removeprefix("Bearer ")
            shown = secret if kind == "echokey" else secret[:8] + "*" * 8 + secret[-4:]
            message = f"Incorrect API key provided: {shown}. You can find your API key at https://example.test."
            return 400, {}, json.dumps({"error": {"message": message, "type": "invalid_request_error"}})
        body, _ = answer(names, title, self.truth)
        if kind == "unknown":
            body["not-a-vibe"] = {"label": True, "confidence": 0.9, "evidence": "made up"}
        elif kind == "missing" and body:
            body.pop(next(iter(body)))
        elif kind == "flip":
            for judgement in body.values():
                judgement["label"] = not judgement["label"]
        elif kind == "badconf" and body:
            body[next(iter(body))]["confidence"] = 7
        text = json.dumps(body)
        if kind == "truncated":
            text = text[: len(text) // 2]
        elif kind == "nonjson":
            text = "I think this film is lovely and everything applies!"
        elif kind == "fenced":
            text = "Here you go:\n```json\n" + json.dumps(body, indent=2) + "\n```"
        with self._lock:
            self.answered_by_title[title] += 1
        return 200, {}, text

    def bill(self, prompt_tokens: int, completion_tokens: int) -> None:
        with self._lock:
            self.billed["prompt_tokens"] += prompt_tokens
            self.billed["completion_tokens"] += completion_tokens


def chat_reply(server: LLMServer, request: dict) -> tuple[int, dict[str, str], bytes]:
    """One Chat Completions call: (status, headers, body), as the live endpoint and batches answer it."""
    messages = request.get("messages", [])
    text = "\n".join(_text(m.get("content")) for m in messages)
    fmt = request.get("response_format") or {}
    schema = (fmt.get("json_schema") or {}).get("schema") or fmt.get("schema") or {}
    names = list(schema.get("properties", {})) or _NAME.findall(text)
    if request.get("logprobs") and not server.logprobs:
        return 400, {}, json.dumps({"error": {"message": "logprobs is not supported with this model",
                                              "type": "invalid_request_error", "param": "logprobs"}}).encode()
    title = _title(text)
    status, headers, answer_text = server.respond(names, title)
    if answer_text is None or status != 200:
        body = answer_text.encode() if answer_text else b'{"id": "x", "choices": [{"mess' if status == 200 else json.dumps(
            {"error": {"message": f"scripted {status}", "type": "test"}}
        ).encode()
        return status, headers, body
    choice = {"index": 0, "message": {"role": "assistant", "content": answer_text}, "finish_reason": "stop"}
    if request.get("logprobs"):
        choice["logprobs"] = {"content": "@LOGPROBS@"}
    usage = {"prompt_tokens": len(text) // 4, "completion_tokens": len(answer_text) // 4}
    server.bill(usage["prompt_tokens"], usage["completion_tokens"])
    completion = {
        "id": "chatcmpl-test", "object": "chat.completion", "created": int(time.time()), "model": request.get("model", ""),
        "choices": [choice], "usage": {**usage, "total_tokens": usage["prompt_tokens"] + usage["completion_tokens"]},
    }
    body = json.dumps(completion)
    if request.get("logprobs"):
        probabilities = answer(names, title, server.truth)[1]
        body = body.replace('"@LOGPROBS@"', token_logprobs(answer_text, probabilities, names, request.get("top_logprobs") or 0))
    return 200, {}, body.encode()


def gemini_reply(server: LLMServer, request: dict) -> tuple[int, dict[str, str], bytes]:
    """One ``generateContent`` call: (status, headers, body)."""
    parts = [p for c in request.get("contents", []) for p in c.get("parts", [])]
    system = " ".join(p.get("text", "") for p in (request.get("systemInstruction") or {}).get("parts", []))
    text = system + "\n" + "\n".join(p.get("text", "") for p in parts)
    schema = (request.get("generationConfig") or {}).get("responseJsonSchema") or {}
    names = list(schema.get("properties", {})) or _NAME.findall(text)
    status, headers, answer_text = server.respond(names, _title(text))
    if answer_text is None or status != 200:
        error = {"error": {"code": status, "message": answer_text or f"scripted {status}", "status": "UNAVAILABLE"}}
        return status, headers, b"{" if status == 200 else json.dumps(error).encode()
    usage = {"promptTokenCount": len(text) // 4, "candidatesTokenCount": len(answer_text) // 4}
    server.bill(usage["promptTokenCount"], usage["candidatesTokenCount"])
    response = {
        "candidates": [{"content": {"role": "model", "parts": [{"text": answer_text}]}, "finishReason": "STOP"}],
        "usageMetadata": usage,
    }
    return 200, {}, json.dumps(response).encode()


def _handler(server: LLMServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # else headers and body as two writes meet delayed ACKs (+40 ms)

        def log_message(self, *args: object) -> None:
            pass

        def _send(self, status: int, headers: dict[str, str], body: bytes) -> None:
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for key, value in headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (a timeout test)

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            request = json.loads(self.rfile.read(length) or b"{}")
            key = ""
            with server._lock:
                server.requests.append(request)
                for header in ("Authorization", "x-goog-api-key"):
                    if self.headers.get(header):
                        server.auth_headers.add(self.headers[header])
                        key = self.headers[header]
            server.caller.key = key
            if self.path.endswith("/chat/completions"):
                self._send(*chat_reply(server, request))
            elif ":generateContent" in self.path:
                self._send(*gemini_reply(server, request))
            else:
                self._send(404, {}, json.dumps({"error": {"message": f"no route {self.path}"}}).encode())

    return Handler


def _text(content: object) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(part.get("text", "") for part in content if isinstance(part, dict))
    return ""


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    llm = LLMServer(delay=args.delay, port=args.port).start()
    print(llm.port, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        llm.stop()
        sys.exit(0)
