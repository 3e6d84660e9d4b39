"""The web UI next to the API: catalog browser, golden review and retrieval playground.

Server-rendered Jinja2 pages (autoescape on: catalog text is untrusted and shown as text) with a
little JavaScript for keyboard shortcuts. Requests never name files: video ids, attributes and
annotator names are looked up in what the server enumerated itself; the only write is an
appended review (``vibeset.reviews``). Invalid input answers 400 with a message.
"""

from __future__ import annotations

import math
import re
from importlib import resources
from pathlib import Path
from typing import Any, Callable
from urllib.parse import parse_qs, urlencode

import numpy as np
import pandas as pd
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from ..annotation import read_annotations
from ..artifacts import artifacts_of
from ..errors import ConfigError, DataError, UnknownAttributeError, VibesetError
from ..golden import GoldenSet, workspace_golden
from ..report.document import templates
from ..retrieval.intent import Intent
from ..retrieval.recommender import Recommender
from ..reviews import Review, append_review, read_reviews, reviews_path
from ..workspace import Workspace

PAGE = 25
MAX_K = 50
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}
STATIC = {"style.css": "text/css; charset=utf-8", "app.js": "text/javascript; charset=utf-8"}


class BadRequest(VibesetError):
    """Form or query input the UI cannot accept (answered with 400 and the message)."""


def _signature(directory: Path) -> tuple:
    return tuple(sorted((p.name, p.stat().st_mtime_ns) for p in directory.glob("*.parquet")))


class WebData:
    """What the pages read, loaded lazily and cached until the files behind it change."""

    def __init__(self, workspace: Workspace | None, recommender: Callable[[], Recommender | None]) -> None:
        self.workspace = workspace
        self.recommender = recommender
        self._cache: dict[str, tuple[Any, Any]] = {}

    def _cached(self, key: str, signature: Any, load: Callable[[], Any]) -> Any:
        hit = self._cache.get(key)
        if hit is None or hit[0] != signature:
            hit = (signature, load())
            self._cache[key] = hit
        return hit[1]

    def require_workspace(self) -> Workspace:
        if self.workspace is None:
            raise BadRequest("this server was started on an index directory; the catalog and review pages need a workspace")
        return self.workspace

    # annotations ------------------------------------------------------------------------------
    def annotation_dirs(self) -> dict[str, Path]:
        """The workspace's annotations artifacts, by name (pages only read them; nothing is fitted here)."""
        if self.workspace is None:
            return {}
        catalog = artifacts_of(self.workspace)
        return {name: catalog.annotations(name).path for name in catalog.annotation_names()}

    def annotations(self, name: str) -> pd.DataFrame:
        artifact = artifacts_of(self.require_workspace()).annotations(name)
        return self._cached(f"dir:{name}", _signature(artifact.path), lambda: read_annotations(artifact))

    def annotators(self) -> list[str]:
        return list(self.annotation_dirs())

    # golden -----------------------------------------------------------------------------------
    def golden(self) -> GoldenSet:
        ws = self.require_workspace()
        config = ws.require_judgements()
        files = [ws.path(config.path), reviews_path(ws)]
        signature = tuple(f.stat().st_mtime_ns if f.exists() else 0 for f in files)
        return self._cached("golden", signature, lambda: workspace_golden(ws))

    def dev_labels(self, annotator: str) -> pd.DataFrame:
        """The annotator's labels on the golden dev videos."""
        ws = self.require_workspace()
        dev = self.golden().split("dev")
        ids = sorted(set(dev.pairs["video_id"]) & set(ws.catalog.ids))
        frame = self.annotations(annotator)
        return frame[frame["video_id"].isin(set(ids))]

    # interactions -----------------------------------------------------------------------------
    def history(self, user: str, limit: int = 10) -> list[dict[str, Any]]:
        """The user's most recent interactions (by timestamp when known), newest first."""
        ws = self.workspace
        if ws is not None and ws.config.interactions is not None:
            from ..interactions import workspace_interactions

            frame = self._cached("interactions", ws.path(ws.config.interactions.path).stat().st_mtime_ns,
                                 lambda: workspace_interactions(ws))
            mine = frame[frame["user_id"] == user]
            if "timestamp" in mine.columns:
                mine = mine.sort_values("timestamp", ascending=False)
            rows = []
            for record in mine.head(limit).to_dict("records"):
                video = record["video_id"]
                title = ws.catalog.get(video).title if video in ws.catalog else video
                rows.append({"video_id": video, "title": title, "rating": record.get("rating"), "when": _date(record.get("timestamp"))})
            return rows
        recommender = self.recommender()
        if recommender is None or (row := recommender.index.user_row(user)) is None:
            return []
        items, ratings = recommender.index.seen(row)
        order = np.argsort(-np.asarray(ratings))[:limit]
        return [{"video_id": recommender.index.item_ids[i], "title": recommender.index.titles[i],
                 "rating": float(ratings[j]), "when": ""} for j, i in zip(order, np.asarray(items)[order])]


