"""The HTTP API of restricted retrieval (FastAPI): recommend, video lineage, attributes, health.

Each request takes one reference to the live ``Recommender`` and answers from it alone, so an
answer always comes from one index version. A background task watches the index's ``CURRENT``
pointer and swaps in a newly built version when it changes; a version that fails to open, for
any reason, is logged and skipped while the last good one keeps serving.

Handlers are async and compute in the event loop (a restricted top-K is well under a
millisecond; run one BLAS thread per worker). Free text is the one slow path (an encoder call
per unseen clause): it is capped in length and clauses and parsed in a thread, so it never
holds the loop. Request bodies, ids, lists and ``k`` are bounded, each with a clear 4xx.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import os
from pathlib import Path
from typing import Annotated, Any, Callable
from urllib.parse import parse_qsl

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from fastapi_offline import FastAPIOffline
from pydantic import BaseModel, ConfigDict, Field
from threadpoolctl import threadpool_limits

from ..artifacts import artifacts_of
from ..encoder import Encoder, MiniLMEncoder, workspace_encoder
from ..errors import DataError, UnknownAttributeError
from ..retrieval.index import POINTER, load_index
from ..retrieval.intent import MAX_CHARS, IntentError
from ..retrieval.recommender import Recommender, UnknownUserError
from ..workspace import CONFIG_NAME, Workspace, load_workspace
from .web import mount_web

TOKEN_ENV = "VIBESET_API_TOKEN"
TARGET_ENV = "VIBESET_SERVE_TARGET"
MAX_K = 1000
MAX_BODY = 16 * 1024
MAX_ID = 200
MAX_NAMES = 64
DOCS_STATIC = "/static-offline-docs"
log = logging.getLogger("vibeset.serve")

Name = Annotated[str, Field(min_length=1, max_length=100)]


class RecommendRequest(BaseModel):
    """Explicit intent: videos carrying every vibe in ``attributes`` and none in ``excluded``."""

    model_config = ConfigDict(extra="forbid")
    user: str = Field(min_length=1, max_length=MAX_ID)
    attributes: list[Name] = Field([], max_length=MAX_NAMES)
    excluded: list[Name] = Field([], max_length=MAX_NAMES)
    k: int = Field(10, ge=1, le=MAX_K)
    blend: float | None = Field(None, ge=0.0, le=10.0, description="weight of the mean vibe score added to the "
                                "personal score; omitted: the index's default, chosen offline")
    ranker: str | None = Field(None, max_length=32, description="als or sasrec; omitted: the index's default")


def _compact(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def _reply(status: int, body: bytes) -> Response:
    return Response(body, status_code=status, media_type="application/json")


def _json(value: Any, status: int = 200) -> Response:
    return _reply(status, _compact(value))


def _error_body(message: str, **extra: Any) -> bytes:
    return _compact({"error": message, **extra})


def _error(status: int, message: str, **extra: Any) -> Response:
    return _reply(status, _error_body(message, **extra))


class _Live:
    """The live recommender and where its index comes from; a broken new version never replaces it."""

    def __init__(self, root: Path, encoder_factory: Callable[[], Encoder]) -> None:
        self.root = root
        self.encoder_factory = encoder_factory
        self.watch = (root / POINTER).exists()
        self.pointer = self._read_pointer()
        self.recommender = self._open()
        self.failed: tuple[str | None, str] | None = None  # the pointer that failed and why, logged once

    def _read_pointer(self) -> str | None:
        if not self.watch:
            return None
        with contextlib.suppress(OSError, UnicodeDecodeError):  # load_index names an unreadable pointer
            return (self.root / POINTER).read_text(encoding="utf-8").strip()
        return getattr(self, "pointer", None)

    def _open(self) -> Recommender:
        return Recommender(load_index(self.root), encoder_factory=self.encoder_factory)

    def maybe_reload(self) -> bool:
        """Swap in the version ``CURRENT`` names when it changed and opens; log (once) one that does not."""
        pointer = self._read_pointer()
        if pointer == self.pointer:
            return False
        try:
            recommender = self._open()  # fully built before it becomes visible
        except Exception as err:  # noqa: BLE001 - whatever a broken build raises, the last good index serves
            failure = (pointer, f"{type(err).__name__}: {err}")
            if failure != self.failed:
                log.error("index version %s cannot be served (%s); still serving %s",
                          pointer, failure[1][:300], self.recommender.index.version)
                self.failed = failure
            return False
        parser = self.recommender._parser
        if parser is not None and recommender.index.descriptions == self.recommender.index.descriptions:
            recommender._parser = parser  # the encoder and vibe vectors carry over when the taxonomy did not change
        self.recommender, self.pointer, self.failed = recommender, pointer, None
        log.warning("now serving index version %s", recommender.index.version)
        return True


def resolve_target(target: Workspace | str | Path) -> tuple[Workspace | None, Path, Callable[[], Encoder]]:
    """What a server serves: a workspace (its index artifact) or a bare index directory."""
    if isinstance(target, Workspace):
        workspace: Workspace | None = target
    else:
        path = Path(target)
        if path.suffix != ".toml" and not (path / CONFIG_NAME).exists():
            return None, path, lambda: MiniLMEncoder(threads=1)
        workspace = load_workspace(path)
    ws = workspace
    return ws, artifacts_of(ws).get("index").path, lambda: workspace_encoder(ws)


class BearerAuth:
    """Pure ASGI bearer-token check (no per-request task or body wrapping, unlike BaseHTTPMiddleware)."""

    OPEN = frozenset({"/healthz", "/docs", "/openapi.json", "/redoc", "/docs/oauth2-redirect"})
    DENIED = json.dumps({"error": "missing or invalid bearer token"}).encode()

    def __init__(self, app: Any, expected: bytes) -> None:
        self.app = app
        self.expected = expected

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        path = scope.get("path", "")
        if scope["type"] == "http" and path not in self.OPEN and not path.startswith(DOCS_STATIC + "/"):
            given = dict(scope["headers"]).get(b"authorization", b"")
            if not hmac.compare_digest(given, self.expected):
                await _send_json(send, 401, self.DENIED, [(b"www-authenticate", b"Bearer")])
                return
        await self.app(scope, receive, send)


async def _send_json(send: Callable, status: int, body: bytes, headers: list | None = None) -> None:
    head = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *(headers or [])]
    await send({"type": "http.response.start", "status": status, "headers": head})
    await send({"type": "http.response.body", "body": body})


class BodyLimit:
    """Pure ASGI: a request body over ``limit`` bytes is a 413, by its Content-Length or, for a
    chunked body, by reading it here (it is small) before the app sees it."""

    def __init__(self, app: Any, limit: int = MAX_BODY) -> None:
        self.app = app
        self.limit = limit
        self.refusal = json.dumps({"error": f"request body too large; at most {limit:,} bytes"}).encode()

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            await _send_json(send, 413, self.refusal)
        elif length is None and b"transfer-encoding" in headers:
            body = await self._read(receive)
            if body is None:
                await _send_json(send, 413, self.refusal)
            else:
                await self.app(scope, _replay(body, receive), send)
        else:  # a Content-Length within the limit (the server holds the body to it), or no body at all
            await self.app(scope, receive, send)

    async def _read(self, receive: Callable) -> bytes | None:
        """The whole chunked body, or None once it passes the limit."""
        body = bytearray()
        while True:
            message = await receive()
            body += message.get("body", b"")
            if len(body) > self.limit:
                return None
            if message["type"] != "http.request" or not message.get("more_body"):
                return bytes(body)


def _replay(body: bytes, receive: Callable) -> Callable:
    """A receive that yields ``body`` once, then the connection's own messages (a disconnect)."""
    pending = [{"type": "http.request", "body": body, "more_body": False}]

    async def replayed() -> dict:
        return pending.pop() if pending else await receive()

    return replayed


