"""The HTTP API of restricted retrieval (FastAPI): recommend, video lineage, attributes, health.

Each request takes one reference to the live ``Recommender`` and answers from it alone, so an
answer always comes from one index version. A background task watches the index's ``CURRENT``
pointer and swaps in a newly built version when it changes. Handlers are async and compute in
the event loop (a restricted top-K is well under a millisecond); run one BLAS thread per worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import os
from pathlib import Path
from typing import Any, Callable

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field
from threadpoolctl import threadpool_limits

from ..encoder import Encoder, MiniLMEncoder, workspace_encoder
from ..errors import DataError, UnknownAttributeError, VibesetError
from ..artifacts import artifacts_of
from ..retrieval.index import POINTER, load_index
from ..retrieval.intent import explicit_intent
from ..retrieval.recommender import Recommender, UnknownUserError
from ..workspace import CONFIG_NAME, Workspace, load_workspace
from .web import mount_web

TOKEN_ENV = "VIBESET_API_TOKEN"
TARGET_ENV = "VIBESET_SERVE_TARGET"
MAX_K = 1000


class RecommendRequest(BaseModel):
    """Explicit intent: videos carrying every attribute in ``attributes`` and none in ``excluded``."""

    model_config = ConfigDict(extra="forbid")
    user: str = Field(min_length=1)
    attributes: list[str] = []
    excluded: list[str] = []
    k: int = Field(10, ge=1, le=MAX_K)
    blend: float = Field(0.0, ge=0.0, le=10.0, description="weight of the mean attribute score added to user x item")


def _json(value: Any, status: int = 200) -> Response:
    return Response(json.dumps(value, separators=(",", ":")).encode(), status_code=status, media_type="application/json")


def _error(status: int, message: str) -> Response:
    return _json({"error": message}, status)


class _Live:
    """The live recommender and where its index comes from."""

    def __init__(self, root: Path, encoder_factory: Callable[[], Encoder]) -> None:
        self.root = root
        self.encoder_factory = encoder_factory
        self.watch = (root / POINTER).exists()
        self.pointer = self._read_pointer()
        self.recommender = self._open()

    def _read_pointer(self) -> str | None:
        if not self.watch:
            return None
        with contextlib.suppress(OSError, UnicodeDecodeError):  # load_index names an unreadable pointer
            return (self.root / POINTER).read_text(encoding="utf-8").strip()
        return getattr(self, "pointer", None)

    def _open(self) -> Recommender:
        return Recommender(load_index(self.root), encoder_factory=self.encoder_factory)

    def maybe_reload(self) -> bool:
        pointer = self._read_pointer()
        if pointer == self.pointer:
            return False
        recommender = self._open()  # fully built before it becomes visible
        parser = self.recommender._parser
        if parser is not None:  # the encoder and attribute vectors carry over when the taxonomy did not change
            if recommender.index.descriptions == self.recommender.index.descriptions:
                recommender._parser = parser
        self.recommender, self.pointer = recommender, pointer
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

    OPEN = frozenset({"/healthz", "/docs", "/openapi.json", "/redoc"})
    DENIED = json.dumps({"error": "missing or invalid bearer token"}).encode()

    def __init__(self, app: Any, expected: bytes) -> None:
        self.app = app
        self.expected = expected

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] == "http" and scope["path"] not in self.OPEN:
            given = dict(scope["headers"]).get(b"authorization", b"")
            if not hmac.compare_digest(given, self.expected):
                headers = [(b"content-type", b"application/json"), (b"www-authenticate", b"Bearer"),
                           (b"content-length", str(len(self.DENIED)).encode())]
                await send({"type": "http.response.start", "status": 401, "headers": headers})
                await send({"type": "http.response.body", "body": self.DENIED})
                return
        await self.app(scope, receive, send)


def create_app(
    workspace_or_index_dir: Workspace | str | Path, *, token: str | None = None, poll_interval: float = 0.5
) -> FastAPI:
    """The API over a workspace's index (or an index directory); bearer auth when a token is set.

    ``token`` defaults to $VIBESET_API_TOKEN; empty means no auth. The index is re-read when
    its ``CURRENT`` pointer changes (checked every ``poll_interval`` seconds).
    """
    threadpool_limits(1)
    workspace, root, encoder_factory = resolve_target(workspace_or_index_dir)
    live = _Live(root, encoder_factory)
    token = token if token is not None else os.environ.get(TOKEN_ENV, "")
    expected = f"Bearer {token}".encode() if token else None

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI):
        async def watch() -> None:
            while True:
                await asyncio.sleep(poll_interval)
                with contextlib.suppress(VibesetError, OSError):  # a broken build keeps the old index serving
                    await asyncio.to_thread(live.maybe_reload)

        task = asyncio.create_task(watch()) if live.watch else None
        yield
        if task:
            task.cancel()

    app = FastAPI(
        title="vibeset retrieval",
        description="Personalized retrieval restricted to videos carrying nuanced attributes ('vibes').",
        lifespan=lifespan,
    )
    app.state.live = live

    if expected is not None:
        app.add_middleware(BearerAuth, expected=expected)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, err: RequestValidationError) -> Response:
        problems = err.errors()
        if any(p.get("type") == "json_invalid" for p in problems):
            return _error(400, f"malformed JSON body: {problems[0].get('ctx', {}).get('error', 'cannot parse')}")
        parts = []
        for p in problems:
            where = ".".join(str(x) for x in p.get("loc", ()) if x not in ("query", "body", "path"))
            parts.append(f"{where or 'request'}: {p.get('msg')}")
        return _error(422, "; ".join(parts))

    def answer(user: str, build_intent: Callable[[Recommender], Any], k: int, blend: float) -> Response:
        recommender = live.recommender  # one version for the whole answer
        try:
            intent = build_intent(recommender)
            return _json(recommender.recommend(user, intent, k=k, blend=blend))
        except UnknownUserError as err:
            return _error(404, str(err))
        except (UnknownAttributeError, DataError) as err:
            return _error(400, str(err))

    @app.get("/recommend", summary="Recommend for a user, intent from text or inferred")
    async def recommend_get(
        user: str = Query(..., min_length=1, description="user id from the interactions"),
        intent: str | None = Query(
            None,
            description="attribute names ('dark,-sad' excludes sad) or free text ('uplifting but not sappy'); "
            "omitted: inferred from the user's history",
        ),
        k: int = Query(10, ge=1, le=MAX_K),
        blend: float = Query(0.0, ge=0.0, le=10.0),
    ) -> Response:
        return answer(user, lambda r: r.intent(user, intent), k, blend)

    @app.post("/recommend", summary="Recommend for a user with explicit attributes and exclusions")
    async def recommend_post(body: RecommendRequest) -> Response:
        return answer(
            body.user,
            lambda r: explicit_intent(r.index.attributes, body.attributes, body.excluded),
            body.k,
            body.blend,
        )

    @app.get("/videos/{video_id}", summary="A video's attributes with the lineage of each label")
    async def video(video_id: str) -> Response:
        found = live.recommender.video(video_id)
        if found is None:
            return _error(404, f"unknown video {video_id!r}: not in index {live.recommender.index.version}")
        return _json(found)

    @app.get("/attributes", summary="The attributes with their definitions and prevalence")
    async def attributes() -> Response:
        recommender = live.recommender
        return _json({"index_version": recommender.index.version, "attributes": recommender.attributes()})

    @app.get("/healthz", summary="Liveness and the index version served")
    async def healthz() -> Response:
        index = live.recommender.index
        return _json({"status": "ok", "index_version": index.version, "items": len(index), "users": len(index.user_ids)})

    mount_web(app, workspace)
    return app


def app_from_env() -> FastAPI:
    """Factory for ``uvicorn --factory`` workers: serves $VIBESET_SERVE_TARGET."""
    target = os.environ.get(TARGET_ENV)
    if not target:
        raise DataError(f"${TARGET_ENV} is not set; start the server with 'vibeset serve'")
    return create_app(target)
