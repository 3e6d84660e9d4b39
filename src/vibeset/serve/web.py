"""The web UI next to the API: catalog browser, video pages, the review queue and the retrieval playground.

Server-rendered Jinja2 pages (autoescape on: catalog text is untrusted and shown as text) with a
little JavaScript for keyboard shortcuts; every page works without it. Requests never name files:
video ids, attributes and annotator names are looked up in what the server enumerated itself, and
nothing is fitted in a request (the queue is ranked from the annotations artifacts and the golden
set, ``vibeset.review_queue``). The only writes are appended reviews and undos (``vibeset.reviews``).
Invalid input answers 400 with a message.
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

from .. import review_queue
from ..annotation import read_annotations
from ..artifacts import artifacts_of
from ..errors import ConfigError, DataError, UnknownAttributeError, VibesetError
from ..golden import GoldenSet, workspace_golden
from ..report.document import templates
from ..retrieval.intent import Intent
from ..retrieval.recommender import Recommender
from ..reviews import NAMESPACE, RATER, Review, active_reviews, append_review, reviews_path, undo_last
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
QUEUE_FIELDS = ("rater", "kind", "attribute", "annotator", "at")
DISAGREEMENT = {"": "any", "annotators": "annotators disagree", "humans": "an annotator contradicts the raters"}


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
    def annotators(self) -> list[str]:
        """The workspace's annotations artifacts (pages only read them; nothing is fitted here)."""
        return artifacts_of(self.workspace).annotation_names() if self.workspace is not None else []

    def annotations(self, name: str) -> pd.DataFrame:
        artifact = artifacts_of(self.require_workspace()).annotations(name)
        return self._cached(f"dir:{name}", _signature(artifact.path), lambda: read_annotations(artifact))

    def default_annotator(self) -> str:
        names = self.annotators()
        return "student" if "student" in names else (names[0] if names else "")

    # golden and the queue ---------------------------------------------------------------------
    def _golden_signature(self) -> tuple:
        ws = self.require_workspace()
        files = [ws.path(ws.require_judgements().path), reviews_path(ws)]
        return tuple(f.stat().st_mtime_ns if f.exists() else 0 for f in files)

    def golden(self) -> GoldenSet:
        ws = self.require_workspace()
        return self._cached("golden", self._golden_signature(), lambda: workspace_golden(ws))

    def _ranked_signature(self) -> tuple:
        names = self.annotators()
        return (self._golden_signature(), tuple((n, _signature(artifacts_of(self.workspace).annotations(n).path)) for n in names))

    def ranked(self) -> pd.DataFrame:
        """Every (video, vibe) pair with its review value (``review_queue.rank_pairs``), cached."""
        names = self.annotators()
        return self._cached("ranked", self._ranked_signature(), lambda: review_queue.rank_pairs(
            self.require_workspace(), self.golden(), {n: self.annotations(n) for n in names}))

    def queue(self, kind: str, attribute: str, annotator: str) -> pd.MultiIndex:
        """The pairs of one queue, most valuable first (cached: sorting every pair takes a while)."""
        return self._cached(f"queue:{kind}:{attribute}:{annotator}", self._ranked_signature(), lambda: review_queue.select(
            self.ranked(), kind=kind, attribute=attribute or None, annotator=annotator or None).index)

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


# -- reading request parameters -------------------------------------------------------------------
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


def _score(value: Any) -> str:
    return "–" if value is None or not np.isfinite(value) else f"{value:.2f}"


# -- pages ----------------------------------------------------------------------------------------
Page = tuple[str, dict[str, Any]]


def home_page(data: WebData, params: dict[str, list[str]]) -> Page:
    recommender = data.recommender()
    ws = data.workspace
    reviews = len(active_reviews(ws)) if ws and ws.config.judgements else 0
    return "home.html", {"active": "home", "videos": len(ws.catalog) if ws else None,
                         "index": recommender.index if recommender else None, "annotators": data.annotators(), "reviews": reviews}


