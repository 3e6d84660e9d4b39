"""A small workspace for the web-UI and report tests: a slice of the bundled data plus a video
whose title is markup, zero-shot labels for the whole slice, and a retrieval index."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from conftest import DATA, write_workspace

EVIL_ID = "999999"
EVIL_TITLE = '<script>alert("pwned")</script> Evil & <b>Co</b>'


def small_workspace(root: Path, embeddings: Path) -> Path:
    """Write it under ``root``; ``embeddings`` is a shared encoder cache (filled once per session)."""

    artifacts = root / "out"
    artifacts.mkdir(parents=True, exist_ok=True)
    embeddings.mkdir(parents=True, exist_ok=True)
    (artifacts / "embeddings").symlink_to(embeddings, target_is_directory=True)
    movies = pd.read_csv(DATA / "movies.csv", dtype=str)
    survey = pd.read_csv(DATA / "survey.csv", dtype=str)
    ratings = pd.read_csv(DATA / "ratings.csv", dtype=str)
    judged = sorted(set(survey["movieId"]))
    keep = set(judged[::6]) | set(ratings["movieId"].value_counts().index[:100])
    catalog = movies[movies["movieId"].isin(keep)]
    evil = {"movieId": EVIL_ID, "title": EVIL_TITLE, "genres": "Comedy", "imdbId": "", "tmdbId": "",
            "overview": 'A film whose overview is markup too: <img src=x onerror=alert(1)> and "quotes".'}
    catalog = pd.concat([catalog, pd.DataFrame([evil])])
    catalog.to_csv(root / "movies.csv", index=False)
    config = write_workspace(root, artifacts, catalog=root / "movies.csv")
    from vibeset.artifacts import artifacts_of
    from vibeset.pipeline import run_stage
    from vibeset.workspace import load_workspace

    ws = load_workspace(config)
    for stage in ("golden", "embed", "cf", "teacher"):  # the zero-shot teacher labels the whole slice
        run_stage(ws, stage, options={"teacher": "zero-shot"} if stage == "teacher" else None)
    run_stage(ws, "index", options={"labels": artifacts_of(ws).annotations("zero-shot")})
    return config
