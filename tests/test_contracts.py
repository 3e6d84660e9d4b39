"""One contract, run against every annotator and every retriever (implicit's shared test mixin, in spirit)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import pytest

from llm_server import LLMServer
from vibeset.annotation import COLUMNS, Annotator
from vibeset.annotators import parse_spec, zero_shot_for
from vibeset.artifacts import artifacts_of
from vibeset.distill.student import load_student
from vibeset.golden import workspace_golden
from vibeset.llm import LLMAnnotator, LLMConfig
from vibeset.retrieval.index import load_index
from vibeset.retrieval.recommender import Recommender
from vibeset.retrieval.topk import RestrictedTopK
from vibeset.runs import taxonomy_in_use
from vibeset.workspace import load_workspace


# -- annotators ----------------------------------------------------------------------------------------
def _zero_shot(ws, tmp: Path):
    return zero_shot_for(ws, parse_spec("zero-shot"), workspace_golden(ws).split("dev"))[0]


def _student(ws, tmp: Path):
    return load_student(ws)


def _llm(ws, tmp: Path):
    server = LLMServer().__enter__()
    annotator = LLMAnnotator(LLMConfig(max_retries=0).backend("openai", "contract-model", server.base_url),
                             LLMConfig(max_retries=0), out_dir=tmp / "llm")
    annotator.server = server
    return annotator


ANNOTATORS: dict[str, Callable] = {"zero-shot": _zero_shot, "student": _student, "llm": _llm}


@pytest.fixture(params=sorted(ANNOTATORS))
def annotator(request, first_run, pipeline_ws, tmp_path, monkeypatch):
    monkeypatch.setenv("VIBESET_LLM_API_KEY", "sk-contract")
    ws = load_workspace(pipeline_ws)
    made = ANNOTATORS[request.param](ws, tmp_path)
    yield ws, made
    if hasattr(made, "server"):
        made.server.__exit__(None, None, None)


def test_an_annotator_labels_every_attribute_of_every_video_once(annotator) -> None:
    ws, made = annotator
    taxonomy = taxonomy_in_use(ws)
    videos = list(ws.catalog)[:6]
    assert isinstance(made, Annotator)
    frame = made.annotate(videos, taxonomy)
    assert list(frame.columns) == list(COLUMNS)
    assert len(frame) == len(videos) * len(taxonomy) and not frame.duplicated(["video_id", "attribute"]).any()
    assert set(frame["video_id"]) == {v.video_id for v in videos} and set(frame["attribute"]) == set(taxonomy.names)
    assert frame["score"].between(0, 1).all() and frame["label"].dtype == bool
    for column in ("source", "model", "taxonomy_version"):
        assert (frame[column] != "").all(), column
    assert set(frame["taxonomy_version"]) == {taxonomy.version}
    again = made.annotate(videos, taxonomy)  # same videos, same labels
    pd.testing.assert_frame_equal(frame.drop(columns="run_id"), again.drop(columns="run_id"))


def test_an_annotator_given_no_videos_returns_an_empty_table(annotator) -> None:
    ws, made = annotator
    frame = made.annotate([], taxonomy_in_use(ws))
    assert frame.empty and set(COLUMNS) <= set(frame.columns)


# -- retrievers ----------------------------------------------------------------------------------------
def _als(index):
    recommender = Recommender(index)
    return recommender.engine, lambda user: index.item_factors @ index.user_factors[user]


def _popularity(index):
    recommender = Recommender(index)
    engine = RestrictedTopK(index.popularity[:, None], recommender.engine.postings, recommender.engine.scores)
    return engine, lambda user: index.popularity.astype(np.float64)


def _sasrec(index):
    recommender = Recommender(index)
    items, users = (np.asarray(a) for a in index.ranker("sasrec"))
    return recommender.engines["sasrec"], lambda user: items.astype(np.float64) @ users[user].astype(np.float64)


RETRIEVERS = {"als": _als, "popularity": _popularity, "sasrec": _sasrec}
QUERIES = {"als": lambda index: (lambda user: index.user_factors[user]),
           "sasrec": lambda index: (lambda user: np.asarray(index.ranker("sasrec")[1])[user]),
           "popularity": lambda index: (lambda user: np.ones(1, np.float32))}


@pytest.fixture(params=sorted(RETRIEVERS))
def retriever(request, first_run, pipeline_ws):
    index = load_index(artifacts_of(load_workspace(pipeline_ws)).get("index").path)
    engine, scores = RETRIEVERS[request.param](index)
    return index, engine, scores, QUERIES[request.param](index)


@pytest.mark.parametrize("include, exclude", [((), ()), ((0,), ()), ((0, 1), ()), ((0,), (1,)), ((), (2,))])
def test_a_retriever_is_exact_within_the_restriction(retriever, include, exclude) -> None:
    index, engine, brute, query = retriever
    sizes = np.diff(index.post_offsets)
    order = [int(a) for a in np.argsort(-sizes)]  # the largest vibes, so every restriction has candidates
    include, exclude = [order[a] for a in include], [order[a] for a in exclude]
    for user in range(0, len(index.user_ids), max(1, len(index.user_ids) // 5)):
        seen = np.asarray(index.seen(user)[0], dtype=np.int64)
        result = engine.search(query(user), include=include, exclude=exclude, seen=seen, k=10)
        allowed = np.ones(len(index), bool)
        for a in include:
            mask = np.zeros(len(index), bool)
            mask[index.postings(a)[0]] = True
            allowed &= mask
        for a in exclude:
            allowed[index.postings(a)[0]] = False
        allowed[seen] = False
        scores = np.where(allowed, brute(user), -np.inf)
        expected = np.sort(scores[np.isfinite(scores)])[::-1][:10]
        assert len(result.rows) == min(10, int(allowed.sum()))
        assert allowed[result.rows].all()  # restricted: every row carries the vibes, none excluded or seen
        assert np.all(np.diff(result.scores) <= 1e-6)  # best first
        np.testing.assert_allclose(np.sort(result.scores)[::-1], expected, rtol=1e-5, atol=1e-5)  # exact