def catalog_page(data: WebData, params: dict[str, list[str]]) -> Page:
    """Search text; filter by a vibe an annotator labels, and by disagreement."""
    ws = data.require_workspace()
    names = data.annotators()
    query = _one(params, "q", limit=200)
    vibe = _choice(params, "vibe", ws.taxonomy.names)
    annotator = _choice(params, "annotator", names, data.default_annotator() if names else "") if names else ""
    disagreement = _choice(params, "disagreement", list(DISAGREEMENT))
    start = _int(params, "page", 1, 1, 100_000)
    frame = ws.catalog.frame
    keep = pd.Series(True, index=frame.index)
    if query:
        needle = query.lower()
        keep &= frame["title"].str.lower().str.contains(needle, regex=False) | frame["description"].str.lower().str.contains(needle, regex=False)
    ranked = data.ranked() if names and ws.config.judgements is not None else None
    if (vibe or disagreement) and ranked is None:
        raise BadRequest("filtering by vibe or disagreement needs annotations and judgements; 'vibeset run' writes them")
    if ranked is not None:
        rows = ranked if not vibe else ranked[ranked.index.get_level_values("attribute") == vibe]
        wanted = pd.Series(True, index=rows.index)
        if vibe and annotator:
            wanted &= rows[f"label:{annotator}"] == 1
        if disagreement == "annotators":
            wanted &= rows["d_models"] > 0
        elif disagreement == "humans":
            wanted &= _contradicts(rows)
        ids = set(rows.index.get_level_values("video_id")[wanted.to_numpy()])
        if vibe or disagreement:
            keep &= frame["video_id"].isin(ids)
    frame = frame[keep.to_numpy()]
    total, pages = len(frame), max(1, math.ceil(len(frame) / PAGE))
    shown = frame.iloc[(start - 1) * PAGE: start * PAGE]
    results = [{**record, "vibes": _labelled(data, ranked, annotator, record["video_id"]),
                "judged": _judged(ranked, record["video_id"])} for record in shown.to_dict("records")]
    state = {"q": query, "vibe": vibe, "annotator": annotator, "disagreement": disagreement}
    link = lambda n: "/ui/catalog?" + urlencode({**state, "page": n})  # noqa: E731
    return "catalog.html", {"active": "catalog", **state, "annotators": names, "vibes": ws.taxonomy.names,
                            "disagreements": DISAGREEMENT, "results": results, "total": total, "page_number": start,
                            "pages": pages, "prev_link": link(start - 1) if start > 1 else None,
                            "next_link": link(start + 1) if start < pages else None}


def _contradicts(rows: pd.DataFrame) -> pd.Series:
    """Pairs where some annotator's label differs from the human consensus."""
    human = rows["human"].to_numpy(float)[:, None]
    labels = rows[[c for c in rows.columns if c.startswith("label:")]].to_numpy(float)
    return pd.Series(((labels != human) & np.isfinite(labels) & np.isfinite(human)).any(axis=1), index=rows.index)


def _labelled(data: WebData, ranked: pd.DataFrame | None, annotator: str, video_id: str) -> list[str]:
    if ranked is not None and annotator:
        rows = ranked.loc[video_id]
        return [a for a, v in rows[f"label:{annotator}"].items() if v == 1]
    recommender = data.recommender()
    row = recommender.index.item_row(video_id) if recommender else None
    return list(recommender.item_attributes[row]) if row is not None else []


def _judged(ranked: pd.DataFrame | None, video_id: str) -> int:
    return int(ranked.loc[video_id]["n_raters"].max()) if ranked is not None else 0


