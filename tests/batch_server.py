"""A local protocol-level server for the providers' batch APIs, on 127.0.0.1. Real HTTP, no mocks.

OpenAI (``base_url`` ends in ``/v1``): ``POST /v1/files`` (multipart, purpose=batch),
``POST /v1/batches``, ``GET /v1/batches/{id}``, ``GET /v1/batches`` (list), ``GET /v1/files/{id}/content``.
Gemini (``gemini_url``, under ``/gemini``; API version ``v1`` or ``v1beta``): the Files API's
resumable upload (``upload/VERSION/files``), ``POST VERSION/models/{model}:batchGenerateContent``,
``GET VERSION/batches/{id}``, ``GET VERSION/batches`` (list), ``GET VERSION/files/{id}:download``.

A batch finishes after ``polls`` polls (``paused`` holds every batch in progress); then each of its
requests is answered by an ``LLMServer``'s logic (so per-title behaviours such as ``500`` or
``nonjson`` become partial failures and unusable answers). Faults, scripted per batch created
(``batch_faults``) and per upload (``upload_faults``):

    ok, expire (half the requests done, the rest "batch_expired" / absent), fail (the batch fails, no
    output), malformed:N (N output lines cut short), 400 / 503 (upload rejected / unavailable)

``create_delay``: seconds a batch creation waits after the batch exists and before answering
(a driver killed in that window must find it again by its label, not create a second one).
Run standalone: ``python tests/batch_server.py`` prints the port on stdout.
Counters: ``counts`` (uploads, batches, requests run, polls), the ``LLMServer``'s ``billed`` tokens,
and ``lost``: the tokens of answers whose lines were then cut short (billed, unreadable).
"""

from __future__ import annotations

import email
import json
import re
import threading
import time
from collections import Counter, deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

from llm_server import LLMServer, chat_reply, gemini_reply


_GEMINI = re.compile(r"^/gemini(/upload|/download)?/v1(?:beta)?(/.*)$")