def create_app(
    workspace_or_index_dir: Workspace | str | Path, *, token: str | None = None, poll_interval: float = 0.5
) -> FastAPI:
    """The API over a workspace's index (or an index directory); bearer auth when a token is set.

    ``token`` defaults to $VIBESET_API_TOKEN; empty means no auth. The index is re-read when
    its ``CURRENT`` pointer changes (checked every ``poll_interval`` seconds).
    """
    threadpool_limits(1)
    if not log.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s vibeset.serve %(levelname)s %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
    workspace, root, encoder_factory = resolve_target(workspace_or_index_dir)
    live = _Live(root, encoder_factory)
    token = token if token is not None else os.environ.get(TOKEN_ENV, "")
    expected = f"Bearer {token}".encode() if token else None

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI):
        task = asyncio.create_task(_watch(live, poll_interval)) if live.watch else None
        yield
        if task:
            task.cancel()

    app = FastAPIOffline(
        title="vibeset retrieval",
        description="Personalized retrieval restricted to videos carrying nuanced attributes ('vibes').",
        lifespan=lifespan,
        static_url=DOCS_STATIC,
    )
    app.state.live = live
    app.add_middleware(RecommendPath, live=live)
    app.add_middleware(BodyLimit)
    if expected is not None:
        app.add_middleware(BearerAuth, expected=expected)
    app.add_exception_handler(RequestValidationError, _invalid)
    _routes(app, live)
    _document_get(app)
    mount_web(app, workspace)
    return app