def video_page(data: WebData, video_id: str) -> Page:
    """One vibe x annotator matrix beside the human ratings; each annotator's lineage once."""
    ws = data.require_workspace()
    if video_id not in ws.catalog:
        raise BadRequest(f"video {video_id!r} is not in the catalog")
    names, columns, lineage = data.annotators(), [], []
    for name in names:
        mine = data.annotations(name)
        mine = mine[mine["video_id"] == video_id]
        if mine.empty:
            continue
        columns.append((name, mine.set_index("attribute")))
        first = mine.iloc[0]
        lineage.append({"name": name, "source": first["source"], "model": first["model"], "run_id": first["run_id"],
                        "prompt_version": first["prompt_version"], "taxonomy_version": first["taxonomy_version"]})
    golden = data.golden() if ws.config.judgements is not None else None
    rows = []
    for attribute in ws.taxonomy.names:
        human = None
        if golden is not None:
            judged = golden.judgements[(golden.judgements["video_id"] == video_id) & (golden.judgements["attribute"] == attribute)]
            if len(judged):
                mean = float(judged["rating"].mean())
                human = {"ratings": [(r, f"{v:g}") for r, v in zip(judged["rater"], judged["rating"])], "mean": mean,
                         "label": mean >= golden.threshold}
        cells = []
        for name, table in columns:
            row = table.loc[attribute] if attribute in table.index else None
            cells.append(None if row is None else {"label": bool(row["label"]), "score": _score(row["score"]),
                                                   "evidence": row["evidence"] or ""})
        labels = {c["label"] for c in cells if c}
        contradicts = human is not None and any(c and c["label"] != human["label"] for c in cells)
        rows.append({"attribute": attribute, "human": human, "cells": cells, "split": _split(golden, video_id),
                     "disagree": len(labels) > 1 or contradicts})
    recommender = data.recommender()
    served = None
    if recommender is not None and recommender.index.item_row(video_id) is not None:
        served = {"version": recommender.index.version, "lineage": recommender.index.manifest.get("lineage", {})}
    evidence = [(r["attribute"], name, c["evidence"]) for r in rows for (name, _), c in zip(columns, r["cells"]) if c and c["evidence"]]
    return "video.html", {"active": "catalog", "video": ws.catalog.get(video_id), "annotators": [n for n, _ in columns],
                          "rows": rows, "lineage": lineage, "served": served, "evidence": evidence}


def _split(golden: GoldenSet | None, video_id: str) -> str:
    if golden is None:
        return ""
    splits = golden.pairs.loc[golden.pairs["video_id"] == video_id, "split"]
    return str(splits.iloc[0]) if len(splits) else ""


def review_page(data: WebData, params: dict[str, list[str]]) -> Page:
    """One pair at a time from the ranked queue (or an explicit pair), blind: labels are shown after judging."""
    ws = data.require_workspace()
    config = ws.require_judgements()
    names = data.annotators()
    state = _queue_state(data, params, names)
    low, high = config.scale
    context: dict[str, Any] = {"active": "review", **state, "kinds": review_queue.KINDS, "annotators": names,
                               "vibes": ws.taxonomy.names, "scale": list(range(int(low), int(high) + 1)),
                               "low": int(low), "high": int(high), "message": _one(params, "message", limit=300)}
    if not state["rater"]:
        return "review.html", context
    ranked, golden = data.ranked(), data.golden()
    mine = active_reviews(ws)
    mine = mine[mine["rater"] == state["rater"]]
    done = set(zip(mine["video_id"], mine["attribute"]))
    in_queue = data.queue(state["kind"], state["attribute"], state["annotator"])
    judged = in_queue.isin(pd.MultiIndex.from_tuples(list(done))) if done else np.zeros(len(in_queue), bool)
    queue = in_queue[~judged]
    video_id, attribute = _one(params, "video", limit=200), _one(params, "pair_attribute", limit=100)
    if video_id and attribute:
        if video_id not in ws.catalog:
            raise BadRequest(f"video {video_id!r} is not in the catalog")
        ws.taxonomy[attribute]
        current = (video_id, attribute)
    else:
        current = queue[state["at"]] if state["at"] < len(queue) else None
    context.update(done=int(judged.sum()), left=len(queue), agreement=review_queue.rater_agreement(ws, state["rater"], golden, ranked))
    context["back"] = {key: state[key] for key in QUEUE_FIELDS}
    explicit = bool(video_id and attribute)
    context["skip"] = "/ui/review?" + urlencode({**_back(state), "at": state["at"] + (0 if explicit else 1)})
    if current is not None:
        row = ranked.loc[current]
        attribute_ = ws.taxonomy[current[1]]
        context.update(video=ws.catalog.get(current[0]), pair=attribute_, reasons=review_queue.reasons(row),
                       already=(current in done))
    last = _one(params, "last", limit=40)
    if last:
        context["last"] = _last_judgement(ws, golden, ranked, state["rater"], last)
    return "review.html", context