def _date(value: Any) -> str:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return ""
    if not math.isfinite(seconds):
        return ""
    return pd.Timestamp(seconds, unit="s").strftime("%Y-%m-%d")


def _one(params: dict[str, list[str]], name: str, default: str = "", limit: int = 500) -> str:
    values = params.get(name) or [default]
    value = values[0].strip()
    if len(value) > limit:
        raise BadRequest(f"{name} is longer than {limit} characters")
    return value


def _int(params: dict[str, list[str]], name: str, default: int, low: int, high: int) -> int:
    raw = _one(params, name, str(default), 10)
    if not re.fullmatch(r"-?\d+", raw or ""):
        raise BadRequest(f"{name} must be a whole number between {low} and {high}, got {raw!r}")
    value = int(raw)
    if not low <= value <= high:
        raise BadRequest(f"{name} must be between {low} and {high}, got {value}")
    return value


def _choice(params: dict[str, list[str]], name: str, choices: list[str], default: str | None = None) -> str:
    value = _one(params, name, limit=200) or (default or "")
    if not value and default is None:
        return ""
    if value not in choices:
        raise BadRequest(f"{name} must be one of {', '.join(choices[:30])}{'...' if len(choices) > 30 else ''}, got {value!r}")
    return value


def _same_origin(request: Request) -> bool:
    """Reject cross-site form posts (a page elsewhere submitting judgements through the user's browser)."""
    if request.headers.get("sec-fetch-site") == "cross-site":
        return False
    origin = request.headers.get("origin")
    return origin is None or origin == f"{request.url.scheme}://{request.headers.get('host', '')}"