class BatchServer:
    """``with BatchServer() as server:``; ``server.base_url`` (OpenAI) and ``server.gemini_url``."""

    def __init__(self, llm: LLMServer | None = None, polls: int = 2) -> None:
        self.llm = llm or LLMServer()  # its answering logic only; its own HTTP server is not started
        self.polls = polls
        self.paused = False
        self.create_delay = 0.0
        self.batch_faults: deque[str] = deque()
        self.upload_faults: deque[str] = deque()
        self.files: dict[str, bytes] = {}
        self.batches: dict[str, dict] = {}
        self.uploads: dict[str, dict] = {}
        self.counts: Counter[str] = Counter()
        self.lost: Counter[str] = Counter()
        self.auth_headers: set[str] = set()
        self._lock = threading.RLock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self.gemini_url = f"http://127.0.0.1:{self.port}/gemini"

    def __enter__(self) -> "BatchServer":
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def _id(self, prefix: str) -> str:
        self.counts[prefix] += 1
        return f"{prefix}-{self.counts[prefix]}"

    def upload(self, data: bytes, name: str) -> tuple[int, dict]:
        with self._lock:
            self.counts["uploads"] += 1
            fault = self.upload_faults.popleft() if self.upload_faults else "ok"
            if fault in ("400", "503"):
                message = "the file is not valid JSONL" if fault == "400" else "service unavailable"
                return int(fault), {"error": {"message": message, "type": "invalid_request_error", "code": fault}}
            file_id = self._id("file")
            self.files[file_id] = data
        return 200, {"id": file_id, "object": "file", "bytes": len(data), "created_at": int(time.time()),
                     "filename": name, "purpose": "batch", "status": "processed"}

    def create(self, kind: str, source: str, label: str, model: str = "") -> dict:
        with self._lock:
            batch_id = self._id("batch")
            lines = [json.loads(line) for line in self.files[source].decode().splitlines() if line.strip()]
            self.batches[batch_id] = {"kind": kind, "id": batch_id, "label": label, "model": model, "lines": lines,
                                      "polls": 0, "state": "in_progress", "fault": self.batch_faults.popleft()
                                      if self.batch_faults else "ok", "created": int(time.time()), "input": source}
            self.counts["batches"] += 1
            batch = self.batches[batch_id]
        time.sleep(self.create_delay)
        return batch

    def poll(self, batch_id: str) -> dict | None:
        with self._lock:
            batch = self.batches.get(batch_id)
            if batch is None:
                return None
            self.counts["polls"] += 1
            batch["polls"] += 1
            if batch["state"] == "in_progress" and not self.paused and batch["polls"] >= self.polls:
                self._finish(batch)
            return batch

    def _finish(self, batch: dict) -> None:
        fault, _, arg = batch["fault"].partition(":")
        if fault == "fail":
            batch["state"] = "failed"
            return
        lines = batch["lines"]
        done = lines[: len(lines) // 2] if fault == "expire" else lines
        outputs, errors = [], []
        for index, line in enumerate(done):
            self.counts["requests"] += 1
            good, text = _run(batch["kind"], self.llm, line, index)
            (outputs if good else errors).append(text)
        if batch["kind"] == "openai":  # OpenAI lists the requests that never ran; Gemini leaves them out
            errors += [_expired(line) for line in lines[len(done):]]
        for index in range(min(int(arg or 0), len(outputs))):
            self._lose(batch["kind"], json.loads(outputs[index]))
            outputs[index] = outputs[index][: len(outputs[index]) // 3]  # malformed: a line cut short
        if batch["kind"] == "gemini":  # one responses file holds answers and errors
            batch["output"] = self._store("\n".join(outputs + errors))
        else:
            batch["output"] = self._store("\n".join(outputs)) if outputs else None
            batch["errors"] = self._store("\n".join(errors)) if errors else None
        batch["counts"] = {"total": len(lines), "completed": len(outputs), "failed": len(errors)}
        batch["state"] = "expired" if fault == "expire" else "completed"

    def _lose(self, kind: str, line: dict) -> None:
        """Tally the tokens of an answer whose line is then cut short (billed, unreadable by the client)."""
        if kind == "gemini":
            usage = line["response"]["usageMetadata"]
            prompt, completion = usage["promptTokenCount"], usage["candidatesTokenCount"]
        else:
            usage = line["response"]["body"]["usage"]
            prompt, completion = usage["prompt_tokens"], usage["completion_tokens"]
        self.lost["prompt_tokens"] += prompt
        self.lost["completion_tokens"] += completion

    def _store(self, text: str) -> str:
        file_id = self._id("file")
        self.files[file_id] = (text + "\n").encode()
        return file_id


def _run(kind: str, llm: LLMServer, line: dict, index: int) -> tuple[bool, str]:
    """Answer one batch request; (True, output line) or (False, error line)."""
    if kind == "gemini":
        status, _, body = gemini_reply(llm, line["request"])
        payload = json.loads(body) if body[:1] == b"{" and status == 200 else None
        if payload is None:
            error = {"code": status, "message": body.decode(errors="replace")[:200], "status": "INTERNAL"}
            return False, json.dumps({"key": line["key"], "error": error})
        return True, json.dumps({"key": line["key"], "response": payload})
    status, _, body = chat_reply(llm, line["body"])
    try:
        decoded = json.loads(body)
    except ValueError:
        decoded = body.decode(errors="replace")
    response = {"status_code": status, "request_id": f"req-{index}", "body": decoded}
    return status == 200, json.dumps({"id": f"batch_req_{index}", "custom_id": line["custom_id"], "response": response,
                                      "error": None})


def _expired(line: dict) -> str:
    message = "This request could not be executed before the completion window expired."
    return json.dumps({"id": "batch_req_x", "custom_id": line["custom_id"], "response": None,
                       "error": {"code": "batch_expired", "message": message}})


def _openai(batch: dict) -> dict:
    state = {"in_progress": "in_progress", "completed": "completed", "expired": "expired", "failed": "failed"}[batch["state"]]
    errors = {"object": "list", "data": [{"code": "invalid_request", "message": "the batch failed validation",
                                          "line": None, "param": None}]} if batch["state"] == "failed" else None
    counts = batch.get("counts") or {"total": len(batch["lines"]), "completed": 0, "failed": 0}
    return {"id": batch["id"], "object": "batch", "endpoint": "/v1/chat/completions", "errors": errors,
            "input_file_id": batch["input"], "completion_window": "24h", "status": state,
            "output_file_id": batch.get("output"), "error_file_id": batch.get("errors"), "created_at": batch["created"],
            "request_counts": counts, "metadata": {"vibeset": batch["label"]}}


_GEMINI_STATES = {"in_progress": "BATCH_STATE_RUNNING", "completed": "BATCH_STATE_SUCCEEDED",
                  "expired": "BATCH_STATE_EXPIRED", "failed": "BATCH_STATE_FAILED"}


def _gemini(batch: dict) -> dict:
    name = f"batches/{batch['id']}"
    metadata = {"@type": "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatch", "name": name,
                "displayName": batch["label"], "model": f"models/{batch['model']}", "state": _GEMINI_STATES[batch["state"]],
                "createTime": "2026-01-01T00:00:00Z"}
    if batch.get("output"):
        metadata["output"] = {"responsesFile": f"files/{batch['output']}"}
    operation = {"name": name, "metadata": metadata, "done": batch["state"] != "in_progress"}
    if batch["state"] == "failed":
        operation["error"] = {"code": 3, "message": "the batch failed validation"}
    return operation


def _multipart(content_type: str, body: bytes) -> dict[str, tuple[str, bytes]]:
    message = email.message_from_bytes(f"Content-Type: {content_type}\r\n\r\n".encode() + body)
    return {part.get_param("name", header="content-disposition"): (part.get_filename() or "",
                                                                   part.get_payload(decode=True) or b"")
            for part in message.get_payload()}


def _handler(server: BatchServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def _send(self, status: int, body: bytes | dict, headers: dict[str, str] | None = None) -> None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json" if not isinstance(body, bytes) else "application/octet-stream")
                self.send_header("Content-Length", str(len(data)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass

        def _auth(self) -> None:
            for header in ("Authorization", "x-goog-api-key"):
                if self.headers.get(header):
                    server.auth_headers.add(self.headers[header])

        def _body(self) -> bytes:
            return self.rfile.read(int(self.headers.get("Content-Length", 0)))

        def do_POST(self) -> None:
            self._auth()
            url = urlparse(self.path)
            body = self._body()
            gemini = _GEMINI.match(url.path)
            if gemini:
                self._gemini_post(gemini.group(1) or "", gemini.group(2), url, body)
            elif url.path == "/v1/files":
                fields = _multipart(self.headers["Content-Type"], body)
                name, data = fields["file"]
                self._send(*server.upload(data, name))
            elif url.path == "/v1/batches":
                request = json.loads(body)
                label = (request.get("metadata") or {}).get("vibeset", "")
                self._send(200, _openai(server.create("openai", request["input_file_id"], label)))
            else:
                self._send(404, {"error": {"message": f"no route {self.path}"}})

        def _gemini_post(self, prefix: str, path: str, url: Any, body: bytes) -> None:
            if prefix == "/upload" and "upload_id" in url.query:
                self._finish_upload(parse_qs(url.query)["upload_id"][0], body)
            elif prefix == "/upload" and path == "/files":
                upload_id = server._id("upload")
                server.uploads[upload_id] = json.loads(body or b"{}").get("file", {})
                self._send(200, {}, {"X-Goog-Upload-URL": f"http://127.0.0.1:{server.port}{url.path}?upload_id={upload_id}",
                                     "X-Goog-Upload-Status": "active"})
            elif path.endswith(":batchGenerateContent"):
                request = json.loads(body)["batch"]
                model = path.split("/models/", 1)[1].split(":", 1)[0]
                source = request["inputConfig"]["fileName"].removeprefix("files/")
                self._send(200, _gemini(server.create("gemini", source, request.get("displayName", ""), model)))
            else:
                self._send(404, {"error": {"code": 404, "message": f"no route {self.path}"}})

        def _finish_upload(self, upload_id: str, data: bytes) -> None:
            meta = server.uploads.get(upload_id, {})
            status, file = server.upload(data, meta.get("displayName", ""))
            if status != 200:
                self._send(status, {"error": {"code": status, "message": file["error"]["message"],
                                              "status": "INVALID_ARGUMENT" if status == 400 else "UNAVAILABLE"}},
                           {"X-Goog-Upload-Status": "final"})
                return
            name = f"files/{file['id']}"
            self._send(200, {"file": {"name": name, "displayName": meta.get("displayName", ""),
                                      "mimeType": "application/jsonl", "sizeBytes": str(len(data)), "state": "ACTIVE",
                                      "uri": f"{server.gemini_url}/v1beta/{name}"}}, {"X-Goog-Upload-Status": "final"})

        def do_GET(self) -> None:
            self._auth()
            path = urlparse(self.path).path
            gemini = _GEMINI.match(path)
            if gemini:
                self._gemini_get(gemini.group(2))
            elif path == "/v1/batches":
                listed = [_openai(b) for b in reversed(list(server.batches.values())) if b["kind"] == "openai"]
                self._send(200, {"object": "list", "data": listed, "has_more": False,
                                 "first_id": listed[0]["id"] if listed else None,
                                 "last_id": listed[-1]["id"] if listed else None})
            elif path.startswith("/v1/batches/"):
                batch = server.poll(path.rsplit("/", 1)[1])
                self._send(200, _openai(batch)) if batch else self._send(404, {"error": {"message": "no such batch"}})
            elif path.startswith("/v1/files/") and path.endswith("/content"):
                data = server.files.get(path.split("/")[3])
                self._send(200, data) if data is not None else self._send(404, {"error": {"message": "no such file"}})
            else:
                self._send(404, {"error": {"message": f"no route {self.path}"}})

        def _gemini_get(self, path: str) -> None:
            missing = {"error": {"code": 404, "message": f"not found: {path}", "status": "NOT_FOUND"}}
            if path == "/batches":
                self._send(200, {"operations": [_gemini(b) for b in reversed(list(server.batches.values()))
                                                if b["kind"] == "gemini"]})
            elif path.startswith("/batches/"):
                batch = server.poll(path.rsplit("/", 1)[1])
                self._send(200, _gemini(batch)) if batch else self._send(404, missing)
            elif path.startswith("/files/") and path.endswith(":download"):
                data = server.files.get(path.split("/")[2].removesuffix(":download"))
                self._send(200, data) if data is not None else self._send(404, missing)
            else:
                self._send(404, missing)

    return Handler


if __name__ == "__main__":
    import argparse
    import sys

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--polls", type=int, default=2)
    args = parser.parse_args()
    with BatchServer(polls=args.polls) as batch:
        print(batch.port, flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            sys.exit(0)