def _queue_state(data: WebData, params: dict[str, list[str]], names: list[str]) -> dict[str, Any]:
    rater = _one(params, "rater", limit=64)
    if rater and not RATER.match(rater):
        raise BadRequest(f"rater id {rater!r} must be 1-64 letters, digits and _ . @ - (starting with a letter or digit)")
    kind = _choice(params, "kind", list(review_queue.KINDS), "ranked")
    annotator = _choice(params, "annotator", names) if names else ""
    if kind in review_queue.NEEDS_ANNOTATOR and not annotator:
        if not names:
            raise BadRequest(f"the '{kind}' queue needs an annotator; 'vibeset run' writes annotations")
        annotator = data.default_annotator()
    attribute = _choice(params, "attribute", data.require_workspace().taxonomy.names)
    return {"rater": rater, "kind": kind, "annotator": annotator, "attribute": attribute, "at": _int(params, "at", 0, 0, 10_000_000)}


def _last_judgement(ws: Workspace, golden: GoldenSet, ranked: pd.DataFrame, rater: str, review_id: str) -> dict[str, Any] | None:
    """The reviewer's latest judgement beside everyone else's view of that pair (agreement as you go)."""
    mine = active_reviews(ws)
    hit = mine[(mine["rater"] == rater) & (mine["review_id"] == review_id)]
    if hit.empty:
        return None
    review = hit.iloc[-1]
    detail = review_queue.pair_detail(golden, ranked, review["video_id"], review["attribute"])
    you = review["rating"] >= golden.rater_positive
    others = [(r.removeprefix(NAMESPACE), f"{v:g}") for r, v in detail["ratings"] if r != NAMESPACE + rater]
    return {"title": ws.catalog.get(review["video_id"]).title, "video_id": review["video_id"], "attribute": review["attribute"],
            "rating": f"{review['rating']:g}", "yes": you, "others": others, "annotators": {
                name: {"label": v["label"], "score": _score(v["score"]), "agrees": v["label"] == you}
                for name, v in detail["annotators"].items()}}


def playground_page(data: WebData, params: dict[str, list[str]]) -> Page:
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
    context: dict[str, Any] = {"active": "playground", "user": user, "intent_text": text, "chosen": chosen, "k": k,
                               "attributes": index.attributes, "users": index.user_ids[:200]}
    if user:
        if index.user_row(user) is None:
            raise BadRequest(f"unknown user {user!r}: not in this index's interactions ({len(index.user_ids)} users)")
        intent = recommender.intent(user, ",".join(chosen) if chosen else (text or None))
        context.update(history=data.history(user), intent=intent, restricted=recommender.recommend(user, intent, k=k)["items"],
                       unrestricted=recommender.recommend(user, Intent([]), k=k)["items"])
    return "playground.html", context


# -- writes ---------------------------------------------------------------------------------------
def judge(data: WebData, form: dict[str, list[str]]) -> str:
    """Append the reviewer's judgement; the next page is the queue's next pair, with this one's agreement."""
    ws = data.require_workspace()
    low, high = ws.require_judgements().scale
    state = _queue_state(data, form, data.annotators())
    if not state["rater"]:
        raise BadRequest("enter your rater id first")
    verdict = _one(form, "verdict", limit=10)
    if _one(form, "rating", limit=10):
        rating = float(_int(form, "rating", int(low), int(low), int(high)))
    elif verdict in ("yes", "no"):
        rating = float(high if verdict == "yes" else low)
    else:
        raise BadRequest("choose yes, no, or a rating (there is no default)")
    saved = append_review(ws, Review(state["rater"], _one(form, "video_id", limit=200), _one(form, "pair_attribute", limit=100), rating))
    return "/ui/review?" + urlencode({**_back(state), "last": saved.review_id})


