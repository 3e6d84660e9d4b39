"""Shared fixtures: the bundled real data as a workspace whose artifacts live in a temp dir."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "data" / "movielens-vibes"
VIBESET = [sys.executable, "-m", "vibeset"]


def write_workspace(root: Path, artifacts: Path, **overrides: str) -> Path:
    """A vibeset.toml over the bundled data (absolute paths); ``overrides`` replace file paths."""
    paths = {
        "taxonomy": DATA / "taxonomy.yaml",
        "catalog": DATA / "movies.csv",
        "judgements": DATA / "survey.csv",
        "interactions": DATA / "ratings.csv",
        **overrides,
    }
    # the repo's [llm] table (and its comment) is left out: tests bring their own
    text = re.split(r"\n(?:#[^\n]*\n)*\[llm\]", (REPO / "vibeset.toml").read_text())[0] + "\n"
    text = text.replace('artifacts = "out"', f'artifacts = "{artifacts}"')
    for key, default in (
        ("taxonomy", "data/movielens-vibes/taxonomy.yaml"),
        ("catalog", "data/movielens-vibes/movies.csv"),
        ("judgements", "data/movielens-vibes/survey.csv"),
        ("interactions", "data/movielens-vibes/ratings.csv"),
    ):
        text = text.replace(f'"{default}"', f'"{paths[key]}"')
    text = text.replace('"data/movielens-vibes/', f'"{DATA}/')  # the [[tag_sources]] tables
    root.mkdir(parents=True, exist_ok=True)
    (root / "vibeset.toml").write_text(text)
    return root / "vibeset.toml"


@pytest.fixture(scope="session")
def shared_artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One artifacts dir per test session, so the MiniLM embedding cache is filled once."""
    return tmp_path_factory.mktemp("artifacts")


@pytest.fixture(scope="session")
def bundled_workspace(tmp_path_factory: pytest.TempPathFactory, shared_artifacts: Path) -> Path:
    """Path of a vibeset.toml over the bundled data; artifacts shared across the session."""
    return write_workspace(tmp_path_factory.mktemp("ws"), shared_artifacts)


def run_cli(*args: str, workspace: Path | None = None, check: bool = False, timeout: float = 600, **env: str):
    """Run the real ``vibeset`` CLI in a subprocess; returns the CompletedProcess."""
    full_env = {**os.environ, **env}
    if workspace is not None:
        full_env["VIBESET_WORKSPACE"] = str(workspace)
    return subprocess.run(
        [*VIBESET, *args], capture_output=True, text=True, env=full_env, timeout=timeout, check=check, cwd=REPO
    )


PIPELINE = "\n[pipeline]\nsilver_sample = 200\nranker_epochs = 1\n"


@pytest.fixture(scope="session")
def pipeline_ws(tmp_path_factory: pytest.TempPathFactory, shared_artifacts: Path) -> Path:
    """The bundled data cut to 400 movies (300 judged), its embeddings cache shared with the session."""
    root = tmp_path_factory.mktemp("pipeline")
    movies = pd.read_csv(DATA / "movies.csv", dtype=str)
    movies = movies[movies["overview"].fillna("").str.len() > 0]
    judged = set(pd.read_csv(DATA / "survey.csv", dtype=str)["movieId"])
    keep = pd.concat([movies[movies["movieId"].isin(judged)].head(300), movies[~movies["movieId"].isin(judged)].head(100)])
    keep.to_csv(root / "movies.csv", index=False)
    (root / "out").mkdir()
    (shared_artifacts / "embeddings").mkdir(parents=True, exist_ok=True)
    (root / "out" / "embeddings").symlink_to(shared_artifacts / "embeddings", target_is_directory=True)
    config = write_workspace(root, root / "out", catalog=root / "movies.csv")
    config.write_text(config.read_text() + PIPELINE)
    return config


@pytest.fixture(scope="session")
def first_run(pipeline_ws: Path) -> dict:
    result = run_cli("run", "--json", workspace=pipeline_ws)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def copy_of(config: Path, target: Path) -> Path:
    """Another workspace with the same inputs and a copy of the artifacts (for tests that change things)."""
    shutil.copytree(config.parent / "out", target / "out", symlinks=True)
    text = config.read_text().replace(str(config.parent / "out"), str(target / "out"))
    (target / "vibeset.toml").write_text(text)
    return target / "vibeset.toml"


@pytest.fixture(scope="session")
def starter_workspace(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess]:
    """``vibeset init`` then ``vibeset run`` on the starter (non-movie) workspace: its config and the run's output."""
    root = tmp_path_factory.mktemp("starter") / "ws"
    init = run_cli("init", str(root))
    assert init.returncode == 0, init.stderr
    return root / "vibeset.toml", run_cli("run", "-w", str(root), timeout=900)
