"""A scriptable local LLM server on 127.0.0.1 speaking the OpenAI Chat Completions protocol
(and Gemini's ``generateContent``), for tests and benchmarks. Real HTTP, no mocks.

It builds a plausible answer from each request (attribute names from the JSON schema sent,
or from the ``### name`` lines of the prompt; the title from the fenced video data), so it works
with any taxonomy. Behaviours are scripted per call, globally or per title:

    ok, sleep:S (answer after S seconds), 429[:S] (Retry-After S), 500, garbage (HTTP body not
    JSON), truncated (answer text cut in half), nonjson (prose), fenced (```json ... ```),
    unknown (an extra attribute), missing (one attribute dropped), badconf (confidence 7),
    flip (every label inverted)

Run standalone: ``python tests/llm_server.py --delay 0.1`` prints the port on stdout.
"""

from __future__ import annotations

import argparse
import hashlib
import json
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


def answer(names: list[str], title: str) -> dict:
    """A deterministic, plausible judgement of every attribute for one title."""
    result = {}
    for name in names:
        digest = hashlib.sha256(f"{title}\x00{name}".encode()).digest()
        result[name] = {
            "label": digest[0] < 96,
            "confidence": round(0.5 + digest[1] / 510, 3),
            "evidence": f"{name} read from the title {title[:40]!r}",
        }
    return result


class LLMServer:
    """Start with ``with LLMServer() as server:``; ``server.base_url`` ends in ``/v1``."""

    def __init__(self, delay: float = 0.0, port: int = 0) -> None:
        self.delay = delay
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

    def respond(self, names: list[str], title: str) -> tuple[int, dict[str, str], str | None]:
        """(status, headers, answer text or None) for one call, after its scripted behaviour."""
        behaviour = self._behaviour(title)
        kind, _, arg = behaviour.partition(":")
        time.sleep(self.delay + (float(arg) if kind == "sleep" else 0.0))
        if kind == "429":
            return 429, {"Retry-After": arg or "0"}, None
        if kind == "500":
            return 500, {}, None
        if kind == "garbage":
            return 200, {"X-Garbage": "1"}, None
        body = answer(names, title)
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
            with server._lock:
                server.requests.append(request)
                for header in ("Authorization", "x-goog-api-key"):
                    if self.headers.get(header):
                        server.auth_headers.add(self.headers[header])
            if self.path.endswith("/chat/completions"):
                self._chat(request)
            elif ":generateContent" in self.path:
                self._gemini(request)
            else:
                self._send(404, {}, json.dumps({"error": {"message": f"no route {self.path}"}}).encode())

        def _chat(self, request: dict) -> None:
            messages = request.get("messages", [])
            text = "\n".join(_text(m.get("content")) for m in messages)
            fmt = request.get("response_format") or {}
            schema = (fmt.get("json_schema") or {}).get("schema") or fmt.get("schema") or {}
            names = list(schema.get("properties", {})) or _NAME.findall(text)
            status, headers, answer_text = server.respond(names, _title(text))
            if answer_text is None:
                body = b'{"id": "x", "choices": [{"mess' if status == 200 else json.dumps(
                    {"error": {"message": f"scripted {status}", "type": "test"}}
                ).encode()
                self._send(status, headers, body)
                return
            completion = {
                "id": "chatcmpl-test",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": request.get("model", ""),
                "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": answer_text}, "finish_reason": "stop"}
                ],
                "usage": {
                    "prompt_tokens": len(text) // 4,
                    "completion_tokens": len(answer_text) // 4,
                    "total_tokens": (len(text) + len(answer_text)) // 4,
                },
            }
            self._send(200, {}, json.dumps(completion).encode())

        def _gemini(self, request: dict) -> None:
            parts = [p for c in request.get("contents", []) for p in c.get("parts", [])]
            system = " ".join(p.get("text", "") for p in (request.get("systemInstruction") or {}).get("parts", []))
            text = system + "\n" + "\n".join(p.get("text", "") for p in parts)
            schema = (request.get("generationConfig") or {}).get("responseJsonSchema") or {}
            names = list(schema.get("properties", {})) or _NAME.findall(text)
            status, headers, answer_text = server.respond(names, _title(text))
            if answer_text is None:
                error = {"error": {"code": status, "message": f"scripted {status}", "status": "UNAVAILABLE"}}
                self._send(status, headers, b"{" if status == 200 else json.dumps(error).encode())
                return
            response = {
                "candidates": [{"content": {"role": "model", "parts": [{"text": answer_text}]}, "finishReason": "STOP"}],
                "usageMetadata": {"promptTokenCount": len(text) // 4, "candidatesTokenCount": len(answer_text) // 4},
            }
            self._send(200, {}, json.dumps(response).encode())

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