def undo(data: WebData, form: dict[str, list[str]]) -> str:
    """Retract the reviewer's latest judgement (an appended undo row) and show that pair again."""
    ws = data.require_workspace()
    state = _queue_state(data, form, data.annotators())
    if not state["rater"]:
        raise BadRequest("enter your rater id first")
    undone = undo_last(ws, state["rater"])
    if undone is None:
        return "/ui/review?" + urlencode({**_back(state), "message": "nothing to undo"})
    message = f"undid your rating {undone.rating:g} of {undone.attribute} for {ws.catalog.get(undone.video_id).title}"
    return "/ui/review?" + urlencode({**_back(state), "video": undone.video_id, "pair_attribute": undone.attribute,
                                      "message": message})


def _back(state: dict[str, Any]) -> dict[str, Any]:
    return {key: state[key] for key in QUEUE_FIELDS if state.get(key) not in (None, "")}


# -- the app --------------------------------------------------------------------------------------
ERRORS = (BadRequest, UnknownAttributeError, DataError, ConfigError)


def mount_web(app: FastAPI, workspace: Workspace | None) -> None:
    """Add the UI under /ui/ (and redirect / there); without a workspace (a bare index) only the playground works.

    The retrieval playground answers from ``app.state.live.recommender`` when the API set it, so
    the UI and the API always use the same index version.
    """
    data = WebData(workspace, lambda: getattr(getattr(app.state, "live", None), "recommender", None))
    env = templates()

    def page(name: str, status: int = 200, **context: Any) -> HTMLResponse:
        ws = data.workspace
        html = env.get_template(name).render(taxonomy=ws.taxonomy if ws else None, has_workspace=ws is not None,
                                             domain=ws.config.domain if ws else "videos", **context)
        return HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)

    def get(handler: Callable[[WebData, dict[str, list[str]]], Page], active: str) -> Callable:
        async def run(request: Request) -> Response:
            try:
                name, context = handler(data, parse_qs(request.url.query, keep_blank_values=True))
            except ERRORS as err:
                return page("error.html", 400, active=active, message=str(err))
            return page(name, **context)

        return run

    def post(handler: Callable[[WebData, dict[str, list[str]]], str]) -> Callable:
        async def run(request: Request) -> Response:
            if not _same_origin(request):
                return page("error.html", 403, active="review", message="cross-site form posts are refused")
            body = await request.body()
            if len(body) > 4096:
                return page("error.html", 400, active="review", message="form too large")
            try:
                target = handler(data, parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True))
            except ERRORS as err:
                return page("error.html", 400, active="review", message=str(err))
            return RedirectResponse(target, status_code=303)

        return run

    async def video(video_id: str) -> Response:
        try:
            name, context = video_page(data, video_id)
        except (BadRequest, DataError) as err:
            return page("error.html", 404, active="catalog", message=str(err))
        return page(name, **context)

    async def static(name: str) -> Response:
        if name not in STATIC:  # a fixed set of package files; the name never becomes a path
            return Response("not found", status_code=404, media_type="text/plain")
        body = resources.files("vibeset").joinpath("web/static", name).read_bytes()
        return Response(body, media_type=STATIC[name], headers={"Cache-Control": "max-age=300", **SECURITY_HEADERS})

    async def to_ui() -> Response:
        return RedirectResponse("/ui/", status_code=307)

    for path in ("/", "/ui"):
        app.add_api_route(path, to_ui, methods=["GET"], include_in_schema=False)
    app.add_api_route("/ui/static/{name}", static, methods=["GET"], include_in_schema=False)
    for path, handler, active in (("/ui/", home_page, "home"), ("/ui/catalog", catalog_page, "catalog"),
                                  ("/ui/review", review_page, "review"), ("/ui/playground", playground_page, "playground")):
        app.add_api_route(path, get(handler, active), methods=["GET"], include_in_schema=False)
    app.add_api_route("/ui/videos/{video_id}", video, methods=["GET"], include_in_schema=False)
    app.add_api_route("/ui/review", post(judge), methods=["POST"], include_in_schema=False)
    app.add_api_route("/ui/review/undo", post(undo), methods=["POST"], include_in_schema=False)


__all__ = ["mount_web", "WebData"]