def mount_web(app: FastAPI, workspace: Workspace | None) -> None:
    """Add the UI under /ui/ (and redirect / there); without a workspace (a bare index) only the playground works.

    The retrieval playground answers from ``app.state.live.recommender`` when the API set it, so
    the UI and the API always use the same index version.
    """
    data = WebData(workspace, lambda: getattr(getattr(app.state, "live", None), "recommender", None))
    env = templates()

    def page(name: str, status: int = 200, **context: Any) -> HTMLResponse:
        ws = data.workspace
        html = env.get_template(name).render(
            taxonomy=ws.taxonomy if ws else None, has_workspace=ws is not None, **context
        )
        return HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)

    def guarded(handler: Callable[[dict[str, list[str]]], HTMLResponse], active: str) -> Callable:
        async def run(request: Request) -> Response:
            params = parse_qs(request.url.query, keep_blank_values=True)
            try:
                return handler(params)
            except (BadRequest, UnknownAttributeError, DataError, ConfigError) as err:
                return page("error.html", 400, active=active, message=str(err))

        return run

    @app.get("/", include_in_schema=False)
    async def root() -> Response:
        return RedirectResponse("/ui/", status_code=307)

    @app.get("/ui", include_in_schema=False)
    async def ui_root() -> Response:
        return RedirectResponse("/ui/", status_code=307)

    @app.get("/ui/static/{name}", include_in_schema=False)
    async def static(name: str) -> Response:
        if name not in STATIC:  # a fixed set of package files; the name never becomes a path
            return Response("not found", status_code=404, media_type="text/plain")
        body = resources.files("vibeset").joinpath("web/static", name).read_bytes()
        return Response(body, media_type=STATIC[name], headers={"Cache-Control": "max-age=300", **SECURITY_HEADERS})

    def home(params: dict[str, list[str]]) -> HTMLResponse:
        recommender = data.recommender()
        ws = data.workspace
        return page(
            "home.html",
            active="home",
            videos=len(ws.catalog) if ws else None,
            index=recommender.index if recommender else None,
            annotators=data.annotators() if ws else [],
            reviews=len(read_reviews(ws)) if ws and ws.config.judgements else 0,
        )

    def catalog(params: dict[str, list[str]]) -> HTMLResponse:
        ws = data.require_workspace()
        query = _one(params, "q", limit=200)
        start = _int(params, "page", 1, 1, 100_000)
        frame = ws.catalog.frame
        if query:
            needle = query.lower()
            hit = frame["title"].str.lower().str.contains(needle, regex=False) | frame["description"].str.lower().str.contains(
                needle, regex=False
            )
            frame = frame[hit.to_numpy()]
        total = len(frame)
        rows = frame.iloc[(start - 1) * PAGE : start * PAGE]
        recommender = data.recommender()
        results = []
        for record in rows.to_dict("records"):
            row = recommender.index.item_row(record["video_id"]) if recommender else None
            results.append({**record, "vibes": recommender.item_attributes[row] if row is not None else []})
        pages = max(1, math.ceil(total / PAGE))
        link = lambda n: "/ui/catalog?" + urlencode({"q": query, "page": n})  # noqa: E731
        return page(
            "catalog.html", active="catalog", query=query, results=results, total=total, page_number=start, pages=pages,
            prev_link=link(start - 1) if start > 1 else None, next_link=link(start + 1) if start < pages else None,
        )

    def video(video_id: str) -> HTMLResponse:
        ws = data.require_workspace()
        if video_id not in ws.catalog:
            raise BadRequest(f"video {video_id!r} is not in the catalog")
        item = ws.catalog.get(video_id)
        sources = []
        for name in data.annotation_dirs():
            frame = data.annotations(name)
            mine = frame[frame["video_id"] == video_id].sort_values("score", ascending=False, na_position="last")
            if not mine.empty:
                sources.append({"name": name, "rows": mine.to_dict("records")})
        recommender = data.recommender()
        if recommender is not None:
            indexed = recommender.index.video_annotations(video_id) if recommender.index.item_row(video_id) is not None else None
            if indexed is not None and not indexed.empty:
                sources.insert(0, {"name": f"live index {recommender.index.version}", "rows": indexed.to_dict("records")})
        human = []
        if ws.config.judgements is not None:
            golden = data.golden()
            pairs = golden.pairs[golden.pairs["video_id"] == video_id]
            for record in pairs.to_dict("records"):
                ratings = golden.judgements[(golden.judgements["video_id"] == video_id)
                                            & (golden.judgements["attribute"] == record["attribute"])]["rating"]
                human.append({**record, "ratings": ", ".join(f"{r:g}" for r in ratings)})
        return page("video.html", active="catalog", video=item, sources=sources, human=human)

    def review(params: dict[str, list[str]]) -> HTMLResponse:
        ws = data.require_workspace()
        ws.require_judgements()
        attributes = ws.taxonomy.names
        attribute = _choice(params, "attribute", attributes, attributes[0])
        annotators = data.annotators()
        if not annotators:
            raise BadRequest("no annotations yet: 'vibeset run' (or 'vibeset annotate') writes them")
        annotator = _choice(params, "annotator", annotators, annotators[0])
        kind = _choice(params, "kind", ["errors", "fp", "fn", "all"], "errors")
        golden = data.golden().split("dev")
        pairs = golden.pairs[golden.pairs["attribute"] == attribute]
        labels = data.dev_labels(annotator)
        labels = labels[labels["attribute"] == attribute][["video_id", "label", "score", "evidence"]]
        joined = pairs.merge(labels, on="video_id", how="inner")
        joined["outcome"] = np.select(
            [joined["label_y"] & ~joined["label_x"], ~joined["label_y"] & joined["label_x"], joined["label_y"]],
            ["fp", "fn", "tp"], "tn",
        )
        counts = joined["outcome"].value_counts().to_dict()
        shown = {"errors": joined["outcome"].isin(["fp", "fn"]), "fp": joined["outcome"] == "fp",
                 "fn": joined["outcome"] == "fn", "all": pd.Series(True, index=joined.index)}[kind]
        joined = joined[shown.to_numpy()].sort_values(["outcome", "score"], ascending=[True, False])
        judgements = golden.judgements[golden.judgements["attribute"] == attribute]
        by_video = judgements.groupby("video_id")
        rows = []
        for record in joined.to_dict("records"):
            video_id = record["video_id"]
            raters = by_video.get_group(video_id) if video_id in by_video.groups else judgements.iloc[:0]
            rows.append({
                "video": ws.catalog.get(video_id), "outcome": record["outcome"], "score": record["score"],
                "evidence": record["evidence"], "mean_rating": record["mean_rating"], "human": bool(record["label_x"]),
                "ratings": [{"rater": r, "rating": v} for r, v in zip(raters["rater"], raters["rating"])],
            })
        low, high = ws.require_judgements().scale
        saved = _one(params, "saved", limit=200)
        message = f"Saved judgement {saved}; it enters the golden set on its next build." if saved else ""
        return page(
            "review.html", active="review", attributes=attributes, attribute=attribute, annotators=data.annotators(),
            annotator=annotator, kind=kind, rows=rows, counts=counts, message=message,
            definition=ws.taxonomy[attribute].describe(), scale=list(range(int(low), int(high) + 1)),
            threshold=golden.threshold, recent=read_reviews(ws).tail(5).iloc[::-1].to_dict("records"),
        )

    def playground(params: dict[str, list[str]]) -> HTMLResponse:
        recommender = data.recommender()
        if recommender is None:
            raise BadRequest("no retrieval index is being served; build one with 'vibeset index build'")
        index = recommender.index
        user = _one(params, "user", limit=100)
        chosen = [a for a in params.get("attribute", []) if a]
        for name in chosen:
            index.attribute_position(name)  # UnknownAttributeError -> 400
        text = _one(params, "intent", limit=300)
        k = _int(params, "k", 10, 1, MAX_K)
        context: dict[str, Any] = {"user": user, "intent_text": text, "chosen": chosen, "k": k,
                                   "attributes": index.attributes, "users": index.user_ids[:200]}
        if user:
            if index.user_row(user) is None:
                raise BadRequest(f"unknown user {user!r}: not in this index's interactions ({len(index.user_ids)} users)")
            spec = ",".join(chosen) if chosen else text
            intent = recommender.intent(user, spec or None)
            context.update(
                history=data.history(user),
                intent=intent,
                restricted=recommender.recommend(user, intent, k=k)["items"],
                unrestricted=recommender.recommend(user, Intent([]), k=k)["items"],
            )
        return page("playground.html", active="playground", **context)

    for path, handler, active in (
        ("/ui/", home, "home"),
        ("/ui/catalog", catalog, "catalog"),
        ("/ui/review", review, "review"),
        ("/ui/playground", playground, "playground"),
    ):
        app.add_api_route(path, guarded(handler, active), methods=["GET"], include_in_schema=False)

    @app.get("/ui/videos/{video_id}", include_in_schema=False)
    async def video_page(video_id: str) -> Response:
        try:
            return video(video_id)
        except (BadRequest, DataError) as err:
            return page("error.html", 404, active="catalog", message=str(err))

    @app.post("/ui/review", include_in_schema=False)
    async def add_review(request: Request) -> Response:
        if not _same_origin(request):
            return page("error.html", 403, active="review", message="cross-site form posts are refused")
        body = await request.body()
        if len(body) > 4096:
            return page("error.html", 400, active="review", message="form too large")
        form = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
        back = {key: _one(form, key, limit=200) for key in ("attribute", "annotator", "kind")}
        try:
            ws = data.require_workspace()
            low, high = ws.require_judgements().scale
            verdict = _one(form, "verdict", limit=10)
            if verdict in ("yes", "no"):
                rating = float(high if verdict == "yes" else low)
            elif verdict == "rating":
                rating = float(_int(form, "rating", 0, int(low), int(high)))
            else:
                raise BadRequest("choose yes, no, or a rating")
            review_ = Review(_one(form, "rater", limit=64), _one(form, "video_id", limit=100), _one(form, "attribute", limit=100), rating)
            append_review(ws, review_)
        except (BadRequest, DataError, ConfigError, UnknownAttributeError) as err:
            return page("error.html", 400, active="review", message=str(err))
        query = urlencode({**back, "saved": f"{review_.rater}:{review_.video_id}"})
        return RedirectResponse(f"/ui/review?{query}#saved", status_code=303)


__all__ = ["mount_web", "WebData"]