async def _watch(live: _Live, poll_interval: float) -> None:
    while True:
        await asyncio.sleep(poll_interval)
        try:
            await asyncio.to_thread(live.maybe_reload)
        except Exception:  # noqa: BLE001 - the watcher outlives any error; maybe_reload logs its own
            log.exception("index watcher error; still serving %s", live.recommender.index.version)


async def _invalid(_: Request, err: RequestValidationError) -> Response:
    problems = err.errors()
    if any(p.get("type") == "json_invalid" for p in problems):
        return _error(400, f"malformed JSON body: {problems[0].get('ctx', {}).get('error', 'cannot parse')}")
    parts = []
    for p in problems:
        where = ".".join(str(x) for x in p.get("loc", ()) if x not in ("query", "body", "path"))
        parts.append(f"{where or 'request'}: {p.get('msg')}")
    return _error(422, "; ".join(parts))


def _answer(recommender: Recommender, user: str, build: Callable[[Recommender], Any], **options: Any) -> tuple[int, bytes]:
    """One answer (status, JSON body) from one index version; user errors become 4xx with the reason."""
    try:
        return 200, recommender.recommend_json(user, build(recommender), **options)
    except UnknownUserError as err:
        return 404, _error_body(str(err))
    except IntentError as err:
        return 422, _error_body(str(err), closest=err.closest)
    except (UnknownAttributeError, DataError) as err:
        return 400, _error_body(str(err))


#: GET /recommend's query parameters, documented for OpenAPI and checked by ``_recommend_query``.
RECOMMEND_QUERY = (
    ("user", {"type": "string", "minLength": 1, "maxLength": MAX_ID}, True, "user id from the interactions"),
    ("intent", {"type": "string", "maxLength": MAX_CHARS}, False,
     "vibe names ('dark,-sad' excludes sad) or free text ('uplifting but not sappy'); omitted: inferred from the "
     "user's history. Text matching no vibe is a 422 naming the closest vibes."),
    ("k", {"type": "integer", "minimum": 1, "maximum": MAX_K, "default": 10}, False, "how many videos"),
    ("blend", {"type": "number", "minimum": 0.0, "maximum": 10.0}, False,
     "weight of the mean vibe score added to the personal score; omitted: the index's default, chosen offline"),
    ("ranker", {"type": "string", "maxLength": 32}, False, "als or sasrec; omitted: the index's default"),
    ("fallback", {"type": "boolean", "default": False}, False,
     "text matching no vibe answers unrestricted (flagged) instead of a 422"),
)


class _BadQuery(ValueError):
    pass


def _number(name: str, text: str, kind: type, low: float, high: float) -> Any:
    try:
        value = kind(text)
    except ValueError:
        raise _BadQuery(f"{name}: Input should be a valid {'integer' if kind is int else 'number'}") from None
    if not low <= value <= high:
        raise _BadQuery(f"{name}: Input should be between {low:g} and {high:g}")
    return value


def _recommend_query(params: dict[str, str]) -> dict[str, Any]:
    """The checked parameters of GET /recommend (``_BadQuery`` names the first bad one)."""
    user, intent = params.get("user"), params.get("intent")
    if not user:
        raise _BadQuery("user: Field required")
    for name, value in (("user", user), ("intent", intent)):
        if value is not None and len(value) > (MAX_ID if name == "user" else MAX_CHARS):
            raise _BadQuery(f"{name}: String should have at most {MAX_ID if name == 'user' else MAX_CHARS} characters")
    ranker = params.get("ranker")
    if ranker is not None and len(ranker) > 32:
        raise _BadQuery("ranker: String should have at most 32 characters")
    fallback = params.get("fallback", "false").lower()
    if fallback not in ("true", "false", "1", "0", "yes", "no"):
        raise _BadQuery("fallback: Input should be a valid boolean")
    blend = params.get("blend")
    return {"user": user, "intent": intent, "k": _number("k", params.get("k", "10"), int, 1, MAX_K),
            "blend": None if blend is None else _number("blend", blend, float, 0.0, 10.0), "ranker": ranker,
            "fallback": fallback in ("true", "1", "yes")}


