"""Implicit feedback end to end: views with watch time and no rating column, through cf, the sequential
ranker, the index, the offline evaluation and the HTTP API."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import DATA, write_workspace
from fastapi.testclient import TestClient

from vibeset.artifacts import artifacts_of
from vibeset.interactions import workspace_interactions
from vibeset.pipeline import run_stage
from vibeset.retrieval.index import load_index
from vibeset.serve import create_app
from vibeset.workspace import load_workspace

IMPLICIT = """[interactions]
path = "{path}"
[interactions.columns]
user = "viewer"
video = "video"
rating = ""
weight = "watched_s"
timestamp = "ts"
"""


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory, shared_artifacts: Path):
    root = tmp_path_factory.mktemp("implicit")
    artifacts = root / "out"
    artifacts.mkdir()
    (shared_artifacts / "embeddings").mkdir(parents=True, exist_ok=True)
    (artifacts / "embeddings").symlink_to(shared_artifacts / "embeddings", target_is_directory=True)
    movies, survey = pd.read_csv(DATA / "movies.csv", dtype=str), pd.read_csv(DATA / "survey.csv", dtype=str)
    ratings = pd.read_csv(DATA / "ratings.csv")
    keep = set(sorted(set(survey["movieId"]))[::6]) | set(ratings["movieId"].astype(str).value_counts().index[:100])
    movies[movies["movieId"].isin(keep)].to_csv(root / "movies.csv", index=False)
    ratings = ratings[ratings["movieId"].astype(str).isin(keep)]
    views = pd.DataFrame({"viewer": "viewer-" + ratings["userId"].astype(str), "video": ratings["movieId"],
                          "watched_s": ((ratings["rating"] - 1.0).clip(lower=0) * 1500).round(), "ts": ratings["timestamp"]})
    views.to_csv(root / "views.csv", index=False)
    config = write_workspace(root, artifacts, catalog=root / "movies.csv")
    text = config.read_text()
    start = text.index("[interactions]")
    config.write_text(text[:start] + IMPLICIT.format(path=root / "views.csv"))
    ws = load_workspace(config)
    for stage in ("golden", "embed", "cf"):
        run_stage(ws, stage)
    run_stage(ws, "teacher", options={"teacher": "zero-shot"})
    labels = artifacts_of(ws).annotations("zero-shot")
    run_stage(ws, "ranker", options={"labels": labels, "epochs": 2, "dim": 16, "max_len": 20, "layers": 1, "history": 60})
    run_stage(ws, "index", options={"labels": labels})
    _, ctx = run_stage(ws, "eval-retrieval", options={"n_boot": 50})
    return ws, ctx.results["report"]


def test_views_without_ratings_are_first_class(workspace):
    ws, _ = workspace
    frame = workspace_interactions(ws)
    assert (frame["rating"] == 1.0).all()  # no rating column: nothing invented
    assert frame["positive"].to_numpy().tolist() == (frame["weight"] > 0).tolist()  # a view with watch time is a like
    assert 0.0 <= frame["strength"].min() and frame["strength"].max() == pytest.approx(1.0)
    assert (np.diff(frame.sort_values("weight")["strength"].to_numpy()) >= 0).all()  # more watch time, more weight


def test_implicit_workspace_ranks_serves_and_evaluates(workspace):
    ws, report = workspace
    index = load_index(artifacts_of(ws).get("index").path)
    assert index.ranker_names == ["als", "sasrec"] and index.ranker("sasrec")[1].shape[0] == len(index.user_ids)
    assert index.defaults["ranker"] in ("als", "sasrec")
    split = report["splits"]["leave-last-5"]
    assert split["users"] > 200
    for protocol in ("predicted", "golden"):
        assert {"restricted als", "restricted sasrec", "unrestricted sasrec"} <= set(split["protocols"][protocol]["systems"])
    assert report["selection"]["chosen"] == {k: index.defaults[k] for k in ("ranker", "blend")}
    user = index.user_ids[0]
    with TestClient(create_app(ws, token="")) as client:
        for ranker in ("als", "sasrec"):
            answer = client.get("/recommend", params={"user": user, "ranker": ranker, "k": 5})
            assert answer.status_code == 200, answer.text
            body = answer.json()
            assert body["ranker"] == ranker and len(body["items"]) == 5 and body["intent"]["source"] == "inferred"
            seen = set(np.asarray(index.item_ids)[index.seen(index.user_row(user))[0]])
            assert not seen & {item["video_id"] for item in body["items"]}