async def recommend_get(live: _Live, params: dict[str, str]) -> tuple[int, bytes]:
    """GET /recommend: the checked query, the intent (free text parsed in a thread), one version's answer."""
    try:
        q = _recommend_query(params)
    except _BadQuery as err:
        return 422, _error_body(str(err))
    recommender = live.recommender  # one version for the whole answer
    user, intent, fallback = q["user"], q["intent"], q["fallback"]
    build = lambda r: r.intent(user, intent, fallback=fallback)  # noqa: E731
    options = {"k": q["k"], "blend": q["blend"], "ranker": q["ranker"]}
    if intent and recommender.is_free_text(intent):  # the encoder path runs off the event loop
        return await asyncio.to_thread(_answer, recommender, user, build, **options)
    return _answer(recommender, user, build, **options)


class RecommendPath:
    """Pure ASGI: GET /recommend is answered before routing. FastAPI's per-request routing and
    dependency machinery cost more than the restricted top-K; auth and the body limit still wrap it.
    The query is read as the last value of each name, as starlette's ``QueryParams.get`` does."""

    def __init__(self, app: Any, live: _Live) -> None:
        self.app = app
        self.live = live

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] == "http" and scope["path"] == "/recommend" and scope["method"] == "GET":
            params = dict(parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True))
            await _send_json(send, *await recommend_get(self.live, params))
            return
        await self.app(scope, receive, send)


def _document_get(app: FastAPI) -> None:
    """OpenAPI for GET /recommend, which ``RecommendPath`` serves outside the router."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            schema["paths"].setdefault("/recommend", {})["get"] = {
                "summary": "Recommend for a user, intent from text or inferred", "operationId": "recommend_get",
                "parameters": [{"name": n, "in": "query", "required": r, "schema": sch, "description": d}
                               for n, sch, r, d in RECOMMEND_QUERY],
                "responses": {"200": {"description": "the user, the intent as understood, the ranker and the items"},
                              "404": {"description": "unknown user"}, "422": {"description": "a bad parameter or intent"}},
            }
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _routes(app: FastAPI, live: _Live) -> None:
    @app.post("/recommend", summary="Recommend for a user with explicit vibes and exclusions")
    async def recommend_post(body: RecommendRequest) -> Response:
        return _reply(*_answer(live.recommender, body.user, lambda r: r.explicit(body.attributes, body.excluded),
                               k=body.k, blend=body.blend, ranker=body.ranker))

    @app.get("/videos/{video_id}", summary="A video's attributes with the lineage of each label")
    async def video(video_id: str) -> Response:
        recommender = live.recommender
        if len(video_id) > MAX_ID:
            return _error(422, f"video id is {len(video_id)} characters; at most {MAX_ID}")
        found = recommender.video(video_id)
        if found is None:
            return _error(404, f"unknown video {video_id!r}: not in index {recommender.index.version}")
        return _json(found)

    @app.get("/attributes", summary="The attributes with their definitions and prevalence")
    async def attributes() -> Response:
        recommender = live.recommender
        return _json({"index_version": recommender.index.version, "attributes": recommender.attributes()})

    @app.get("/healthz", summary="Liveness and the index version served")
    async def healthz() -> Response:
        recommender = live.recommender
        index = recommender.index
        return _json({"status": "ok", "index_version": index.version, "items": len(index), "users": len(index.user_ids),
                      "rankers": index.ranker_names, "defaults": recommender.defaults})


def app_from_env() -> FastAPI:
    """Factory for ``uvicorn --factory`` workers: serves $VIBESET_SERVE_TARGET."""
    target = os.environ.get(TARGET_ENV)
    if not target:
        raise DataError(f"${TARGET_ENV} is not set; start the server with 'vibeset serve'")
    return create_app(target)
